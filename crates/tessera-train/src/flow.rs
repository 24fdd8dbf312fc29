//! The objective: rectified flow as Wan is trained (Esser et al. 2024, "Scaling Rectified
//! Flow Transformers"; Wan 2.1 report). x_t = (1 - t) x0 + t noise, the model predicts the
//! velocity noise - x0, timesteps drawn uniformly and shifted toward noise as the sampler's
//! flow shift does. Conditioning frames use the layout of Wan's image-to-video models: the
//! transformer sees [x_t, mask (4 channels), latents of the given frames].

use candle_core::{DType, Device, Result, Tensor};
use tessera_world::rng::Rng;

/// Which pixel frames are given (the rest are generated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskKind {
    None,
    First,
    Last,
    FirstLast,
    Prefix,
    Suffix,
    Scattered,
}

impl MaskKind {
    pub const ALL: [MaskKind; 7] = [
        MaskKind::None,
        MaskKind::First,
        MaskKind::Last,
        MaskKind::FirstLast,
        MaskKind::Prefix,
        MaskKind::Suffix,
        MaskKind::Scattered,
    ];

    /// Draws a mask kind: none half the time (text-to-video), else one of the others.
    pub fn sample(rng: &mut Rng, cond_probability: f64) -> MaskKind {
        if !rng.chance(cond_probability) {
            return MaskKind::None;
        }
        *rng.pick(&Self::ALL[1..])
    }

    /// The pixel-frame mask (1 = given) for `frames` frames.
    pub fn frames(self, frames: usize, rng: &mut Rng) -> Vec<bool> {
        let mut m = vec![false; frames];
        let last = frames - 1;
        match self {
            MaskKind::None => {}
            MaskKind::First => m[0] = true,
            MaskKind::Last => m[last] = true,
            MaskKind::FirstLast => {
                m[0] = true;
                m[last] = true;
            }
            MaskKind::Prefix => {
                let k = 1 + rng.below(frames.div_ceil(2));
                m[..k].iter_mut().for_each(|x| *x = true);
            }
            MaskKind::Suffix => {
                let k = 1 + rng.below(frames.div_ceil(2));
                m[frames - k..].iter_mut().for_each(|x| *x = true);
            }
            MaskKind::Scattered => {
                for x in m.iter_mut() {
                    *x = rng.chance(0.25);
                }
                m[rng.below(frames)] = true;
            }
        }
        m
    }
}

// The mask layout lives with the pipeline, which builds the same channels at inference.
pub use tessera_pipeline::conditioning::{mask_channels, masked_video};

/// A timestep in (0, 1), uniform then shifted: s t / (1 + (s - 1) t).
pub fn sample_t(rng: &mut Rng, shift: f64) -> f64 {
    let t = rng.range(1e-3, 1.0 - 1e-3);
    shift * t / (1.0 + (shift - 1.0) * t)
}

/// Standard normal noise of a shape from a seeded stream (identical on every platform).
pub fn noise(rng: &mut Rng, shape: &[usize], device: &Device, dtype: DType) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    Tensor::from_vec(rng.normals(n), shape, device)?.to_dtype(dtype)
}

/// (x_t, target velocity) for clean latents x0, noise and per-sample timesteps t (B,).
pub fn noised(x0: &Tensor, noise: &Tensor, t: &[f64]) -> Result<(Tensor, Tensor)> {
    let b = x0.dim(0)?;
    let tt = Tensor::from_vec(t.iter().map(|&x| x as f32).collect::<Vec<_>>(), (b, 1, 1, 1, 1), x0.device())?
        .to_dtype(x0.dtype())?;
    let xt = (x0.broadcast_mul(&(1.0 - &tt)?)? + noise.broadcast_mul(&tt)?)?;
    let v = (noise - x0)?;
    Ok((xt, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_pack_like_wan_image_to_video() {
        // Nine frames, first given: Wan gives the first latent frame 1s in all four
        // channels and 0 elsewhere.
        let mut m = vec![false; 9];
        m[0] = true;
        let c = mask_channels(&m, 4, 1, 1, 1, &Device::Cpu, DType::F32).unwrap();
        assert_eq!(c.dims(), &[1, 4, 3, 1, 1]);
        let v: Vec<f32> = c.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, vec![1., 0., 0., 1., 0., 0., 1., 0., 0., 1., 0., 0.]);
        // Last frame given: latent frame 2 holds pixel frames 5..8, the last in channel 3.
        let mut m = vec![false; 9];
        m[8] = true;
        let v: Vec<f32> =
            mask_channels(&m, 4, 1, 1, 1, &Device::Cpu, DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, vec![0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 1.]);
    }

    #[test]
    fn every_mask_kind_gives_a_mask_and_shift_moves_toward_noise() {
        let mut rng = Rng::new(1);
        for k in MaskKind::ALL {
            let m = k.frames(17, &mut rng);
            assert_eq!(m.len(), 17);
            assert_eq!(m.iter().any(|&x| x), k != MaskKind::None, "{k:?}");
        }
        let mut r = Rng::new(3);
        let m1: f64 = (0..2000).map(|_| sample_t(&mut r, 1.0)).sum::<f64>() / 2000.0;
        let m3: f64 = (0..2000).map(|_| sample_t(&mut r, 3.0)).sum::<f64>() / 2000.0;
        assert!((m1 - 0.5).abs() < 0.03 && m3 > 0.65, "{m1} {m3}");
    }
}
