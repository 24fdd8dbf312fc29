//! PNG (RGB8) through the `png` crate.

use crate::Frame;

pub fn encode(f: &Frame) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, f.width as u32, f.height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| e.to_string())?;
        w.write_image_data(&f.data).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Any PNG colour type, converted to RGB8 (alpha dropped, grey expanded, 16-bit cut).
pub fn decode(bytes: &[u8], limits: &crate::DecodeLimits) -> Result<Frame, String> {
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().map_err(|e| format!("not a readable PNG ({e})"))?;
    // The header's declared size is checked before the output buffer is allocated.
    let (w, h) = (reader.info().width as usize, reader.info().height as usize);
    limits.check_frame(w, h)?;
    let mut buf = vec![0; reader.output_buffer_size().ok_or("PNG too large")?];
    let info = reader.next_frame(&mut buf).map_err(|e| format!("not a readable PNG ({e})"))?;
    let px = &buf[..info.buffer_size()];
    let rgb: Vec<u8> = match info.color_type {
        png::ColorType::Rgb => px.to_vec(),
        png::ColorType::Rgba => px.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        png::ColorType::Grayscale => px.iter().flat_map(|&g| [g, g, g]).collect(),
        png::ColorType::GrayscaleAlpha => px.chunks(2).flat_map(|p| [p[0], p[0], p[0]]).collect(),
        png::ColorType::Indexed => return Err("indexed PNG was not expanded".into()),
    };
    Frame::new(w, h, rgb).map_err(|e| e.to_string())
}
