//! The 3-axis rotary position embedding of Wan (diffusers `WanRotaryPosEmbed`; RoFormer,
//! Su et al. 2021): the head dimension is split into time, height and width parts
//! (h = w = 2 * (head_dim / 6), t = the rest), each rotated by its axis' position.
//! Pairs are interleaved: (x[2i], x[2i+1]) rotate by angle pos * theta^(-2i/d).

use candle_core::{DType, Device, Result, Tensor, D};

/// cos and sin tables for a (frames, height, width) grid of patches, each (L, head_dim)
/// with every angle repeated for its pair, L = f * h * w in (f, h, w) order.
pub fn rope_tables(
    head_dim: usize,
    grid: (usize, usize, usize),
    device: &Device,
    dtype: DType,
) -> Result<(Tensor, Tensor)> {
    let h_dim = 2 * (head_dim / 6);
    let w_dim = h_dim;
    let t_dim = head_dim - h_dim - w_dim;
    let (f, h, w) = grid;
    let l = f * h * w;
    // Frequencies in f64 as the reference (freqs_dtype float64 off MPS).
    let axis =
        |dim: usize| -> Vec<f64> { (0..dim / 2).map(|i| 1.0 / 10000f64.powf((2 * i) as f64 / dim as f64)).collect() };
    let (ft, fh, fw) = (axis(t_dim), axis(h_dim), axis(w_dim));
    let mut cos = Vec::with_capacity(l * head_dim);
    let mut sin = Vec::with_capacity(l * head_dim);
    for ti in 0..f {
        for hi in 0..h {
            for wi in 0..w {
                for (pos, freqs) in [(ti, &ft), (hi, &fh), (wi, &fw)] {
                    for &fr in freqs.iter() {
                        let a = pos as f64 * fr;
                        // cos/sin of the f64 angle, then cast to f32, as the reference.
                        let (s, c) = a.sin_cos();
                        cos.extend([c as f32, c as f32]);
                        sin.extend([s as f32, s as f32]);
                    }
                }
            }
        }
    }
    let cos = Tensor::from_vec(cos, (l, head_dim), device)?.to_dtype(dtype)?;
    let sin = Tensor::from_vec(sin, (l, head_dim), device)?.to_dtype(dtype)?;
    Ok((cos, sin))
}

/// Applies interleaved rotary embedding. x: (B, H, L, D); cos, sin: (L, D).
/// out[2i] = x[2i] cos - x[2i+1] sin; out[2i+1] = x[2i] sin + x[2i+1] cos.
pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, h, l, d) = x.dims4()?;
    let pairs = x.reshape((b, h, l, d / 2, 2))?;
    let x1 = pairs.narrow(D::Minus1, 0, 1)?;
    let x2 = pairs.narrow(D::Minus1, 1, 1)?;
    // rotate_half for interleaved pairs: (-x2, x1)
    let rotated = Tensor::cat(&[x2.neg()?, x1], D::Minus1)?.reshape((b, h, l, d))?;
    x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_hand_computed() {
        // head_dim 12: t 4, h 4, w 4. Patch (f=1, h=0, w=2): time angle 1 * 1 for pair 0.
        let (cos, sin) = rope_tables(12, (2, 1, 3), &Device::Cpu, DType::F32).unwrap();
        let cos: Vec<Vec<f32>> = cos.to_vec2().unwrap();
        let sin: Vec<Vec<f32>> = sin.to_vec2().unwrap();
        let row = 3 + 2; // f=1, h=0, w=2
        assert!((cos[row][0] - 1f32.cos()).abs() < 1e-7);
        assert!((sin[row][1] - 1f32.sin()).abs() < 1e-7);
        // time pair 1: angle 1 * 10000^(-2/4) = 0.01
        assert!((sin[row][2] - 0.01f32.sin()).abs() < 1e-7);
        // height part (index 4..8): position 0
        assert_eq!(cos[row][4], 1.0);
        // width pair 0 (index 8): position 2
        assert!((sin[row][8] - 2f32.sin()).abs() < 1e-7);
    }

    #[test]
    fn apply_rotates_pairs() {
        let x = Tensor::new(&[1f32, 0.0, 0.0, 1.0], &Device::Cpu).unwrap().reshape((1, 1, 1, 4)).unwrap();
        let a = std::f32::consts::FRAC_PI_2;
        let cos = Tensor::new(&[[a.cos(), a.cos(), 1.0, 1.0]], &Device::Cpu).unwrap();
        let sin = Tensor::new(&[[a.sin(), a.sin(), 0.0, 0.0]], &Device::Cpu).unwrap();
        let y: Vec<f32> = apply(&x, &cos, &sin).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        // (1, 0) rotated by 90 degrees is (0, 1); the second pair is unrotated.
        assert!((y[0]).abs() < 1e-6 && (y[1] - 1.0).abs() < 1e-6);
        assert_eq!(&y[2..], &[0.0, 1.0]);
    }
}
