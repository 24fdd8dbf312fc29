//! The workspace's one seeded generator and Gaussian sampler. The world's scenes, the
//! trainer's batches and noise, and the sampler's initial latents must give identical
//! bytes for a seed on every platform and device, so they do not depend on an external
//! crate's stream staying stable.

/// SplitMix64 (Steele, Lea, Flood 2014).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The generator whose state is `state` as it is (the initial latents of `--seed N`
    /// are this stream at N).
    pub fn from_state(state: u64) -> Self {
        Self(state)
    }

    /// An independent stream for item `i` of a seed (clip `i` of a suite, say).
    pub fn derive(seed: u64, i: u64) -> Self {
        let mut r = Self::new(seed);
        r.0 = r.0.wrapping_add(i.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Uniform in (0, 1]: never 0, so its logarithm is finite.
    pub fn unit_open(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// `n` standard normal samples: Box-Muller, two per pair of uniforms (the cosine's,
    /// then the sine's).
    pub fn normals(&mut self, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let r = (-2.0 * self.unit_open().ln()).sqrt();
            let theta = 2.0 * std::f64::consts::PI * self.unit_open();
            out.push((r * theta.cos()) as f32);
            out.push((r * theta.sin()) as f32);
        }
        out.truncate(n);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normals_are_standard_and_seeded() {
        let a = Rng::from_state(7).normals(4001);
        assert_eq!(a.len(), 4001);
        assert_eq!(a, Rng::from_state(7).normals(4001));
        assert_ne!(a, Rng::from_state(8).normals(4001));
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.05 && (var - 1.0).abs() < 0.06, "{mean} {var}");
        // SplitMix64's published first output for state 0 (Vigna's reference code).
        assert_eq!(Rng::from_state(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }
}
