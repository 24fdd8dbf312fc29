//! Fitting frames to a size and a frame rate: inputs to a generation (images, videos to
//! extend, connect, interpolate or edit) come at any size and rate.

use crate::Frame;

/// How a frame of another aspect ratio is fitted (`--resize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fit {
    /// Scale to cover the target, then cut the centre (the default: no borders).
    #[default]
    Crop,
    /// Scale to fit inside the target, then pad with mid-grey (nothing is cut).
    Pad,
    /// Scale each axis on its own (the aspect ratio changes).
    Stretch,
}

impl std::str::FromStr for Fit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "crop" => Ok(Fit::Crop),
            "pad" => Ok(Fit::Pad),
            "stretch" => Ok(Fit::Stretch),
            _ => Err(format!("--resize {s:?} is not one of crop, pad, stretch")),
        }
    }
}

/// `f` fitted to w x h. Bilinear, with a box prefilter when shrinking by 2x or more so
/// small features are averaged, not skipped. A frame already w x h is returned as is.
pub fn fit(f: &Frame, w: usize, h: usize, how: Fit) -> Frame {
    if f.width == w && f.height == h {
        return f.clone();
    }
    let (sx, sy) = match how {
        Fit::Stretch => (w as f64 / f.width as f64, h as f64 / f.height as f64),
        Fit::Crop => {
            let s = (w as f64 / f.width as f64).max(h as f64 / f.height as f64);
            (s, s)
        }
        Fit::Pad => {
            let s = (w as f64 / f.width as f64).min(h as f64 / f.height as f64);
            (s, s)
        }
    };
    // Shrink by whole factors first (box filter), then bilinear for the rest.
    let k = ((1.0 / sx.min(sy)).floor() as usize).max(1);
    let src = if k >= 2 { box_shrink(f, k) } else { f.clone() };
    let (sx, sy) = (sx * k as f64, sy * k as f64);
    let (sw, sh) = ((src.width as f64 * sx).round() as usize, (src.height as f64 * sy).round() as usize);
    // Offset of the output's origin in the scaled image (negative: padding).
    let ox = (sw as isize - w as isize) / 2;
    let oy = (sh as isize - h as isize) / 2;
    let mut out = vec![128u8; w * h * 3];
    for y in 0..h {
        let Some((y0, y1, ty)) = taps(y as isize + oy, sh, sy, src.height) else { continue };
        for x in 0..w {
            let Some((x0, x1, tx)) = taps(x as isize + ox, sw, sx, src.width) else { continue };
            for c in 0..3 {
                let p = |xx: usize, yy: usize| src.data[(yy * src.width + xx) * 3 + c] as f64;
                let top = p(x0, y0) * (1.0 - tx) + p(x1, y0) * tx;
                let bot = p(x0, y1) * (1.0 - tx) + p(x1, y1) * tx;
                out[(y * w + x) * 3 + c] = (top * (1.0 - ty) + bot * ty).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Frame { width: w, height: h, data: out }
}

/// Bilinear taps along one axis for position `i` of the scaled image (`scaled` long, at
/// `scale` times the `n` source samples): the two source indices and the weight of the
/// second. None outside the scaled image (padding).
fn taps(i: isize, scaled: usize, scale: f64, n: usize) -> Option<(usize, usize, f64)> {
    if i < 0 || i >= scaled as isize {
        return None;
    }
    let f = (i as f64 + 0.5) / scale - 0.5;
    let i0 = f.floor().clamp(0.0, (n - 1) as f64) as usize;
    Some((i0, (i0 + 1).min(n - 1), (f - i0 as f64).clamp(0.0, 1.0)))
}

/// Averages k x k blocks (edges: the partial blocks that remain).
fn box_shrink(f: &Frame, k: usize) -> Frame {
    let (w, h) = (f.width.div_ceil(k), f.height.div_ceil(k));
    let mut out = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0u32; 3];
            let mut n = 0;
            for yy in y * k..((y + 1) * k).min(f.height) {
                for xx in x * k..((x + 1) * k).min(f.width) {
                    let i = (yy * f.width + xx) * 3;
                    for c in 0..3 {
                        acc[c] += f.data[i + c] as u32;
                    }
                    n += 1;
                }
            }
            for c in 0..3 {
                out[(y * w + x) * 3 + c] = ((acc[c] + n / 2) / n) as u8;
            }
        }
    }
    Frame { width: w, height: h, data: out }
}

/// The frames of a clip at `src_fps` shown at `fps`: for each output time the nearest
/// input frame, over the clip's whole duration (len / src_fps seconds). A still image
/// (src_fps 0) or equal rates return the frames as they are.
pub fn resample(frames: &[Frame], src_fps: f64, fps: f64) -> Vec<Frame> {
    if frames.is_empty() || src_fps <= 0.0 || (src_fps - fps).abs() < 1e-9 {
        return frames.to_vec();
    }
    let duration = frames.len() as f64 / src_fps;
    let n = ((duration * fps).round() as usize).max(1);
    (0..n)
        .map(|j| {
            let i = ((j as f64 / fps) * src_fps).round() as usize;
            frames[i.min(frames.len() - 1)].clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: usize, h: usize, v: u8) -> Frame {
        Frame { width: w, height: h, data: vec![v; w * h * 3] }
    }

    #[test]
    fn crop_pad_stretch_sizes_and_borders() {
        // A 4x2 frame, left half black, right half white.
        let mut f = solid(4, 2, 0);
        for y in 0..2 {
            for x in 2..4 {
                f.data[(y * 4 + x) * 3..(y * 4 + x) * 3 + 3].fill(255);
            }
        }
        let c = fit(&f, 2, 2, Fit::Crop);
        assert_eq!((c.width, c.height), (2, 2));
        assert_eq!((c.data[0], c.data[3]), (0, 255)); // the centre: black | white
        let p = fit(&f, 4, 4, Fit::Pad);
        assert_eq!(p.data[0], 128); // top row is padding
        assert_eq!(p.data[(2 * 4) * 3], 0);
        let s = fit(&f, 2, 4, Fit::Stretch);
        assert_eq!((s.width, s.height, s.data[0], s.data[3]), (2, 4, 0, 255));
    }

    #[test]
    fn shrinking_averages() {
        // A 1-pixel white dot in a 8x8 black frame survives a 4x shrink as grey.
        let mut f = solid(8, 8, 0);
        f.data[(8 + 1) * 3..(8 + 1) * 3 + 3].fill(255);
        let s = fit(&f, 2, 2, Fit::Stretch);
        assert!(s.data[0] > 10 && s.data[0] < 30, "{}", s.data[0]);
    }

    #[test]
    fn resample_keeps_duration() {
        let frames: Vec<Frame> = (0..24).map(|i| solid(1, 1, i as u8)).collect();
        let r = resample(&frames, 24.0, 12.0);
        assert_eq!(r.len(), 12);
        assert_eq!(r[1].data[0], 2);
        assert_eq!(resample(&frames, 12.0, 24.0).len(), 48);
    }
}
