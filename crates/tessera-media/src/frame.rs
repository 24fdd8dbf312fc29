//! Frames (RGB8, rows top to bottom) and the conversion from the pipeline's f32 output.

use std::path::Path;

use crate::{Error, Result, WriteOptions};

/// One RGB8 frame, rows top to bottom, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// f32 in [0, 1] to u8 exactly as diffusers does for images and PyAV video
/// (`(images * 255).round().astype("uint8")` in image_processor.py `numpy_to_pil` and
/// export_utils.py `encode_video`): the product in f32, then NumPy's round half to even.
/// Values outside [0, 1] (and NaN) are clamped first; the pipeline never produces them.
///
/// Note: the older imageio path of `export_to_video` truncates (`(frame * 255).astype`),
/// which darkens by half a level on average; we round everywhere.
pub fn quantize(x: f32) -> u8 {
    let x = if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
    (x * 255.0).round_ties_even() as u8
}

impl Frame {
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<Self> {
        let expected = width.checked_mul(height).and_then(|n| n.checked_mul(3));
        if width == 0 || height == 0 || expected != Some(data.len()) {
            return Err(Error::Invalid(format!(
                "a {width}x{height} RGB frame needs {} bytes, got {}",
                expected.map_or("too many".into(), |n| n.to_string()),
                data.len()
            )));
        }
        Ok(Self { width, height, data })
    }

    /// A frame from f32 RGB in [0, 1], (H, W, 3) row-major, quantised with [`quantize`].
    pub fn from_f32(width: usize, height: usize, rgb: &[f32]) -> Result<Self> {
        Self::new(width, height, rgb.iter().map(|&x| quantize(x)).collect())
    }

    /// Mean squared error to another frame of the same size.
    pub fn mse(&self, other: &Frame) -> f64 {
        let n = self.data.len().max(1) as f64;
        self.data.iter().zip(&other.data).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum::<f64>() / n
    }

    /// Peak signal-to-noise ratio in dB (infinite for identical frames).
    pub fn psnr(&self, other: &Frame) -> f64 {
        let mse = self.mse(other);
        if mse == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (255.0f64 * 255.0 / mse).log10()
        }
    }
}

/// Frames from the pipeline's output layout: (T, H, W, 3) f32 in [0, 1], row-major (as
/// diffusers' `output_type="np"`).
pub fn frames_from_f32(data: &[f32], t: usize, height: usize, width: usize) -> Result<Vec<Frame>> {
    let per = height.saturating_mul(width).saturating_mul(3);
    if t == 0 || per == 0 || data.len() != t.saturating_mul(per) {
        return Err(Error::Invalid(format!("{} values do not make {t} frames of {width}x{height} RGB", data.len())));
    }
    data.chunks(per).map(|px| Frame::from_f32(width, height, px)).collect()
}

/// A clip: same-sized frames at a constant rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Video {
    pub frames: Vec<Frame>,
    /// Frames per second (0 for a still image).
    pub fps: f64,
}

impl Video {
    /// From (T, H, W, 3) f32 in [0, 1], see [`frames_from_f32`].
    pub fn from_f32(data: &[f32], t: usize, height: usize, width: usize, fps: f64) -> Result<Self> {
        Ok(Self { frames: frames_from_f32(data, t, height, width)?, fps })
    }

    /// Reads an MP4, GIF or PNG, see [`crate::read_video`].
    pub fn read(path: &Path) -> Result<Self> {
        let (frames, fps) = crate::read_video(path)?;
        Ok(Self { frames, fps })
    }

    /// Writes by extension, see [`crate::write_video`].
    pub fn write(&self, path: &Path, opts: &WriteOptions) -> Result<()> {
        crate::write_video(path, &self.frames, self.fps, opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ties of `x * 255` in f32 round to even, as NumPy does (values from
    /// `(np.float32(x) * 255).round().astype("uint8")`, NumPy 2, diffusers 0.42.1 venv).
    #[test]
    fn quantize_matches_numpy_round_half_even() {
        let cases = [
            (0x3b00_8081, 0),   // 0.5
            (0x3bc0_c0c1, 2),   // 1.5
            (0x3c20_a0a1, 2),   // 2.5
            (0x3c60_e0e1, 4),   // 3.5
            (0x3f00_0000, 128), // 127.5
            (0x3f01_0101, 128), // 128.5
            (0x3f7e_7e7e, 254), // 253.5
            (0x3f7f_7f7f, 254), // 254.5
        ];
        for (bits, want) in cases {
            let x = f32::from_bits(bits);
            assert_eq!(quantize(x), want, "{x} * 255 = {}", x * 255.0);
        }
        assert_eq!(quantize(0.25), 64);
        assert_eq!((quantize(-0.5), quantize(1.5), quantize(f32::NAN)), (0, 255, 0));
    }

    #[test]
    fn f32_layout_is_t_h_w_c() {
        // Two 1x2 frames; the second frame's right pixel is white.
        let mut data = vec![0f32; 2 * 2 * 3];
        data[9..12].fill(1.0);
        let f = frames_from_f32(&data, 2, 1, 2).unwrap();
        assert_eq!(f[1].data, vec![0, 0, 0, 255, 255, 255]);
        assert!(frames_from_f32(&data, 3, 1, 2).is_err());
    }
}
