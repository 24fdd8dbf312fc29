//! tessera's trainer: a Wan-architecture transformer (and its small text encoder) taught
//! the world with rectified flow, conditioning masks trained in, AdamW with warm-up and
//! clipping, EMA weights, checkpoints that resume exactly, a CSV log and a plot.
//!
//! Library only: the binary decides how to report progress (docs/ARCHITECTURE.md, Conventions).

pub mod config;
pub mod data;
pub mod flow;
pub mod optim;
pub mod plot;
mod run;
pub mod samples;
pub mod text;
pub mod train;
pub mod vae;

pub use config::TrainConfig;
pub use train::{train, StepReport};
