//! Step caching for the Wan transformer: whole passes through the blocks are skipped at
//! steps where their contribution is predicted to change little, and the residual the
//! blocks added at the last computed step is added instead.
//!
//! Two policies, each as diffusers' hook of the same name behaves (docs/ARCHITECTURE.md,
//! section 1, stage 10), so the same threshold skips the same steps:
//!
//! - **First-block cache** (ParaAttention's "first block cache", diffusers
//!   `hooks/first_block_cache.py`): block 0 always runs. Its residual (output − input) is
//!   compared with the residual of the last step at which every block ran:
//!   `mean|r − r_prev| / mean|r_prev|`. At or below the threshold, the other blocks are
//!   skipped and their residual at that step (the last block's output − block 0's output)
//!   is added to block 0's output.
//! - **MagCache** (Ma et al. 2025, "MagCache: Fast Video Generation with Magnitude-Aware
//!   Cache"; diffusers `hooks/mag_cache.py`): the ratio of the norms of the whole blocks'
//!   residual between consecutive steps is nearly the same for every prompt, so it is
//!   measured once per model (`calibrate`) and kept. After the first `retention` steps,
//!   the product of the ratios since the last computed step is accumulated as an error
//!   `Σ|1 − Π ratio|`; while that is within the threshold and at most `max_skip` steps
//!   were skipped in a row, the blocks are skipped and the last residual reused.
//!
//! One [`BlockCache`] holds one branch's state: classifier-free guidance keeps one for
//! the conditional and one for the unconditional pass, as diffusers' cache contexts do,
//! and each expert of a two-expert model starts with fresh ones.

use candle_core::{DType, Result, Tensor, D};

/// Which steps are skipped.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// First-block cache at this relative threshold (diffusers' default 0.05).
    FirstBlock { threshold: f64 },
    /// MagCache with one calibrated ratio per step (`ratios.len()` = the step count).
    Mag { threshold: f64, max_skip: usize, retention: usize, ratios: Vec<f64> },
    /// Nothing skipped; the magnitude ratio of every step is recorded (MagCache's
    /// calibration).
    Calibrate,
}

/// One branch's cache state and what it did.
#[derive(Debug, Clone)]
pub struct BlockCache {
    policy: Policy,
    /// First-block: block 0's residual at the last computed step.
    head_residual: Option<Tensor>,
    /// The residual added in place of the skipped blocks (first-block: of blocks 1..;
    /// MagCache: of all blocks).
    tail_residual: Option<Tensor>,
    acc_ratio: f64,
    acc_err: f64,
    acc_steps: usize,
    /// Passes through the blocks computed and skipped.
    pub computed: usize,
    pub skipped: usize,
    /// Calibration: the magnitude ratio at each step (1 at the first).
    pub ratios: Vec<f64>,
}

impl BlockCache {
    pub fn new(policy: Policy) -> Self {
        BlockCache {
            policy,
            head_residual: None,
            tail_residual: None,
            acc_ratio: 1.0,
            acc_err: 0.0,
            acc_steps: 0,
            computed: 0,
            skipped: 0,
            ratios: Vec::new(),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// MagCache's decision at scheduler step `step`, made before any block runs.
    fn mag_skips(&mut self, step: usize) -> bool {
        let Policy::Mag { threshold, max_skip, retention, ratios } = &self.policy else {
            return false;
        };
        if step < *retention {
            return false;
        }
        self.acc_ratio *= ratios.get(step).copied().unwrap_or(1.0);
        self.acc_steps += 1;
        self.acc_err += (1.0 - self.acc_ratio).abs();
        if self.tail_residual.is_some() && self.acc_err <= *threshold && self.acc_steps <= *max_skip {
            return true;
        }
        self.acc_ratio = 1.0;
        self.acc_err = 0.0;
        self.acc_steps = 0;
        false
    }

    /// First-block's decision from block 0's residual `r`.
    fn head_skips(&self, r: &Tensor, threshold: f64) -> Result<bool> {
        let (Some(prev), Some(_)) = (&self.head_residual, &self.tail_residual) else {
            return Ok(false);
        };
        let prev = prev.to_dtype(DType::F32)?;
        let diff = (r.to_dtype(DType::F32)? - &prev)?.abs()?.mean_all()?.to_scalar::<f32>()? as f64;
        let base = prev.abs()?.mean_all()?.to_scalar::<f32>()? as f64;
        // As diffusers: compute when diff / base > threshold (a zero base computes).
        Ok(base > 0.0 && diff / base <= threshold)
    }

    /// Runs `blocks` (each maps the hidden states to the next) over `x` at scheduler step
    /// `step`, skipping what the policy allows.
    pub fn run(
        &mut self,
        x: &Tensor,
        step: usize,
        blocks: usize,
        block: &dyn Fn(usize, &Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let all = |from: usize, x: Tensor| -> Result<Tensor> {
            let mut x = x;
            for i in from..blocks {
                x = block(i, &x)?;
            }
            Ok(x)
        };
        // By value only the threshold (Copy): no per-pass copy of the ratios.
        match self.policy {
            Policy::FirstBlock { threshold } => {
                if blocks < 2 {
                    self.computed += 1;
                    return all(0, x.clone());
                }
                let h0 = block(0, x)?;
                let r = (&h0 - x)?;
                if self.head_skips(&r, threshold)? {
                    self.skipped += 1;
                    let tail = self.tail_residual.as_ref().expect("checked by head_skips");
                    return &h0 + tail;
                }
                let out = all(1, h0.clone())?;
                self.tail_residual = Some((&out - &h0)?);
                self.head_residual = Some(r);
                self.computed += 1;
                Ok(out)
            }
            Policy::Mag { .. } | Policy::Calibrate => {
                if self.mag_skips(step) {
                    self.skipped += 1;
                    let tail = self.tail_residual.as_ref().expect("checked by mag_skips");
                    return x + tail;
                }
                let out = all(0, x.clone())?;
                let residual = (&out - x)?;
                if matches!(self.policy, Policy::Calibrate) {
                    let ratio = match &self.tail_residual {
                        Some(prev) => magnitude_ratio(&residual, prev)?,
                        None => 1.0,
                    };
                    self.ratios.push(ratio);
                }
                self.tail_residual = Some(residual);
                self.computed += 1;
                Ok(out)
            }
        }
    }
}

/// MagCache's ratio: the mean over tokens of |r| / |r_prev|, norms over the last axis.
fn magnitude_ratio(r: &Tensor, prev: &Tensor) -> Result<f64> {
    let norm = |t: &Tensor| t.to_dtype(DType::F32)?.sqr()?.sum(D::Minus1)?.sqrt();
    let ratio = (norm(r)? / (norm(prev)? + 1e-8)?)?;
    Ok(ratio.mean_all()?.to_scalar::<f32>()? as f64)
}

/// Calibrated ratios stretched to `steps` by nearest neighbour (diffusers'
/// `nearest_interp`), so ratios measured at one step count serve another.
pub fn fit_ratios(ratios: &[f64], steps: usize) -> Vec<f64> {
    match (ratios.len(), steps) {
        (_, 0) | (0, _) => vec![1.0; steps],
        (_, 1) => vec![*ratios.last().expect("not empty")],
        (n, _) if n == steps => ratios.to_vec(),
        (n, _) => {
            let scale = (n - 1) as f64 / (steps - 1) as f64;
            // NumPy's round: halves to even.
            (0..steps).map(|i| ratios[((i as f64 * scale).round_ties_even() as usize).min(n - 1)]).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v, (1, 1, v.len()), &Device::Cpu).unwrap()
    }

    /// Two "blocks": block 0 adds `a`, block 1 adds `b`, with counters of their calls.
    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    fn run_with(cache: &mut BlockCache, x: &Tensor, step: usize, a: f32, b: f32, calls: &mut usize) -> Vec<f32> {
        let count = std::cell::Cell::new(0);
        let out = cache
            .run(x, step, 2, &|i, h| {
                count.set(count.get() + 1);
                h + if i == 0 { a as f64 } else { b as f64 }
            })
            .unwrap();
        *calls += count.get();
        out.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn first_block_skips_when_block_zero_barely_changes() {
        let mut c = BlockCache::new(Policy::FirstBlock { threshold: 0.05 });
        let mut calls = 0;
        let x = t(&[1.0, 2.0]);
        // Step 0: nothing cached, both blocks run: 1 + 1 + 10.
        assert!(close(&run_with(&mut c, &x, 0, 1.0, 10.0, &mut calls), &[12.0, 13.0]));
        assert_eq!(calls, 2);
        // Step 1: block 0's residual 1.02 vs 1.0 (2% <= 5%): block 1 skipped, its last
        // residual (10) added to block 0's output, whatever block 1 would give now.
        assert!(close(&run_with(&mut c, &x, 1, 1.02, 99.0, &mut calls), &[12.02, 13.02]));
        assert_eq!(calls, 3);
        // Step 2: residual 1.2 vs the last computed 1.0 (20%): everything runs again.
        assert!(close(&run_with(&mut c, &x, 2, 1.2, 5.0, &mut calls), &[7.2, 8.2]));
        assert_eq!((c.computed, c.skipped, calls), (2, 1, 5));
    }

    #[test]
    fn magcache_follows_the_accumulated_error_and_the_skip_limit() {
        let ratios = vec![1.0, 1.0, 0.99, 0.99, 0.99, 0.99, 0.5];
        let mut c = BlockCache::new(Policy::Mag { threshold: 0.05, max_skip: 2, retention: 1, ratios });
        let mut calls = 0;
        let x = t(&[0.0]);
        let mut skipped_at = Vec::new();
        for step in 0..7 {
            let before = c.skipped;
            run_with(&mut c, &x, step, 1.0, 2.0, &mut calls);
            if c.skipped > before {
                skipped_at.push(step);
            }
        }
        // Step 0 computes (retention); step 1: ratio 1, error 0 -> skip; step 2: product
        // 0.99, error 0.01 -> skip; step 3: a third skip in a row is over max_skip ->
        // compute, accumulators reset; 4: error 0.01 -> skip; 5: 0.01 + 0.0199 -> skip;
        // 6: over the skip limit -> compute.
        assert_eq!(skipped_at, vec![1, 2, 4, 5]);
        assert_eq!((c.computed, c.skipped), (3, 4));
    }

    #[test]
    fn calibration_records_the_residual_magnitude_ratio() {
        let mut c = BlockCache::new(Policy::Calibrate);
        let mut calls = 0;
        let x = t(&[0.0, 0.0]);
        run_with(&mut c, &x, 0, 3.0, 1.0, &mut calls); // residual (4, 4)
        run_with(&mut c, &x, 1, 1.0, 1.0, &mut calls); // residual (2, 2): half the norm
        assert_eq!(c.ratios.len(), 2);
        assert_eq!(c.ratios[0], 1.0);
        assert!((c.ratios[1] - 0.5).abs() < 1e-6, "{:?}", c.ratios);
        assert_eq!(c.skipped, 0);
    }

    #[test]
    fn ratios_stretch_by_nearest_neighbour() {
        assert_eq!(fit_ratios(&[1.0, 2.0, 3.0], 5), vec![1.0, 1.0, 2.0, 3.0, 3.0]);
        assert_eq!(fit_ratios(&[1.0, 2.0, 3.0, 4.0, 5.0], 3), vec![1.0, 3.0, 5.0]);
        assert_eq!(fit_ratios(&[1.0, 2.0], 1), vec![2.0]);
        assert_eq!(fit_ratios(&[], 2), vec![1.0, 1.0]);
    }
}
