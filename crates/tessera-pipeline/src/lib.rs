//! The generation pipeline: text -> embeddings -> flow-matching sampler over the Wan
//! transformer -> VAE decode -> frames. Library only: it reports progress through a
//! callback and never prints (docs/ARCHITECTURE.md, Conventions).

pub mod cache;
pub mod conditioning;
pub mod defaults;
pub mod error;
pub mod guidance;
pub mod model_index;
pub mod moderation;
pub mod noise;
pub mod quant;
pub mod sampler;
pub mod scheduler;
pub mod tasks;
pub mod wan;

pub use cache::{CacheKind, StepCache};
pub use conditioning::{Edit, Given};
pub use defaults::{builtin_model, frames_for_seconds, ModelDefaults};
pub use error::{Error, Result};
pub use quant::Quantize;
pub use wan::{GenerateParams, Progress, VaeTiling, WanPipeline};
