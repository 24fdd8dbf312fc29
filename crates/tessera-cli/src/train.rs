//! `tessera train --config RUN.toml [--resume]`: wiring only; the trainer is tessera-train.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use tessera_train::{train, TrainConfig};

use crate::progress::Reporter;

#[derive(Args)]
pub struct TrainArgs {
    /// The run's TOML config (see README, "Training"); its defaults are the recipe.
    #[arg(long, value_name = "RUN.toml")]
    config: PathBuf,
    /// Continue from the newest checkpoint in the run folder.
    #[arg(long)]
    resume: bool,
    /// cpu, or cuda[:N] when built with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// No progress output.
    #[arg(long, short = 'q')]
    quiet: bool,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let cfg = TrainConfig::load(&args.config)?;
    let device = crate::generate::parse_device(&args.device)?;
    let mut progress = Reporter::new(args.quiet);
    progress.message(&format!("training {} steps into {}", cfg.steps, cfg.out.display()));
    let mut smooth = None::<f64>;
    let model = train(&cfg, args.resume, &device, &mut |r| {
        let s = smooth.map_or(r.loss, |s| 0.95 * s + 0.05 * r.loss);
        smooth = Some(s);
        if r.step % 50 == 0 || r.step == r.total {
            progress.message(&format!(
                "step {}/{}: loss {:.4} (smoothed {s:.4}), lr {:.2e}, grad norm {:.3}",
                r.step, r.total, r.loss, r.lr, r.grad_norm
            ));
        }
        progress.count("train", "step", r.step, r.total);
    })?;
    progress.done(&format!("model written to {}", model.display()));
    Ok(())
}
