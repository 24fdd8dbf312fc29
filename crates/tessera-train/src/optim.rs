//! AdamW with decoupled weight decay (Loshchilov & Hutter, 2019), global-norm gradient
//! clipping, and an exponential moving average of the weights. Written out (rather than
//! candle-nn's AdamW) so the moments can be checkpointed and a run resumed exactly.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Steps taken (for bias correction).
    pub t: usize,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl AdamW {
    pub fn new(vars: &[Var], weight_decay: f64) -> Result<Self> {
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        Ok(AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            t: 0,
            m: vars.iter().map(zeros).collect::<Result<_>>()?,
            v: vars.iter().map(zeros).collect::<Result<_>>()?,
        })
    }

    /// One update with learning rate `lr`; `grads[i]` is the gradient of `vars[i]` (None:
    /// the variable did not take part, it is left alone).
    pub fn step(&mut self, vars: &[Var], grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        for (i, (var, g)) in vars.iter().zip(grads).enumerate() {
            let Some(g) = g else { continue };
            // Gradients are built from tracked tensors: detach them, or the moments would
            // chain every step's graph to the next and memory would grow without bound.
            let g = g.detach();
            let m = ((&self.m[i] * b1)? + (&g * (1.0 - b1))?)?.detach();
            let v = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?.detach();
            let update = ((&m / c1)? / ((&v / c2)?.sqrt()? + self.eps)?)?;
            let decayed = (var.as_tensor().detach() * (1.0 - lr * self.weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }
}

/// The gradients of `vars` from `grads`, scaled so their global L2 norm is at most
/// `max_norm` (no scaling if `max_norm <= 0`). Returns them with the norm before scaling.
pub fn clipped_grads(vars: &[Var], grads: &GradStore, max_norm: f64) -> Result<(Vec<Option<Tensor>>, f64)> {
    let gs: Vec<Option<Tensor>> = vars.iter().map(|v| grads.get(v).cloned()).collect();
    let mut sq = 0f64;
    for g in gs.iter().flatten() {
        sq += g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
    }
    let norm = sq.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let k = max_norm / (norm + 1e-12);
        let scaled = gs.iter().map(|g| g.as_ref().map(|g| g * k).transpose()).collect::<Result<_>>()?;
        return Ok((scaled, norm));
    }
    Ok((gs, norm))
}

/// Exponential moving average of the weights: the model that ships.
pub struct Ema {
    pub decay: f64,
    pub shadow: Vec<Tensor>,
}

impl Ema {
    pub fn new(vars: &[Var], decay: f64) -> Result<Self> {
        // Detached: the average is a plain tensor, never part of a graph.
        Ok(Ema { decay, shadow: vars.iter().map(|v| v.as_tensor().detach().copy()).collect::<Result<_>>()? })
    }

    /// Folds in the weights after update number `n` (0-based). The decay warms up as
    /// min(decay, (1 + n) / (10 + n)) (TensorFlow's ExponentialMovingAverage with
    /// num_updates): with a fixed 0.999 a 1,000-step run would still carry 37% of the
    /// random initialisation in its average.
    pub fn update(&mut self, vars: &[Var], n: usize) -> Result<()> {
        let d = self.decay.min((1.0 + n as f64) / (10.0 + n as f64));
        for (s, v) in self.shadow.iter_mut().zip(vars) {
            *s = ((&*s * d)? + (v.as_tensor().detach() * (1.0 - d))?)?;
        }
        Ok(())
    }
}

/// Learning rate at `step` (0-based): linear warm-up over `warmup` steps, then cosine decay
/// to a tenth of the peak at `total`.
pub fn learning_rate(step: usize, peak: f64, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let u = ((step - warmup) as f64 / span).min(1.0);
    let floor = 0.1 * peak;
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * u).cos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn adamw_minimises_a_quadratic_and_clipping_bounds_the_norm() {
        let x = Var::from_tensor(&Tensor::new(&[3f32, -2.0], &Device::Cpu).unwrap()).unwrap();
        let vars = vec![x.clone()];
        let mut opt = AdamW::new(&vars, 0.0).unwrap();
        for _ in 0..400 {
            let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap();
            let (gs, _) = clipped_grads(&vars, &g, 1.0).unwrap();
            opt.step(&vars, &gs, 0.05).unwrap();
        }
        let v: Vec<f32> = x.as_tensor().to_vec1().unwrap();
        assert!(v.iter().all(|x| x.abs() < 0.05), "{v:?}");
        let loss = (x.as_tensor() * 100.0).unwrap().sum_all().unwrap();
        let (gs, norm) = clipped_grads(&vars, &loss.backward().unwrap(), 1.0).unwrap();
        let n: f32 = gs[0]
            .as_ref()
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!((norm - 141.42).abs() < 0.1 && (n.sqrt() - 1.0).abs() < 1e-4);
    }

    /// Regression: the moments kept each step's graph alive (a 600-step VAE run grew to
    /// 24 GB and was killed). After a step nothing the optimizer keeps tracks gradients.
    #[test]
    fn optimizer_state_does_not_keep_graphs() {
        let x = Var::from_tensor(&Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap()).unwrap();
        let vars = vec![x.clone()];
        let mut opt = AdamW::new(&vars, 0.01).unwrap();
        let mut ema = Ema::new(&vars, 0.9).unwrap();
        for _ in 0..3 {
            let loss = (x.as_tensor().sqr().unwrap() * 3.0).unwrap().sum_all().unwrap();
            let (gs, _) = clipped_grads(&vars, &loss.backward().unwrap(), 0.5).unwrap();
            opt.step(&vars, &gs, 0.1).unwrap();
            ema.update(&vars, 0).unwrap();
        }
        assert!(!opt.m[0].track_op() && !opt.v[0].track_op() && !ema.shadow[0].track_op());
    }

    #[test]
    fn ema_warms_up() {
        let x = Var::from_tensor(&Tensor::new(&[0f32], &Device::Cpu).unwrap()).unwrap();
        let mut ema = Ema::new(std::slice::from_ref(&x), 0.999).unwrap();
        x.set(&Tensor::new(&[1f32], &Device::Cpu).unwrap()).unwrap();
        // First update: decay 1/10, so the average is 0.9 of the new weights.
        ema.update(std::slice::from_ref(&x), 0).unwrap();
        let v = ema.shadow[0].to_vec1::<f32>().unwrap()[0];
        assert!((v - 0.9).abs() < 1e-6, "{v}");
        // Late updates use the configured decay.
        ema.update(std::slice::from_ref(&x), 1_000_000).unwrap();
        let w = ema.shadow[0].to_vec1::<f32>().unwrap()[0];
        assert!((w - (0.9 * 0.999 + 0.001)).abs() < 1e-6, "{w}");
    }

    #[test]
    fn warmup_then_cosine() {
        assert!((learning_rate(0, 1.0, 10, 100) - 0.1).abs() < 1e-12);
        assert!((learning_rate(9, 1.0, 10, 100) - 1.0).abs() < 1e-12);
        assert!((learning_rate(100, 1.0, 10, 100) - 0.1).abs() < 1e-12);
        assert!(learning_rate(50, 1.0, 10, 100) < 1.0);
    }
}
