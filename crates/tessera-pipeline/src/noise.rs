//! Seeded Gaussian noise that is identical on every device and platform.
//!
//! The initial latents are drawn on the host from a fixed generator (SplitMix64 feeding a
//! Box-Muller transform) and then moved to the device, so `--seed N` gives the same video
//! on CPU and CUDA. It cannot reproduce torch's generator; parity runs pass `--latents`.

use candle_core::{Device, Result, Shape, Tensor};

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for noise.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: never 0, so the logarithm below is finite.
    fn next_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
}

/// Standard normal samples, `shape` in row-major order, as f32 on `device`.
pub fn randn(seed: u64, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
    let shape = shape.into();
    let n = shape.elem_count();
    let mut rng = SplitMix64(seed);
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        // Box-Muller gives two independent normals per pair of uniforms.
        let r = (-2.0 * rng.next_unit().ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * rng.next_unit();
        out.push((r * theta.cos()) as f32);
        out.push((r * theta.sin()) as f32);
    }
    out.truncate(n);
    Tensor::from_vec(out, shape, device)
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
