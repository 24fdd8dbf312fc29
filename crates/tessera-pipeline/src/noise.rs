//! Seeded Gaussian noise that is identical on every device and platform.
//!
//! The initial latents are drawn on the host from the workspace's fixed generator
//! (tessera_media::rng: SplitMix64 feeding a Box-Muller transform) and then moved to the
//! device, so `--seed N` gives the same video on CPU and CUDA. It cannot reproduce torch's generator; parity runs pass `--latents`.

use candle_core::{Device, Result, Shape, Tensor};
use tessera_media::rng::Rng;

/// Standard normal samples, `shape` in row-major order, as f32 on `device`: the
/// workspace's generator (tessera_media::rng) with its state at `seed`.
pub fn randn(seed: u64, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
    let shape = shape.into();
    let n = shape.elem_count();
    Tensor::from_vec(Rng::from_state(seed).normals(n), shape, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_noise_and_standard_moments() {
        let a = randn(7, (4, 1000), &Device::Cpu).unwrap();
        let b = randn(7, (4, 1000), &Device::Cpu).unwrap();
        let c = randn(8, (4, 1000), &Device::Cpu).unwrap();
        let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        let c: Vec<f32> = c.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 1.0).abs() < 0.06, "var {var}");
    }
}
