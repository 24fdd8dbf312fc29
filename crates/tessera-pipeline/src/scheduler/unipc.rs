//! UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast
//! Sampling of Diffusion Models", arXiv:2302.04867) on flow sigmas: diffusers'
//! `UniPCMultistepScheduler` (schedulers/scheduling_unipc_multistep.py) as Wan configures it
//! (`use_flow_sigmas`, `prediction_type: flow_prediction`, `predict_x0`).
//!
//! With alpha = 1 - sigma and lambda = log(alpha / sigma), each step works on data
//! predictions m = x0 = x - sigma * v and integrates exactly in lambda:
//!
//! ```text
//! UniP (predictor, order p):  x_t = (sigma_t / sigma_s0) x_s0 - alpha_t (e^-h - 1) m0
//!                                   - alpha_t B(h) sum_k rho_k (m_k - m0) / r_k
//! UniC (corrector):           the same update redone once the model has been evaluated at
//!                             x_t, that evaluation being one more point (rho from R rho = b)
//! ```
//!
//! h = lambda_t - lambda_s0, r_k = (lambda_sk - lambda_s0) / h, B(h) = -h (bh1) or
//! e^-h - 1 (bh2). Like the reference, these scalars are float32.

use std::path::Path;

use candle_core::{bail, DType, Tensor};
use tessera_models::{Error, Result};

use super::config::{FinalSigmas, SolverType, UniPcConfig};
use super::{add, div_scalar, is_half, linspace, mul_scalar, round_to, shift_sigma, stretch_to_terminal, sub};

/// `num_steps` flow sigmas from 1 towards 1/N, shifted: `shift_sigma(linspace(1, 1/N,
/// num_steps + 1)[:-1], shift)` in float64 (N = num_train_timesteps).
pub fn flow_sigmas(num_steps: usize, shift: f64, num_train_timesteps: usize) -> Vec<f64> {
    let mut s = linspace(1.0, 1.0 / num_train_timesteps as f64, num_steps + 1);
    s.pop();
    s.into_iter().map(|s| shift_sigma(s, shift)).collect()
}

/// UniPC's schedule (`set_timesteps`, the `use_flow_sigmas` branch): returns
/// `(timesteps, sigmas)`, the timesteps `int64(sigma * N)` (truncated, so the transformer
/// sees integers) and the sigmas rounded to float32 with the final sigma appended.
pub fn unipc_flow_schedule(
    num_steps: usize,
    shift: f64,
    num_train_timesteps: usize,
    shift_terminal: Option<f64>,
    final_sigmas: FinalSigmas,
) -> (Vec<f64>, Vec<f64>) {
    let mut s = flow_sigmas(num_steps, shift, num_train_timesteps);
    if let Some(t) = shift_terminal {
        stretch_to_terminal(&mut s, t);
    }
    // Keeps sigma_0 off 1 so that log(alpha) = log(1 - sigma) stays finite (reference).
    if let Some(first) = s.first_mut() {
        if (*first - 1.0).abs() < 1e-6 {
            *first -= 1e-6;
        }
    }
    let timesteps = s.iter().map(|&x| (x * num_train_timesteps as f64).trunc()).collect();
    let last = match final_sigmas {
        FinalSigmas::Zero => 0.0,
        FinalSigmas::SigmaMin => s.last().copied().unwrap_or(0.0),
    };
    s.push(last);
    let sigmas = s.into_iter().map(|x| x as f32 as f64).collect();
    (timesteps, sigmas)
}

/// The multistep UniPC sampler state.
#[derive(Debug, Clone)]
pub struct UniPc {
    config: UniPcConfig,
    solver: SolverType,
    final_sigmas: FinalSigmas,
    shift_terminal: Option<f64>,
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
    /// Data predictions of the last `solver_order` steps, oldest first.
    model_outputs: Vec<Option<Tensor>>,
    /// Steps taken so far, capped at `solver_order` (the multistep warm-up).
    lower_order_nums: usize,
    /// The predictor order of the last step, which its corrector reuses.
    this_order: usize,
    /// The sample the last predictor started from, which the corrector redoes.
    last_sample: Option<Tensor>,
    step_index: Option<usize>,
    begin_index: Option<usize>,
}

/// Coefficients of one B(h) update from sigma index `s0` to `t` (diffusers'
/// `multistep_uni_{p,c}_bh_update`), float32 like the reference's 0-d tensors.
struct Coefficients {
    /// sigma_t / sigma_s0
    ratio: f32,
    /// alpha_t * (e^-h - 1)
    alpha_phi: f32,
    /// alpha_t * B(h)
    alpha_b: f32,
    /// r_k for the earlier points s0 - 1, s0 - 2, ...
    rks: Vec<f32>,
    /// The order conditions R rho = b; R's rows are the powers r^0 .. r^(order-1) of
    /// (r_1, .., r_(order-1), 1).
    r: Vec<Vec<f32>>,
    b: Vec<f32>,
}

impl UniPc {
    /// Checks the config (errors name `path` and the key) and builds the scheduler.
    pub fn new(config: UniPcConfig, path: &Path) -> Result<Self> {
        let checked = config.check(path)?;
        Ok(Self {
            model_outputs: vec![None; config.solver_order],
            config,
            solver: checked.solver,
            final_sigmas: checked.final_sigmas,
            shift_terminal: checked.shift_terminal,
            timesteps: Vec::new(),
            sigmas: Vec::new(),
            lower_order_nums: 0,
            this_order: 1,
            last_sample: None,
            step_index: None,
            begin_index: None,
        })
    }

    pub fn config(&self) -> &UniPcConfig {
        &self.config
    }

    pub fn solver_type(&self) -> SolverType {
        self.solver
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

    pub fn set_begin_index(&mut self, i: usize) {
        self.begin_index = Some(i);
    }

    pub fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        if num_inference_steps == 0 {
            return Err(Error::Invalid("the number of inference steps must be at least 1".into()));
        }
        let c = &self.config;
        (self.timesteps, self.sigmas) = unipc_flow_schedule(
            num_inference_steps,
            c.flow_shift,
            c.num_train_timesteps,
            self.shift_terminal,
            self.final_sigmas,
        );
        self.model_outputs = vec![None; c.solver_order];
        self.lower_order_nums = 0;
        self.this_order = 1;
        self.last_sample = None;
        self.step_index = None;
        self.begin_index = None;
        Ok(())
    }

    pub fn set_shift(&mut self, shift: f64) -> Result<()> {
        self.config.flow_shift = shift;
        match self.timesteps.len() {
            0 => Ok(()),
            n => self.set_timesteps(n),
        }
    }

    /// diffusers' `index_for_timestep`: the second match if the timestep repeats (so a
    /// schedule entered mid-way does not skip a sigma), the last step if there is none.
    fn index_for_timestep(&self, timestep: f64) -> usize {
        let hits: Vec<usize> = (0..self.timesteps.len()).filter(|&i| self.timesteps[i] == timestep).collect();
        match hits.as_slice() {
            [] => self.timesteps.len().saturating_sub(1),
            [i] => *i,
            [_, i, ..] => *i,
        }
    }

    /// The sigma index `add_noise` uses at `timestep`.
    pub(super) fn noise_index(&self, timestep: f64) -> usize {
        match (self.begin_index, self.step_index) {
            (None, _) => self.index_for_timestep(timestep),
            (Some(_), Some(k)) => k,
            (Some(b), None) => b,
        }
    }

    /// One UniPC step: correct the previous step with this model output (UniC), then
    /// predict the next sample (UniP).
    pub fn step(&mut self, model_output: &Tensor, timestep: f64, sample: &Tensor) -> candle_core::Result<Tensor> {
        let n = self.timesteps.len();
        if n == 0 {
            bail!("UniPC: set_timesteps must be called before step");
        }
        let k = match self.step_index {
            Some(k) => k,
            None => self.begin_index.unwrap_or_else(|| self.index_for_timestep(timestep)),
        };
        if k >= n {
            bail!("UniPC: all {n} steps of the schedule have been taken");
        }
        let x0 = self.data_prediction(model_output, sample, k)?;
        let sample = match &self.last_sample {
            Some(last) if k > 0 && !self.config.disable_corrector.contains(&(k - 1)) => {
                self.correct(&x0, last, k, self.this_order)?
            }
            _ => sample.clone(),
        };
        self.model_outputs.rotate_left(1);
        if let Some(newest) = self.model_outputs.last_mut() {
            *newest = Some(x0);
        }
        let order =
            if self.config.lower_order_final { self.config.solver_order.min(n - k) } else { self.config.solver_order };
        self.this_order = order.min(self.lower_order_nums + 1);
        let prev = self.predict(&sample, k, self.this_order)?;
        self.last_sample = Some(sample);
        self.lower_order_nums = (self.lower_order_nums + 1).min(self.config.solver_order);
        self.step_index = Some(k + 1);
        Ok(prev)
    }

    /// x0 = x - sigma * v (convert_model_output, flow_prediction).
    fn data_prediction(&self, model_output: &Tensor, sample: &Tensor, k: usize) -> candle_core::Result<Tensor> {
        sub(sample, &mul_scalar(model_output, self.sigmas[k])?)
    }

    fn coefficients(&self, t: usize, s0: usize, order: usize) -> Coefficients {
        let sigma = |i: usize| self.sigmas[i] as f32;
        let lambda = |i: usize| (1.0 - sigma(i)).ln() - sigma(i).ln();
        let alpha_t = 1.0 - sigma(t);
        let lambda_s0 = lambda(s0);
        let h = lambda(t) - lambda_s0;
        let rks: Vec<f32> = (1..order).map(|i| (lambda(s0 - i) - lambda_s0) / h).collect();
        // The data-prediction form integrates over -h.
        let hh = -h;
        let h_phi_1 = hh.exp_m1();
        let b_h = match self.solver {
            SolverType::Bh1 => hh,
            SolverType::Bh2 => hh.exp_m1(),
        };
        // b_i = i! phi_(i+1)(hh) / B(h), phi_k built by the recurrence phi_(k+1) = (phi_k - 1/k!) / hh.
        let points: Vec<f32> = rks.iter().copied().chain([1.0]).collect();
        let mut h_phi_k = h_phi_1 / hh - 1.0;
        let mut factorial: u64 = 1;
        let (mut r, mut b) = (Vec::with_capacity(order), Vec::with_capacity(order));
        for i in 1..=order {
            r.push(points.iter().map(|p| p.powi(i as i32 - 1)).collect());
            b.push(h_phi_k * factorial as f32 / b_h);
            factorial *= i as u64 + 1;
            h_phi_k = h_phi_k / hh - (1.0 / factorial as f64) as f32;
        }
        Coefficients { ratio: sigma(t) / sigma(s0), alpha_phi: alpha_t * h_phi_1, alpha_b: alpha_t * b_h, rks, r, b }
    }

    /// (m_i - m0) / r_i for the earlier data predictions m_i (newest first after m0).
    fn differences(&self, m0: &Tensor, rks: &[f32]) -> candle_core::Result<Vec<Tensor>> {
        let len = self.model_outputs.len();
        rks.iter()
            .enumerate()
            .map(|(j, &rk)| match &self.model_outputs[len - 2 - j] {
                Some(mi) => div_scalar(&sub(mi, m0)?, rk as f64),
                None => bail!("UniPC: missing an earlier model output for the order requested"),
            })
            .collect()
    }

    fn newest_output(&self) -> candle_core::Result<Tensor> {
        match self.model_outputs.last() {
            Some(Some(m)) => Ok(m.clone()),
            _ => bail!("UniPC: no model output recorded"),
        }
    }

    /// UniP: from sigma index k to k + 1.
    fn predict(&self, x: &Tensor, k: usize, order: usize) -> candle_core::Result<Tensor> {
        let (t, s0) = (k + 1, k);
        if self.sigmas[t] == self.sigmas[s0] {
            // final_sigmas_type "sigma_min": a step of length 0. The reference's order-1
            // update returns x unchanged; its higher orders divide 0 by 0.
            return Ok(x.clone());
        }
        // Into sigma 0 lambda is infinite: only the first-order update (landing on the data
        // prediction m0) is finite. The reference reaches it through lower_order_final and
        // gives NaN (bh1: (-inf) * 0) or inf (order > 1) otherwise.
        let order = if self.sigmas[t] == 0.0 { 1 } else { order };
        let m0 = self.newest_output()?;
        let c = self.coefficients(t, s0, order);
        let x_t = sub(&mul_scalar(x, c.ratio as f64)?, &mul_scalar(&m0, c.alpha_phi as f64)?)?;
        let x_t = if order > 1 {
            let d1s = self.differences(&m0, &c.rks)?;
            let rhos = if order == 2 {
                vec![0.5]
            } else {
                let p = order - 1;
                let r: Vec<Vec<f32>> = c.r[..p].iter().map(|row| row[..p].to_vec()).collect();
                solve(&r, &c.b[..p])?
            };
            let res = weighted_sum(&rhos, &d1s, x.dtype())?;
            sub(&x_t, &mul_scalar(&res, c.alpha_b as f64)?)?
        } else {
            x_t
        };
        x_t.to_dtype(x.dtype())
    }

    /// UniC: redoes the step from sigma index k - 1 to k with the new data prediction
    /// `model_t` evaluated at its result.
    fn correct(&self, model_t: &Tensor, last_sample: &Tensor, k: usize, order: usize) -> candle_core::Result<Tensor> {
        let (t, s0) = (k, k - 1);
        let x = last_sample;
        let m0 = self.newest_output()?;
        let c = self.coefficients(t, s0, order);
        let x_t = sub(&mul_scalar(x, c.ratio as f64)?, &mul_scalar(&m0, c.alpha_phi as f64)?)?;
        let rhos = if order == 1 { vec![0.5] } else { solve(&c.r, &c.b)? };
        let rho_t = round_to(rhos[order - 1], x.dtype())?;
        let mut corr = mul_scalar(&sub(model_t, &m0)?, rho_t)?;
        if order > 1 {
            let d1s = self.differences(&m0, &c.rks)?;
            corr = add(&weighted_sum(&rhos[..order - 1], &d1s, x.dtype())?, &corr)?;
        }
        sub(&x_t, &mul_scalar(&corr, c.alpha_b as f64)?)?.to_dtype(x.dtype())
    }
}

/// sum_k rho_k d_k (the reference's `einsum("k,bkc...->bc...", rhos.to(dtype), D1s)`),
/// accumulated in f32 for half types as a matmul would.
fn weighted_sum(rhos: &[f32], ds: &[Tensor], dtype: DType) -> candle_core::Result<Tensor> {
    let out_dtype = ds[0].dtype();
    let work = if is_half(out_dtype) { DType::F32 } else { out_dtype };
    let mut acc: Option<Tensor> = None;
    for (&rho, d) in rhos.iter().zip(ds) {
        let term = d.to_dtype(work)?.affine(round_to(rho, dtype)?, 0.0)?;
        acc = Some(match acc {
            Some(a) => a.add(&term)?,
            None => term,
        });
    }
    match acc {
        Some(a) => a.to_dtype(out_dtype),
        None => bail!("UniPC: empty weighted sum"),
    }
}

/// Solves the small order-condition system R rho = b (torch.linalg.solve) by Gaussian
/// elimination with partial pivoting, in f64, rounding the result to f32.
fn solve(a: &[Vec<f32>], b: &[f32]) -> candle_core::Result<Vec<f32>> {
    let n = b.len();
    let mut m: Vec<Vec<f64>> =
        a.iter().zip(b).map(|(row, &bi)| row.iter().map(|&v| v as f64).chain([bi as f64]).collect()).collect();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs())).unwrap_or(col);
        if !(m[pivot][col].is_finite() && m[pivot][col] != 0.0) {
            bail!("UniPC: the order conditions are singular (repeated sigmas in the schedule?)");
        }
        m.swap(col, pivot);
        let top = m[col].clone();
        for row in m.iter_mut().skip(col + 1) {
            let f = row[col] / top[col];
            for (v, t) in row.iter_mut().zip(&top).skip(col) {
                *v -= f * t;
            }
        }
    }
    let mut x = vec![0f64; n];
    for i in (0..n).rev() {
        let tail: f64 = (i + 1..n).map(|j| m[i][j] * x[j]).sum();
        x[i] = (m[i][n] - tail) / m[i][i];
    }
    Ok(x.into_iter().map(|v| v as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_small_system() {
        let a = vec![vec![2.0, 1.0, 0.0], vec![1.0, 3.0, 1.0], vec![0.0, 1.0, 4.0]];
        let x = solve(&a, &[3.0, 5.0, 5.0]).unwrap();
        for (v, e) in x.iter().zip([1.0, 1.0, 1.0]) {
            assert!((v - e).abs() < 1e-6, "{x:?}");
        }
    }
}
