//! The sampler: a pure loop over a model trait and a scheduler (the flux style: the
//! schedule is computed elsewhere, the loop only asks for velocities and steps).

use std::ops::Range;

use candle_core::Tensor;

use crate::scheduler::Scheduler;
use crate::Result;

/// Anything that predicts the flow-matching velocity at a timestep.
pub trait Denoiser {
    /// `x`: latents (B, C, T, H, W); `t`: the scheduler's timestep (0..num_train_timesteps);
    /// `step`: index of this step (0-based), for models that switch behaviour by step.
    fn velocity(&self, x: &Tensor, t: f64, step: usize) -> Result<Tensor>;
}

/// Runs the scheduler's steps `steps` (a range of step indices, so a two-expert model can
/// hand the latents from one expert to the next mid-schedule, and an edit can start
/// mid-schedule). After each step, `after_step(i, latents)` (i counted from 1) sees the
/// latents and returns the ones to continue from (conditioning by replacement changes
/// them; otherwise return them as they are). `set_timesteps` must have been called.
pub fn sample(
    model: &dyn Denoiser,
    scheduler: &mut Scheduler,
    mut latents: Tensor,
    steps: Range<usize>,
    after_step: &mut dyn FnMut(usize, Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let timesteps = scheduler.timesteps().to_vec();
    for i in steps {
        let t = timesteps[i];
        let v = model.velocity(&latents, t, i)?;
        latents = scheduler.step(&v, t, &latents)?;
        latents = after_step(i + 1, latents)?;
    }
    Ok(latents)
}
