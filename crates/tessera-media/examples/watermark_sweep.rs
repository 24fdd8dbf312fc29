//! Marks unmarked videos and images in memory and counts how many the detector reads back,
//! before and after tessera's own H.264 (what `tessera verify` reads):
//! `cargo run --release -p tessera-media --example watermark_sweep -- FILE...`
//! Prints one line per file (confidence before and after) and the totals: the figure to
//! check after any change to the mark or the detector, on the kinds of picture a model
//! makes (MODEL_CARD: v6's textured colour fields hid the mark in about half its videos).
use tessera_media::watermark::{self, detect, embed, Embedder, Payload};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files: Vec<String> = std::env::args().skip(1).collect();
    let (mut raw_ok, mut enc_ok, mut clean_fp, mut psnr_sum) = (0, 0, 0, 0.0);
    for (i, f) in files.iter().enumerate() {
        let path = std::path::Path::new(f);
        let (orig, fps) =
            if f.ends_with(".safetensors") { (raw_frames(path)?, 12.0) } else { tessera_media::read_video(path)? };
        let base = std::env::var("WM_ID").ok().and_then(|v| u32::from_str_radix(&v, 16).ok()).unwrap_or(0x5EED_0000);
        let p = Payload { id: base.wrapping_add(i as u32) };
        let mut marked = orig.clone();
        embed(&mut marked, p);
        let (w, h) = (orig[0].width, orig[0].height);
        let coarse = Embedder::with_cell(w, h, p, watermark::cell_size(w, h));
        let chosen_e = Embedder::new(&orig[0], p);
        let (chosen, informed) = (chosen_e.cell(), chosen_e.informed());
        let psnr = marked.iter().zip(&orig).map(|(a, b)| a.psnr(b)).sum::<f64>() / orig.len() as f64;
        psnr_sum += psnr;
        let raw = detect(&marked, 96);
        let clean = detect(&orig, 96);
        let ext = if orig.len() > 1 { "mp4" } else { "png" };
        let tmp = std::path::PathBuf::from(format!("/tmp/watermark_sweep.{ext}"));
        let bytes =
            tessera_media::encode_video(&tmp, &marked, if fps > 0.0 { fps } else { 12.0 }, &Default::default())?;
        let (decoded, _) = tessera_media::decode_video(&tmp, &bytes)?;
        let enc = detect(&decoded, 96);
        raw_ok += (raw.payload == Some(p)) as usize;
        enc_ok += (enc.payload == Some(p)) as usize;
        clean_fp += clean.detected as usize;
        println!(
            "{f}: {}x{}x{} load {:.2} blind margin {:.2} cell {chosen:.2} informed {informed} PSNR {psnr:.1} | raw {} {:.2} | encoded {} {:.2} | unmarked {} {:.2}",
            orig[0].width,
            orig[0].height,
            orig.len(),
            coarse.load(&orig[0]),
            coarse.blind_margin(&orig[0]),
            raw.payload == Some(p),
            raw.confidence,
            enc.payload == Some(p),
            enc.confidence,
            clean.detected,
            clean.confidence
        );
    }
    let n = files.len();
    println!("read back: {raw_ok}/{n} in memory, {enc_ok}/{n} after H.264; unmarked taken for marked: {clean_fp}/{n}; mean PSNR {:.2} dB", psnr_sum / n.max(1) as f64);
    Ok(())
}

/// The frames of a `tessera generate -o X.safetensors` tensor ((T, H, W, 3) f32 in 0..1,
/// unmarked and never encoded): what the CLI marks, before its H.264.
fn raw_frames(path: &std::path::Path) -> Result<Vec<tessera_media::Frame>, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    let n = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n])?;
    let shape = header.split("\"shape\":[").nth(1).and_then(|r| r.split(']').next()).ok_or("no shape")?;
    let dims: Vec<usize> = shape.split(',').map(|d| d.trim().parse()).collect::<Result<_, _>>()?;
    let data: Vec<f32> = bytes[8 + n..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    Ok(tessera_media::frames_from_f32(&data, dims[0], dims[1], dims[2])?)
}
