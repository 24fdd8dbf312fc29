//! Marks a video with the invisible watermark and times marking and detection.
//! `cargo run --release -p tessera-media --example watermark -- IN OUT [ID]`
//! (OUT's extension picks the format; attack OUT with ffmpeg, then `tessera verify`.)
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (input, output) = (std::path::Path::new(&args[1]), std::path::Path::new(&args[2]));
    let id = args.get(3).and_then(|s| u32::from_str_radix(s, 16).ok()).unwrap_or(0x1234_5678);
    let (mut frames, fps) = tessera_media::read_video(input)?;
    let t0 = Instant::now();
    tessera_media::watermark::embed(&mut frames, tessera_media::watermark::Payload { id });
    let mark = t0.elapsed().as_secs_f64();
    let (w, h) = (frames[0].width, frames[0].height);
    let original = tessera_media::read_video(input)?.0;
    let psnr = frames.iter().zip(&original).map(|(a, b)| a.psnr(b)).sum::<f64>() / frames.len() as f64;
    tessera_media::write_video(output, &frames, if fps > 0.0 { fps } else { 12.0 }, &Default::default())?;
    let t1 = Instant::now();
    let d = tessera_media::watermark::detect(&frames, 96);
    let detect = t1.elapsed().as_secs_f64();
    println!(
        "{w}x{h}, {} frames: marking {:.2} ms/frame, PSNR {psnr:.2} dB; detection over {} frames {:.2} s: {:?}",
        frames.len(),
        1e3 * mark / frames.len() as f64,
        frames.len().min(96),
        detect,
        d.payload
    );
    Ok(())
}
