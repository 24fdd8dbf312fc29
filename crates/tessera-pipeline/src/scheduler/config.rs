//! The schedulers' `scheduler_config.json`, typed, with diffusers' defaults (the
//! `__init__` signatures of scheduling_unipc_multistep.py and
//! scheduling_flow_match_euler_discrete.py). Unknown keys are ignored, as configs carry
//! many; a key asking for something not implemented is an error naming the file, the key
//! and its value.

use std::fmt::Display;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use tessera_models::{Error, Result};

const UNIPC: &str = "UniPCMultistepScheduler";
const EULER: &str = "FlowMatchEulerDiscreteScheduler";

/// `UniPCMultistepScheduler`'s keys. Those that only matter for the variance-preserving
/// schedules (betas, steps_offset, ...) are accepted and ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct UniPcConfig {
    pub num_train_timesteps: usize,
    pub solver_order: usize,
    pub prediction_type: String,
    pub thresholding: bool,
    pub predict_x0: bool,
    pub solver_type: String,
    pub lower_order_final: bool,
    /// Steps whose following corrector is skipped.
    pub disable_corrector: Vec<usize>,
    pub solver_p: Option<Value>,
    pub use_karras_sigmas: bool,
    pub use_exponential_sigmas: bool,
    pub use_beta_sigmas: bool,
    pub use_flow_sigmas: bool,
    pub flow_shift: f64,
    pub timestep_spacing: String,
    pub final_sigmas_type: String,
    pub use_dynamic_shifting: bool,
    pub shift_terminal: Option<f64>,
}

impl Default for UniPcConfig {
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            solver_order: 2,
            prediction_type: "epsilon".into(),
            thresholding: false,
            predict_x0: true,
            solver_type: "bh2".into(),
            lower_order_final: true,
            disable_corrector: Vec::new(),
            solver_p: None,
            use_karras_sigmas: false,
            use_exponential_sigmas: false,
            use_beta_sigmas: false,
            use_flow_sigmas: false,
            flow_shift: 1.0,
            timestep_spacing: "linspace".into(),
            final_sigmas_type: "zero".into(),
            use_dynamic_shifting: false,
            shift_terminal: None,
        }
    }
}

/// `solver_type`: the B(h) of the UniPC update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolverType {
    /// B(h) = h (in the x0 form, -h); the paper's choice for few unconditional steps.
    Bh1,
    /// B(h) = e^h - 1.
    Bh2,
}

/// `final_sigmas_type`: where the last step lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalSigmas {
    /// sigma 0: clean data.
    Zero,
    /// The last step's own sigma (the reference's last step is then a no-op).
    SigmaMin,
}

/// What a checked UniPC config settles.
pub(super) struct UniPcSettings {
    pub solver: SolverType,
    pub final_sigmas: FinalSigmas,
    pub shift_terminal: Option<f64>,
}

impl UniPcConfig {
    pub(super) fn check(&self, path: &Path) -> Result<UniPcSettings> {
        let no = |key: &str, value: &dyn Display, why: &str| Err(unsupported(path, UNIPC, key, value, why));
        let c = self;
        let flow_only = "only the flow-sigma schedule Wan uses is implemented";
        let not_impl = "it is not implemented";
        for (key, value, wanted, why) in [
            ("use_karras_sigmas", c.use_karras_sigmas, false, flow_only),
            ("use_exponential_sigmas", c.use_exponential_sigmas, false, flow_only),
            ("use_beta_sigmas", c.use_beta_sigmas, false, flow_only),
            ("use_flow_sigmas", c.use_flow_sigmas, true, flow_only),
            ("predict_x0", c.predict_x0, true, "flow sigmas need the x0 form"),
            ("thresholding", c.thresholding, false, not_impl),
            ("use_dynamic_shifting", c.use_dynamic_shifting, false, not_impl),
        ] {
            if value != wanted {
                return no(key, &value, why);
            }
        }
        if c.prediction_type != "flow_prediction" {
            let why = "flow sigmas need \"flow_prediction\"";
            return no("prediction_type", &format!("{:?}", c.prediction_type), why);
        }
        if let Some(p) = c.solver_p.as_ref().filter(|p| !p.is_null()) {
            return no("solver_p", p, "an external predictor is not implemented");
        }
        for (key, value) in [("solver_order", c.solver_order), ("num_train_timesteps", c.num_train_timesteps)] {
            if value == 0 {
                return no(key, &0, "it must be at least 1");
            }
        }
        if !(c.flow_shift.is_finite() && c.flow_shift > 0.0) {
            return no("flow_shift", &c.flow_shift, "it must be a positive number");
        }
        let solver = match c.solver_type.as_str() {
            "bh1" => SolverType::Bh1,
            // The reference maps the DPM-Solver names onto bh2.
            "bh2" | "midpoint" | "heun" | "logrho" => SolverType::Bh2,
            other => return no("solver_type", &format!("{other:?}"), "expected bh1 or bh2"),
        };
        let final_sigmas = match c.final_sigmas_type.as_str() {
            "zero" => FinalSigmas::Zero,
            "sigma_min" => FinalSigmas::SigmaMin,
            other => return no("final_sigmas_type", &format!("{other:?}"), "expected zero or sigma_min"),
        };
        // With flow sigmas the spacing is overwritten by sigma * N, but the reference
        // still rejects unknown values.
        let spacing = c.timestep_spacing.as_str();
        if !["linspace", "leading", "trailing"].contains(&spacing) {
            let why = "expected linspace, leading or trailing";
            return no("timestep_spacing", &format!("{spacing:?}"), why);
        }
        Ok(UniPcSettings { solver, final_sigmas, shift_terminal: terminal(path, UNIPC, c.shift_terminal)? })
    }
}

/// `FlowMatchEulerDiscreteScheduler`'s keys. Those only used by dynamic shifting
/// (base_shift, max_shift, ...) are ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EulerConfig {
    pub num_train_timesteps: usize,
    pub shift: f64,
    pub use_dynamic_shifting: bool,
    pub invert_sigmas: bool,
    pub shift_terminal: Option<f64>,
    pub use_karras_sigmas: bool,
    pub use_exponential_sigmas: bool,
    pub use_beta_sigmas: bool,
    pub stochastic_sampling: bool,
}

impl Default for EulerConfig {
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            shift: 1.0,
            use_dynamic_shifting: false,
            invert_sigmas: false,
            shift_terminal: None,
            use_karras_sigmas: false,
            use_exponential_sigmas: false,
            use_beta_sigmas: false,
            stochastic_sampling: false,
        }
    }
}

impl EulerConfig {
    /// Returns the checked `shift_terminal`.
    pub(super) fn check(&self, path: &Path) -> Result<Option<f64>> {
        let c = self;
        let linear_only = "only the shifted linear schedule is implemented";
        for (key, on, why) in [
            ("use_dynamic_shifting", c.use_dynamic_shifting, "it is not implemented"),
            ("invert_sigmas", c.invert_sigmas, "it is not implemented"),
            ("use_karras_sigmas", c.use_karras_sigmas, linear_only),
            ("use_exponential_sigmas", c.use_exponential_sigmas, linear_only),
            ("use_beta_sigmas", c.use_beta_sigmas, linear_only),
        ] {
            if on {
                return Err(unsupported(path, EULER, key, true, why));
            }
        }
        if c.num_train_timesteps == 0 {
            return Err(unsupported(path, EULER, "num_train_timesteps", 0, "it must be at least 1"));
        }
        if !(c.shift.is_finite() && c.shift > 0.0) {
            return Err(unsupported(path, EULER, "shift", c.shift, "it must be a positive number"));
        }
        terminal(path, EULER, c.shift_terminal)
    }
}

fn unsupported(path: &Path, class: &str, key: &str, value: impl Display, why: &str) -> Error {
    Error::BadConfig {
        path: path.to_path_buf(),
        message: format!("`{key}` = {value} is not supported by tessera's {class} ({why})"),
    }
}

/// `shift_terminal` as the reference reads it (`if config.shift_terminal:`), checked.
fn terminal(path: &Path, class: &str, shift_terminal: Option<f64>) -> Result<Option<f64>> {
    match shift_terminal {
        None | Some(0.0) => Ok(None),
        Some(t) if t > 0.0 && t < 1.0 => Ok(Some(t)),
        Some(t) => Err(unsupported(path, class, "shift_terminal", t, "it must lie in (0, 1)")),
    }
}
