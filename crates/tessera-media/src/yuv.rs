//! RGB <-> YUV 4:2:0 with BT.601 limited-range coefficients (ITU-R BT.601-7), the
//! colour space H.264 players assume when the stream does not say otherwise.

/// Planes of an even-sized 4:2:0 picture: Y (w*h), then U and V (w/2 * h/2 each).
pub struct Yuv420 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

fn clamp8(x: f32) -> u8 {
    x.round().clamp(0.0, 255.0) as u8
}

/// Converts an RGB8 frame of any size to 4:2:0 at the next even size, replicating the
/// last column/row; chroma is the average of each 2x2 block.
pub fn rgb_to_yuv420(rgb: &[u8], width: usize, height: usize) -> Yuv420 {
    let (w2, h2) = (width.div_ceil(2) * 2, height.div_ceil(2) * 2);
    let px = |x: usize, y: usize| {
        let i = (y.min(height - 1) * width + x.min(width - 1)) * 3;
        (rgb[i] as f32, rgb[i + 1] as f32, rgb[i + 2] as f32)
    };
    let mut data = vec![0u8; w2 * h2 * 3 / 2];
    let (ys, uv) = data.split_at_mut(w2 * h2);
    let (us, vs) = uv.split_at_mut(w2 * h2 / 4);
    for y in 0..h2 {
        for x in 0..w2 {
            let (r, g, b) = px(x, y);
            ys[y * w2 + x] = clamp8(16.0 + 0.256_789 * r + 0.504_129 * g + 0.097_906 * b);
        }
    }
    for y in 0..h2 / 2 {
        for x in 0..w2 / 2 {
            let (mut r, mut g, mut b) = (0.0, 0.0, 0.0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = px(2 * x + dx, 2 * y + dy);
                r += p.0 / 4.0;
                g += p.1 / 4.0;
                b += p.2 / 4.0;
            }
            us[y * w2 / 2 + x] = clamp8(128.0 - 0.148_223 * r - 0.290_992 * g + 0.439_215 * b);
            vs[y * w2 / 2 + x] = clamp8(128.0 + 0.439_215 * r - 0.367_789 * g - 0.071_426 * b);
        }
    }
    Yuv420 {
        width: w2,
        height: h2,
        data,
    }
}

/// Planes with strides (as a decoder hands them out) to RGB8, cropped to width x height.
pub fn yuv420_to_rgb(
    (y, u, v): (&[u8], &[u8], &[u8]),
    (sy, su, sv): (usize, usize, usize),
    width: usize,
    height: usize,
) -> Vec<u8> {
    let mut out = vec![0u8; width * height * 3];
    for row in 0..height {
        for col in 0..width {
            let yy = (y[row * sy + col] as f32 - 16.0) * 1.164_383;
            let uu = u[(row / 2) * su + col / 2] as f32 - 128.0;
            let vv = v[(row / 2) * sv + col / 2] as f32 - 128.0;
            let i = (row * width + col) * 3;
            out[i] = clamp8(yy + 1.596_027 * vv);
            out[i + 1] = clamp8(yy - 0.391_762 * uu - 0.812_968 * vv);
            out[i + 2] = clamp8(yy + 2.017_232 * uu);
        }
    }
    out
}
