//! The Euler sampler of rectified flow: diffusers' `FlowMatchEulerDiscreteScheduler`
//! (schedulers/scheduling_flow_match_euler_discrete.py) without dynamic shifting. The step
//! is one line, `x = x + (sigma_next - sigma) * v`, over [`euler_schedule`]. With the
//! config's `stochastic_sampling` it is the reference's stochastic step instead: the clean
//! estimate `x0 = x - sigma * v` noised afresh to the next level,
//! `x = (1 - sigma_next) * x0 + sigma_next * noise`, so noise that a model fails to remove
//! is replaced rather than carried into the next step. The fresh noise is seeded
//! ([`FlowMatchEuler::set_noise_seed`]), one draw per step.

use std::path::Path;

use candle_core::{bail, DType, Device, Tensor};
use tessera_models::{Error, Result};

use super::config::EulerConfig;
use super::{add, is_half, linspace, mul_scalar, shift_sigma, stretch_to_terminal};

/// The ends of the training schedule the reference builds in `__init__`, in float32:
/// sigma = shift_sigma(t / N) for t = N and t = 1.
fn training_sigma_range(shift: f64, num_train_timesteps: usize) -> (f64, f64) {
    let n = num_train_timesteps as f32;
    let shifted = |t: f32| {
        let s = t / n;
        shift as f32 * s / (1.0 + (shift - 1.0) as f32 * s)
    };
    (shifted(n) as f64, shifted(1.0) as f64)
}

/// The Euler schedule (`set_timesteps`): returns `(timesteps, sigmas)`. The timesteps are
/// spaced evenly between the training schedule's ends, which are already shifted, and
/// then shifted again (as the reference does), in float64; sigmas are stored as float32
/// with a final 0, timesteps = sigma * N in float32.
pub fn euler_schedule(
    num_steps: usize,
    shift: f64,
    num_train_timesteps: usize,
    shift_terminal: Option<f64>,
) -> (Vec<f64>, Vec<f64>) {
    let n = num_train_timesteps as f64;
    let (sigma_max, sigma_min) = training_sigma_range(shift, num_train_timesteps);
    let mut s: Vec<f64> =
        linspace(sigma_max * n, sigma_min * n, num_steps).into_iter().map(|t| shift_sigma(t / n, shift)).collect();
    if let Some(t) = shift_terminal {
        stretch_to_terminal(&mut s, t);
    }
    let s32: Vec<f32> = s.into_iter().map(|x| x as f32).collect();
    let timesteps = s32.iter().map(|&x| (x * num_train_timesteps as f32) as f64).collect();
    let sigmas = s32.iter().map(|&x| x as f64).chain([0.0]).collect();
    (timesteps, sigmas)
}

/// The Euler sampler state (just the step index).
#[derive(Debug, Clone)]
pub struct FlowMatchEuler {
    config: EulerConfig,
    shift_terminal: Option<f64>,
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
    step_index: Option<usize>,
    begin_index: Option<usize>,
    noise_seed: u64,
}

impl FlowMatchEuler {
    /// Checks the config (errors name `path` and the key) and builds the scheduler.
    pub fn new(config: EulerConfig, path: &Path) -> Result<Self> {
        let shift_terminal = config.check(path)?;
        Ok(Self {
            config,
            shift_terminal,
            timesteps: Vec::new(),
            sigmas: Vec::new(),
            step_index: None,
            begin_index: None,
            noise_seed: 0,
        })
    }

    pub fn config(&self) -> &EulerConfig {
        &self.config
    }

    pub fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    pub fn step_index(&self) -> Option<usize> {
        self.step_index
    }

    /// The seed of the stochastic step's fresh noise (step k draws from a seed derived
    /// from this and k). Without `stochastic_sampling` nothing is drawn.
    pub fn set_noise_seed(&mut self, seed: u64) {
        self.noise_seed = seed;
    }

    pub fn set_begin_index(&mut self, i: usize) {
        self.begin_index = Some(i);
    }

    pub fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        if num_inference_steps == 0 {
            return Err(Error::Invalid("the number of inference steps must be at least 1".into()));
        }
        (self.timesteps, self.sigmas) = euler_schedule(
            num_inference_steps,
            self.config.shift,
            self.config.num_train_timesteps,
            self.shift_terminal,
        );
        self.step_index = None;
        self.begin_index = None;
        Ok(())
    }

    /// Like `from_config(config, shift=..)`: the training schedule's ends move too (unlike
    /// the reference's `set_shift`, which changes only the second shift).
    pub fn set_shift(&mut self, shift: f64) -> Result<()> {
        self.config.shift = shift;
        match self.timesteps.len() {
            0 => Ok(()),
            n => self.set_timesteps(n),
        }
    }

    /// diffusers' `index_for_timestep`: the second match if the timestep repeats; a
    /// timestep not in the schedule is an error (the reference raises IndexError).
    fn index_for_timestep(&self, timestep: f64) -> candle_core::Result<usize> {
        let hits: Vec<usize> = (0..self.timesteps.len()).filter(|&i| self.timesteps[i] == timestep).collect();
        match hits.as_slice() {
            [] => bail!("FlowMatchEuler: timestep {timestep} is not in the schedule {:?}", self.timesteps),
            [i] => Ok(*i),
            [_, i, ..] => Ok(*i),
        }
    }

    /// The sigma index `scale_noise` uses at `timestep`.
    pub(super) fn noise_index(&self, timestep: f64) -> candle_core::Result<usize> {
        match (self.begin_index, self.step_index) {
            (None, _) => self.index_for_timestep(timestep),
            (Some(_), Some(k)) => Ok(k),
            (Some(b), None) => Ok(b),
        }
    }

    /// `x = x + (sigma_next - sigma) * v`, computed in at least f32 and returned in the
    /// model output's dtype, as the reference does.
    pub fn step(&mut self, model_output: &Tensor, timestep: f64, sample: &Tensor) -> candle_core::Result<Tensor> {
        let n = self.timesteps.len();
        if n == 0 {
            bail!("FlowMatchEuler: set_timesteps must be called before step");
        }
        let k = match (self.step_index, self.begin_index) {
            (Some(k), _) => k,
            (None, Some(b)) => b,
            (None, None) => self.index_for_timestep(timestep)?,
        };
        if k >= n {
            bail!("FlowMatchEuler: all {n} steps of the schedule have been taken");
        }
        // The reference upcasts the sample to f32 "to avoid precision issues"; an f64
        // sample is kept in f64 rather than cast down.
        let x = if is_half(sample.dtype()) { sample.to_dtype(DType::F32)? } else { sample.clone() };
        let (sigma, next) = (self.sigmas[k] as f32, self.sigmas[k + 1] as f32);
        let prev = if self.config.stochastic_sampling {
            // diffusers: x0 = sample - sigma * v; prev = (1 - sigma_next) * x0 + sigma_next * noise
            let x0 = add(&x, &mul_scalar(&model_output.to_dtype(x.dtype())?, -(sigma as f64))?)?;
            let seed = self.noise_seed ^ (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let noise = crate::noise::randn(seed, x.shape().clone(), &Device::Cpu)?
                .to_dtype(x.dtype())?
                .to_device(x.device())?;
            add(&mul_scalar(&x0, 1.0 - next as f64)?, &mul_scalar(&noise, next as f64)?)?
        } else {
            let dt = next - sigma;
            add(&x, &mul_scalar(model_output, dt as f64)?)?
        };
        self.step_index = Some(k + 1);
        prev.to_dtype(model_output.dtype())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift3_schedule_at_four_steps() {
        // diffusers: FlowMatchEulerDiscreteScheduler(shift=3.0).set_timesteps(4)
        // -> timesteps [1000.0, 857.6923, 602.1506, 8.9286] (float32)
        let (t, s) = euler_schedule(4, 3.0, 1000, None);
        let expect = [1000.0f32, 857.692_3, 602.150_6, 8.928_572];
        for (a, e) in t.iter().zip(expect) {
            assert!((a - e as f64).abs() < 1e-3, "{t:?}");
        }
        assert_eq!(s.len(), 5);
        assert_eq!(s[0], 1.0);
        assert_eq!(s[4], 0.0);
    }

    /// With the true velocity of a fixed clean sample, v = (x - x0) / sigma, both steps end
    /// at x0; the stochastic one's intermediate states follow its seed, and its first
    /// step is x0 noised afresh to the next level.
    #[test]
    fn stochastic_step_renoises_the_clean_estimate() {
        let dev = Device::Cpu;
        let x0 = Tensor::new(&[0.5f32, -1.0, 2.0, 0.25], &dev).unwrap();
        let start = crate::noise::randn(3, 4, &dev).unwrap();
        let run = |stochastic: bool, seed: u64| {
            let cfg = EulerConfig { shift: 3.0, stochastic_sampling: stochastic, ..Default::default() };
            let mut s = FlowMatchEuler::new(cfg, Path::new("test")).unwrap();
            s.set_timesteps(4).unwrap();
            s.set_noise_seed(seed);
            let mut x = start.clone();
            let mut states = Vec::new();
            for k in 0..4 {
                let sigma = s.sigmas()[k];
                let v = ((&x - &x0).unwrap() / sigma).unwrap();
                x = s.step(&v, s.timesteps()[k], &x).unwrap();
                states.push(x.to_vec1::<f32>().unwrap());
            }
            (states, s.sigmas().to_vec())
        };
        let want = x0.to_vec1::<f32>().unwrap();
        for stochastic in [false, true] {
            let (states, _) = run(stochastic, 1);
            for (a, b) in states[3].iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "stochastic {stochastic}: {:?}", states[3]);
            }
        }
        let (a, sigmas) = run(true, 1);
        let (b, _) = run(true, 2);
        assert_eq!(a[0], run(true, 1).0[0]);
        assert_ne!(a[0], b[0]);
        // x0 is exact here, so the first state's departure from (1 - s1) x0 is s1 * noise:
        // a standard normal draw, not the initial noise.
        let s1 = sigmas[1] as f32;
        let drawn: Vec<f32> = a[0].iter().zip(&want).map(|(x, w)| (x - (1.0 - s1) * w) / s1).collect();
        let (deterministic, _) = run(false, 1);
        assert_ne!(a[0], deterministic[0]);
        assert!(drawn.iter().all(|d| d.is_finite() && d.abs() < 6.0), "{drawn:?}");
        assert_ne!(drawn, start.to_vec1::<f32>().unwrap());
    }
}
