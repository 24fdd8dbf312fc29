//! Animated GIF through the `gif` crate: a palette per frame from its NeuQuant quantiser,
//! delays from the frame rate, looping forever.

use crate::Frame;

pub fn encode(frames: &[Frame], fps: f64) -> Result<Vec<u8>, String> {
    let (w, h) = (frames[0].width, frames[0].height);
    if w > u16::MAX as usize || h > u16::MAX as usize {
        return Err(format!("{w}x{h} is larger than GIF allows (65535)"));
    }
    let mut out = Vec::new();
    {
        let mut enc =
            gif::Encoder::new(&mut out, w as u16, h as u16, &[]).map_err(|e| e.to_string())?;
        enc.set_repeat(gif::Repeat::Infinite)
            .map_err(|e| e.to_string())?;
        // Delays are in hundredths of a second; carry the rounding error forward so
        // the average rate is right (e.g. 16 fps alternates 6 and 7).
        let mut clock = 0.0f64;
        let mut shown = 0u32;
        for f in frames {
            clock += 100.0 / fps;
            let delay = (clock.round() as u32).saturating_sub(shown).max(1);
            shown += delay;
            // speed 3: NeuQuant sampling factor, a good quality/time balance.
            let mut g = gif::Frame::from_rgb_speed(w as u16, h as u16, &f.data, 3);
            g.delay = delay.min(u16::MAX as u32) as u16;
            enc.write_frame(&g).map_err(|e| e.to_string())?;
        }
    }
    Ok(out)
}

pub fn decode(bytes: &[u8]) -> Result<(Vec<Frame>, f64), String> {
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::RGBA);
    let mut dec = opts
        .read_info(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a readable GIF ({e})"))?;
    let (w, h) = (dec.width() as usize, dec.height() as usize);
    let mut canvas = vec![0u8; w * h * 4];
    let mut frames = Vec::new();
    let mut total_delay = 0u64;
    while let Some(f) = dec
        .read_next_frame()
        .map_err(|e| format!("not a readable GIF ({e})"))?
    {
        // Composite the frame's rectangle onto the canvas (transparent pixels keep the old).
        let (fx, fy, fw) = (f.left as usize, f.top as usize, f.width as usize);
        for (i, px) in f.buffer.chunks(4).enumerate() {
            let (x, y) = (fx + i % fw, fy + i / fw);
            if x < w && y < h && px[3] > 0 {
                canvas[(y * w + x) * 4..(y * w + x) * 4 + 4].copy_from_slice(px);
            }
        }
        total_delay += f.delay as u64;
        let rgb = canvas.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        frames.push(Frame::new(w, h, rgb).map_err(|e| e.to_string())?);
    }
    if frames.is_empty() {
        return Err("GIF has no frames".into());
    }
    let fps = if total_delay > 0 {
        frames.len() as f64 * 100.0 / total_delay as f64
    } else {
        0.0
    };
    Ok((frames, fps))
}
