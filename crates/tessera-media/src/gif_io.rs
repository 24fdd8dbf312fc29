//! Animated GIF through the `gif` crate: a 256-colour palette per frame from our quantiser
//! (`quantize.rs`; PIL, behind diffusers' `export_to_gif`, also gives each frame its own
//! adaptive palette), delays from the frame rate, looping forever.

use crate::{quantize, Frame};

pub fn encode(frames: &[Frame], fps: f64) -> Result<Vec<u8>, String> {
    let (w, h) = (frames[0].width, frames[0].height);
    if w > u16::MAX as usize || h > u16::MAX as usize {
        return Err(format!("{w}x{h} is larger than GIF allows (65535)"));
    }
    let mut out = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut out, w as u16, h as u16, &[]).map_err(|e| e.to_string())?;
        enc.set_repeat(gif::Repeat::Infinite).map_err(|e| e.to_string())?;
        // Delays are in hundredths of a second; carry the rounding error forward so
        // the average rate is right (e.g. 16 fps alternates 6 and 7).
        let mut clock = 0.0f64;
        let mut shown = 0u32;
        for f in frames {
            clock += 100.0 / fps;
            // Browsers play delays under 2/100 s as 1/10 s, so 50 fps is the fastest rate.
            let delay = (clock.round() as u32).saturating_sub(shown).max(2);
            shown += delay;
            let palette = quantize::palette(&f.data, 256);
            let indices = quantize::map(&f.data, &palette);
            let mut g = gif::Frame::from_palette_pixels(w as u16, h as u16, indices, palette.concat(), None);
            g.delay = delay.min(u16::MAX as u32) as u16;
            enc.write_frame(&g).map_err(|e| e.to_string())?;
        }
    }
    Ok(out)
}

pub fn decode(bytes: &[u8], limits: &crate::DecodeLimits) -> Result<(Vec<Frame>, f64), String> {
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::RGBA);
    let bad = |e: gif::DecodingError| format!("not a readable GIF ({e})");
    let mut dec = opts.read_info(std::io::Cursor::new(bytes)).map_err(bad)?;
    let (w, h) = (dec.width() as usize, dec.height() as usize);
    // The logical screen's declared size is checked before the canvas is allocated, and
    // the frames' total as they come.
    limits.check_frame(w, h)?;
    // The logical screen, RGBA; starts transparent (shown black).
    let mut canvas = vec![0u8; w * h * 4];
    let mut frames = Vec::new();
    let mut total_delay = 0u64;
    while let Some(f) = dec.read_next_frame().map_err(bad)? {
        let (fx, fy, fw, fh) = (f.left as usize, f.top as usize, f.width as usize, f.height as usize);
        let rect = |y: usize| (fy + y < h).then(|| ((fy + y) * w + fx.min(w)) * 4);
        let visible = fw.min(w.saturating_sub(fx));
        let before = (f.dispose == gif::DisposalMethod::Previous).then(|| canvas.clone());
        // Composite the frame's rectangle onto the canvas; transparent pixels keep
        // what is below them (GIF89a §23, §27).
        for (y, row) in f.buffer.chunks(fw * 4).take(fh).enumerate() {
            let Some(at) = rect(y) else { break };
            for (x, px) in row.chunks(4).take(visible).enumerate() {
                if px[3] > 0 {
                    canvas[at + 4 * x..at + 4 * x + 4].copy_from_slice(px);
                }
            }
        }
        total_delay += f.delay as u64;
        limits.check_video(w, h, frames.len() + 1)?;
        let rgb = canvas.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        frames.push(Frame::new(w, h, rgb).map_err(|e| e.to_string())?);
        // Disposal prepares the canvas for the next frame (GIF89a §23.c.iv).
        match f.dispose {
            gif::DisposalMethod::Background => {
                for y in 0..fh {
                    let Some(at) = rect(y) else { break };
                    canvas[at..at + 4 * visible].fill(0);
                }
            }
            gif::DisposalMethod::Previous => {
                if let Some(b) = before {
                    canvas = b;
                }
            }
            _ => {}
        }
    }
    if frames.is_empty() {
        return Err("GIF has no frames".into());
    }
    let fps = if total_delay > 0 { frames.len() as f64 * 100.0 / total_delay as f64 } else { 0.0 };
    Ok((frames, fps))
}
