//! RGB8 <-> Y'CbCr 4:2:0 (8-bit, limited range) with the BT.601 matrix (ITU-R BT.601-7,
//! Kr = 0.299, Kb = 0.114): the matrix ffmpeg's swscale uses by default for `rgb24 ->
//! yuv420p`, i.e. what diffusers' `export_to_video` produces. The encoder also signals it
//! in the SPS (VUI matrix_coefficients = 6) so players need not guess.
//!
//! Chroma siting is H.264's default (ITU-T H.264 Annex E, chroma_sample_loc_type 0, as in
//! MPEG-2): each chroma sample sits on an even luma column and halfway between two luma
//! rows. Downsampling filters with [1 2 1]/4 across columns and averages the two rows;
//! upsampling interpolates bilinearly at the same sites, so a round trip of smooth content
//! loses almost nothing to subsampling.

/// Luma weights of R and B (BT.601); G gets the rest.
const KR: f32 = 0.299;
const KB: f32 = 0.114;
const KG: f32 = 1.0 - KR - KB;
/// Limited ("video") range: Y' in 16..=235, Cb/Cr in 16..=240 around 128.
const Y_SCALE: f32 = 219.0 / 255.0;
const C_SCALE: f32 = 224.0 / 255.0;

/// Planes of an even-sized 4:2:0 picture: Y (w*h), then U and V (w/2 * h/2 each).
pub struct Yuv420 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

fn clamp8(x: f32) -> u8 {
    x.round().clamp(0.0, 255.0) as u8
}

/// Converts an RGB8 frame of any size to 4:2:0 at the next even size. Odd sizes are padded
/// by repeating the last column/row (the muxer signals the true size; see `mp4::mux`).
pub fn rgb_to_yuv420(rgb: &[u8], width: usize, height: usize) -> Yuv420 {
    let (w2, h2) = (width.div_ceil(2) * 2, height.div_ceil(2) * 2);
    let mut data = vec![0u8; w2 * h2 * 3 / 2];
    let (ys, uv) = data.split_at_mut(w2 * h2);
    let (us, vs) = uv.split_at_mut(w2 * h2 / 4);
    // Full-resolution (B' - Y') and (R' - Y') per padded pixel, filtered below.
    let mut bd = vec![0f32; w2 * h2];
    let mut rd = vec![0f32; w2 * h2];
    for y in 0..h2 {
        let row = &rgb[y.min(height - 1) * width * 3..][..width * 3];
        for x in 0..w2 {
            let p = &row[x.min(width - 1) * 3..][..3];
            let (r, g, b) = (p[0] as f32, p[1] as f32, p[2] as f32);
            let luma = KR * r + KG * g + KB * b;
            ys[y * w2 + x] = clamp8(16.0 + Y_SCALE * luma);
            bd[y * w2 + x] = b - luma;
            rd[y * w2 + x] = r - luma;
        }
    }
    let (cw, ch) = (w2 / 2, h2 / 2);
    let site = |plane: &[f32], i: usize, j: usize| {
        let mut s = 0.0;
        for row in [2 * j, 2 * j + 1] {
            let r = &plane[row * w2..][..w2];
            s += r[(2 * i).saturating_sub(1)] + 2.0 * r[2 * i] + r[(2 * i + 1).min(w2 - 1)];
        }
        s / 8.0
    };
    for j in 0..ch {
        for i in 0..cw {
            us[j * cw + i] = clamp8(128.0 + C_SCALE * site(&bd, i, j) / (2.0 * (1.0 - KB)));
            vs[j * cw + i] = clamp8(128.0 + C_SCALE * site(&rd, i, j) / (2.0 * (1.0 - KR)));
        }
    }
    Yuv420 { width: w2, height: h2, data }
}

/// A chroma plane (`cw` x `ch` samples, row stride `stride`) interpolated to `w` x `h`
/// luma sites, centred on zero (value - 128).
fn upsample(plane: &[u8], stride: usize, (cw, ch): (usize, usize), w: usize, h: usize) -> Vec<f32> {
    let at = |i: usize, j: usize| plane[j.min(ch - 1) * stride + i.min(cw - 1)] as f32 - 128.0;
    // Horizontal: even columns sit on a chroma sample, odd ones halfway between two.
    let horiz = |j: usize, x: usize| {
        if x.is_multiple_of(2) {
            at(x / 2, j)
        } else {
            0.5 * (at(x / 2, j) + at(x / 2 + 1, j))
        }
    };
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        // Vertical: chroma row j sits at luma row 2j + 1/2, so row 2j is 1/4 of the way
        // from j towards j - 1, and row 2j + 1 is 1/4 of the way towards j + 1.
        let j = y / 2;
        let other = if y.is_multiple_of(2) { j.saturating_sub(1) } else { j + 1 };
        for x in 0..w {
            out[y * w + x] = 0.75 * horiz(j, x) + 0.25 * horiz(other, x);
        }
    }
    out
}

/// Decoded planes with their strides to RGB8 of `width` x `height` (the top-left part of
/// the decoded picture). The caller checks that the planes are large enough.
pub fn yuv420_to_rgb(
    (y, u, v): (&[u8], &[u8], &[u8]),
    (sy, su, sv): (usize, usize, usize),
    width: usize,
    height: usize,
) -> Vec<u8> {
    let chroma = (width.div_ceil(2), height.div_ceil(2));
    let cb = upsample(u, su, chroma, width, height);
    let cr = upsample(v, sv, chroma, width, height);
    // Inverse of the forward matrix above.
    let (r_cr, b_cb) = (2.0 * (1.0 - KR) / C_SCALE, 2.0 * (1.0 - KB) / C_SCALE);
    let (g_cb, g_cr) = (-b_cb * KB / KG, -r_cr * KR / KG);
    let mut out = vec![0u8; width * height * 3];
    for row in 0..height {
        for col in 0..width {
            let luma = (y[row * sy + col] as f32 - 16.0) / Y_SCALE;
            let k = row * width + col;
            let (u, v) = (cb[k], cr[k]);
            out[3 * k] = clamp8(luma + r_cr * v);
            out[3 * k + 1] = clamp8(luma + g_cb * u + g_cr * v);
            out[3 * k + 2] = clamp8(luma + b_cb * u);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published BT.601 limited-range values: white, black and the primaries.
    #[test]
    fn matches_bt601_reference_colours() {
        let cases = [
            ([255, 255, 255], [235, 128, 128]),
            ([0, 0, 0], [16, 128, 128]),
            ([255, 0, 0], [81, 90, 240]),
            ([0, 255, 0], [145, 54, 34]),
            ([0, 0, 255], [41, 240, 110]),
        ];
        for (rgb, yuv) in cases {
            let px: Vec<u8> = rgb.repeat(4);
            let p = rgb_to_yuv420(&px, 2, 2);
            assert_eq!([p.data[0], p.data[4], p.data[5]], yuv, "{rgb:?}");
            let back = yuv420_to_rgb((&p.data[..4], &p.data[4..5], &p.data[5..]), (2, 1, 1), 2, 2);
            for (a, b) in back.iter().zip(&px) {
                assert!((*a as i32 - *b as i32).abs() <= 1, "{rgb:?} -> {back:?}");
            }
        }
    }

    #[test]
    fn odd_sizes_pad_to_even() {
        let p = rgb_to_yuv420(&[10; 3 * 3 * 5], 3, 5);
        assert_eq!((p.width, p.height, p.data.len()), (4, 6, 4 * 6 * 3 / 2));
    }
}
