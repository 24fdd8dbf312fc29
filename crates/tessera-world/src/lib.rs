//! tessera's world: a deterministic 2D physics world that renders captioned videos of any
//! size and length, the language that describes it (captions, prompts, a parser, prompt
//! expansion), and an evaluator that scores any video against a prompt and the physics.
//!
//! Library only: no command-line parsing or progress bars (DESIGN.md).

pub mod eval;
pub mod language;
pub mod render;
pub mod rng;
pub mod scene;
pub mod sim;
pub mod spec;

pub use spec::*;
pub mod report;
