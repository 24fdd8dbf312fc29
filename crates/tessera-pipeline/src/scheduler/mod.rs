//! Flow-matching schedulers, read from a diffusers `scheduler/scheduler_config.json`:
//!
//! ```text
//! UniPCMultistepScheduler          (Wan's default)  unipc.rs   multistep predictor-corrector
//! FlowMatchEulerDiscreteScheduler                   euler.rs   x = x + (sigma_next - sigma) * v
//! ```
//!
//! Both run on flow sigmas: `x_sigma = sigma * noise + (1 - sigma) * x0`, sigma from ~1 (pure
//! noise) down to 0 (data), the transformer's timestep being `sigma * num_train_timesteps`.
//! The schedules are pure functions ([`unipc_flow_schedule`], [`euler_schedule`]) and the
//! scheduler objects only add the step state. Numbers follow diffusers 0.42 exactly: the
//! schedules are computed in float64 as numpy does and stored as float32 sigmas, and the
//! step's scalar coefficients are float32 like the reference's 0-d tensors, applied in the
//! tensors' own dtypes (the `torch` promotion rules are emulated by the helpers below).

mod config;
mod euler;
mod unipc;

use std::path::Path;

use candle_core::{DType, Tensor};
use serde::Deserialize;
use serde_json::Value;
use tessera_models::loading::{check_class, read_json};
use tessera_models::{Error, Result};

pub use config::{EulerConfig, FinalSigmas, SolverType, UniPcConfig};
pub use euler::{euler_schedule, FlowMatchEuler};
pub use unipc::{flow_sigmas, unipc_flow_schedule, UniPc};

/// Builds a scheduler of one class from its config.
type Build = fn(&Value, &Path) -> Result<Scheduler>;

/// Every scheduler class tessera runs, and how each is built from its config: the one
/// place a class is added (docs/ARCHITECTURE.md, "How to add a scheduler"). A class not
/// here is an error that lists these.
const CLASSES: &[(&str, Build)] =
    &[("UniPCMultistepScheduler", build_unipc), ("FlowMatchEulerDiscreteScheduler", build_euler)];

fn build_unipc(value: &Value, path: &Path) -> Result<Scheduler> {
    let config = UniPcConfig::deserialize(value).map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
    Ok(Scheduler::UniPc(Box::new(UniPc::new(config, path)?)))
}

fn build_euler(value: &Value, path: &Path) -> Result<Scheduler> {
    let config = EulerConfig::deserialize(value).map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
    Ok(Scheduler::Euler(FlowMatchEuler::new(config, path)?))
}

/// The `_class_name`s [`Scheduler::from_file`] accepts.
pub fn supported_classes() -> Vec<&'static str> {
    CLASSES.iter().map(|(name, _)| *name).collect()
}

/// A scheduler as named by `_class_name`.
#[derive(Debug, Clone)]
pub enum Scheduler {
    // Boxed: the multistep state is several times the size of Euler's.
    UniPc(Box<UniPc>),
    Euler(FlowMatchEuler),
}

impl Scheduler {
    /// Reads `scheduler_config.json`; the class comes from `_class_name`, unknown keys are
    /// ignored and a key asking for something not implemented is an error naming it.
    pub fn from_file(path: &Path) -> Result<Self> {
        let class = check_class(path, &supported_classes())?;
        let value: Value = read_json(path)?;
        Self::from_value(&class, &value, path)
    }

    /// Reads `scheduler_config.json` as the class `class`: diffusers takes a pipeline's
    /// scheduler class from `model_index.json`, whatever the config's `_class_name` says.
    pub fn from_file_as(path: &Path, class: &str) -> Result<Self> {
        let value: Value = read_json(path)?;
        Self::from_value(class, &value, path)
    }

    /// Same as [`Scheduler::from_file`] for a config held in memory (tests, presets).
    pub fn from_json_str(json: &str) -> Result<Self> {
        let path = Path::new("<scheduler config>");
        let value: Value =
            serde_json::from_str(json).map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
        let class = value.get("_class_name").and_then(Value::as_str).unwrap_or_default();
        Self::from_value(class, &value, path)
    }

    /// Builds `class` from the registry; a class it does not list is an error naming
    /// those it does.
    fn from_value(class: &str, value: &Value, path: &Path) -> Result<Self> {
        match CLASSES.iter().find(|(name, _)| *name == class) {
            Some((_, build)) => build(value, path),
            None => Err(Error::UnknownClass {
                path: path.to_path_buf(),
                class: class.to_string(),
                supported: supported_classes().join(", "),
            }),
        }
    }

    /// Computes the schedule for `num_inference_steps` steps and resets the step state.
    pub fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        match self {
            Self::UniPc(s) => s.set_timesteps(num_inference_steps),
            Self::Euler(s) => s.set_timesteps(num_inference_steps),
        }
    }

    /// Overrides the config's shift (`flow_shift` for UniPC, `shift` for Euler), as
    /// diffusers' `from_config(config, flow_shift=..)` does; a schedule already set is
    /// recomputed with the same number of steps.
    pub fn set_shift(&mut self, shift: f64) -> Result<()> {
        if !(shift.is_finite() && shift > 0.0) {
            return Err(Error::Invalid(format!("flow shift must be a positive number, got {shift}")));
        }
        match self {
            Self::UniPc(s) => s.set_shift(shift),
            Self::Euler(s) => s.set_shift(shift),
        }
    }

    /// The shift in use.
    pub fn shift(&self) -> f64 {
        match self {
            Self::UniPc(s) => s.config().flow_shift,
            Self::Euler(s) => s.config().shift,
        }
    }

    /// Timesteps handed to the transformer, one per step (integers for UniPC, float32
    /// values for Euler, as diffusers holds them). Empty before `set_timesteps`.
    pub fn timesteps(&self) -> &[f64] {
        match self {
            Self::UniPc(s) => s.timesteps(),
            Self::Euler(s) => s.timesteps(),
        }
    }

    /// Sigmas (float32 values), one per step plus the final one. Empty before `set_timesteps`.
    pub fn sigmas(&self) -> &[f64] {
        match self {
            Self::UniPc(s) => s.sigmas(),
            Self::Euler(s) => s.sigmas(),
        }
    }

    /// The sigma at step index `i` (`i == steps` is the final sigma).
    pub fn sigma_at(&self, i: usize) -> Option<f64> {
        self.sigmas().get(i).copied()
    }

    pub fn num_train_timesteps(&self) -> usize {
        match self {
            Self::UniPc(s) => s.config().num_train_timesteps,
            Self::Euler(s) => s.config().num_train_timesteps,
        }
    }

    /// The index of the next step, once stepping has begun.
    pub fn step_index(&self) -> Option<usize> {
        match self {
            Self::UniPc(s) => s.step_index(),
            Self::Euler(s) => s.step_index(),
        }
    }

    /// Starts stepping at step `i` instead of looking the first timestep up (image-to-image
    /// and SDEdit start mid-schedule); call after `set_timesteps`, which clears it.
    pub fn set_begin_index(&mut self, i: usize) {
        match self {
            Self::UniPc(s) => s.set_begin_index(i),
            Self::Euler(s) => s.set_begin_index(i),
        }
    }

    /// The seed of a stochastic sampler's fresh noise (Euler with `stochastic_sampling`);
    /// the deterministic samplers ignore it.
    pub fn set_noise_seed(&mut self, seed: u64) {
        if let Self::Euler(s) = self {
            s.set_noise_seed(seed);
        }
    }

    /// One sampler step from `timestep` to the next, given the model's velocity prediction
    /// at (`sample`, `timestep`). As in diffusers, `timestep` only locates the first step
    /// (unless a begin index is set); after that the scheduler counts steps itself. The
    /// result has the sample's dtype (UniPC) or the model output's (Euler, as diffusers).
    pub fn step(&mut self, model_output: &Tensor, timestep: f64, sample: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::UniPc(s) => s.step(model_output, timestep, sample),
            Self::Euler(s) => s.step(model_output, timestep, sample),
        }
    }

    /// The forward process at `timestep`: `sigma * noise + (1 - sigma) * sample`
    /// (FlowMatchEulerDiscreteScheduler.scale_noise; UniPC's add_noise with flow sigmas is
    /// the same). The sigma is found as the reference does: the begin index when set,
    /// else the timestep looked up in the schedule.
    #[doc(alias = "add_noise")]
    pub fn scale_noise(&self, sample: &Tensor, noise: &Tensor, timestep: f64) -> candle_core::Result<Tensor> {
        let i = match self {
            Self::UniPc(s) => s.noise_index(timestep),
            Self::Euler(s) => s.noise_index(timestep)?,
        };
        let sigma =
            self.sigma_at(i).ok_or_else(|| candle_core::Error::Msg("scale_noise: call set_timesteps first".into()))?;
        flow_noise(sample, noise, sigma)
    }
}

/// `sigma * noise + (1 - sigma) * sample` with sigma (and 1 - sigma) rounded to the
/// sample's dtype, as the reference's `sigmas.to(sample.dtype)` does.
fn flow_noise(sample: &Tensor, noise: &Tensor, sigma: f64) -> candle_core::Result<Tensor> {
    let s = Tensor::new(&[sigma as f32], &candle_core::Device::Cpu)?.to_dtype(sample.dtype())?;
    let one_minus = s.affine(-1.0, 1.0)?;
    let scalar = |t: &Tensor| -> candle_core::Result<f64> { t.to_dtype(DType::F64)?.to_vec1::<f64>().map(|v| v[0]) };
    let (s, one_minus) = (scalar(&s)?, scalar(&one_minus)?);
    let noise = noise.to_dtype(promote(sample.dtype(), noise.dtype()))?;
    add(&mul_scalar(&noise, s)?, &mul_scalar(sample, one_minus)?)
}

// ---------------------------------------------------------------------------------------
// Pure schedule helpers shared by both schedulers.

/// numpy's `linspace(start, stop, num)` to the last bit: `start + i * step` with the
/// endpoint set exactly.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = v.last_mut() {
        *last = stop;
    }
    v
}

/// The SD3 / Wan timestep shift, `shift * s / (1 + (shift - 1) * s)`: spends more of the
/// steps at high noise for large latents (Esser et al. 2024, section 5.3.2).
pub fn shift_sigma(s: f64, shift: f64) -> f64 {
    shift * s / (1.0 + (shift - 1.0) * s)
}

/// Stretches a schedule so that it ends at `terminal` (LTX-Video's `shift_terminal`,
/// diffusers' `stretch_shift_to_terminal`).
pub fn stretch_to_terminal(sigmas: &mut [f64], terminal: f64) {
    let Some(&last) = sigmas.last() else { return };
    let scale = (1.0 - last) / (1.0 - terminal);
    for s in sigmas.iter_mut() {
        *s = 1.0 - (1.0 - *s) / scale;
    }
}

// ---------------------------------------------------------------------------------------
// torch's arithmetic on mixed dtypes, so a step gives the reference's numbers whether the
// latents and the model output are f32, bf16 or a mix (Wan: f32 latents, bf16 velocity).

/// The result dtype of a binary op between two floating tensors (torch.result_type).
fn promote(a: DType, b: DType) -> DType {
    let rank = |d: DType| match d {
        DType::F64 => 3,
        DType::F32 => 2,
        DType::BF16 | DType::F16 => 1,
        _ => 2,
    };
    match (rank(a), rank(b)) {
        (1, 1) if a != b => DType::F32,
        (ra, rb) if ra >= rb => a,
        _ => b,
    }
}

fn is_half(d: DType) -> bool {
    matches!(d, DType::BF16 | DType::F16)
}

/// `s * t` for a 0-d float tensor `s` holding exactly this value: the result keeps `t`'s
/// dtype. For half types torch (CPU) first casts `s` to that dtype, then multiplies in f32
/// and rounds once (measured on torch 2.x: `torch.tensor(0.9) * x_bf16`).
fn mul_scalar(t: &Tensor, s: f64) -> candle_core::Result<Tensor> {
    if is_half(t.dtype()) {
        let s = round_to(s as f32, t.dtype())?;
        t.to_dtype(DType::F32)?.affine(s, 0.0)?.to_dtype(t.dtype())
    } else {
        t.affine(s, 0.0)
    }
}

/// `t / s` for a 0-d float tensor `s` (a true division, not a multiply by 1/s; unlike
/// the product, torch keeps `s` in f32 for half `t`).
fn div_scalar(t: &Tensor, s: f64) -> candle_core::Result<Tensor> {
    let dtype = t.dtype();
    let work = if is_half(dtype) { DType::F32 } else { dtype };
    let d = Tensor::new(&[s], t.device())?.to_dtype(work)?;
    t.to_dtype(work)?.broadcast_div(&d)?.to_dtype(dtype)
}

fn add(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let d = promote(a.dtype(), b.dtype());
    a.to_dtype(d)?.add(&b.to_dtype(d)?)
}

fn sub(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let d = promote(a.dtype(), b.dtype());
    a.to_dtype(d)?.sub(&b.to_dtype(d)?)
}

/// `v` rounded to `dtype` (the reference's `.to(x.dtype)` on a coefficient tensor).
fn round_to(v: f32, dtype: DType) -> candle_core::Result<f64> {
    if is_half(dtype) {
        let t = Tensor::new(&[v], &candle_core::Device::Cpu)?.to_dtype(dtype)?;
        Ok(t.to_dtype(DType::F64)?.to_vec1::<f64>()?[0])
    } else {
        Ok(v as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_builds_its_own_scheduler_and_others_are_refused() {
        let unipc = serde_json::json!({"use_flow_sigmas": true, "prediction_type": "flow_prediction"});
        let expect = [
            ("UniPCMultistepScheduler", "UniPc", unipc),
            ("FlowMatchEulerDiscreteScheduler", "Euler", serde_json::json!({})),
        ];
        assert_eq!(supported_classes(), expect.iter().map(|(c, _, _)| *c).collect::<Vec<_>>());
        for (class, variant, mut config) in expect {
            // diffusers' pipelines may name the class in model_index.json instead.
            let s = Scheduler::from_value(class, &config, Path::new("x")).unwrap();
            assert!(format!("{s:?}").starts_with(variant), "{class} built {s:?}");
            config["_class_name"] = class.into();
            let s = Scheduler::from_json_str(&config.to_string()).unwrap();
            assert!(format!("{s:?}").starts_with(variant), "{class} built {s:?}");
        }
        for class in ["DPMSolverMultistepScheduler", ""] {
            let e = Scheduler::from_json_str(&format!("{{\"_class_name\": \"{class}\"}}")).unwrap_err().to_string();
            assert!(e.contains("UniPCMultistepScheduler, FlowMatchEulerDiscreteScheduler"), "{e}");
        }
    }

    #[test]
    fn linspace_matches_numpy() {
        // np.linspace(1, 1/1000, 5) -> [1.0, 0.75025, 0.5005, 0.25075, 0.001]
        let v = linspace(1.0, 0.001, 5);
        assert_eq!(v, vec![1.0, 0.75025, 0.5005, 0.25075000000000003, 0.001]);
        assert_eq!(linspace(3.0, 7.0, 1), vec![3.0]);
    }

    #[test]
    fn shift_keeps_the_ends() {
        assert_eq!(shift_sigma(1.0, 3.0), 1.0);
        assert_eq!(shift_sigma(0.0, 3.0), 0.0);
        assert_eq!(shift_sigma(0.5, 3.0), 0.75);
    }

    #[test]
    fn promotion_follows_torch() {
        assert_eq!(promote(DType::F32, DType::BF16), DType::F32);
        assert_eq!(promote(DType::BF16, DType::F16), DType::F32);
        assert_eq!(promote(DType::BF16, DType::BF16), DType::BF16);
        assert_eq!(promote(DType::F32, DType::F64), DType::F64);
    }
}
