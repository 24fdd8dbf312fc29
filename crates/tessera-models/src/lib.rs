//! Wan-family models on candle, loaded from diffusers-format folders.
//!
//! Data flow (see docs/ARCHITECTURE.md): tokenizer -> UMT5 text encoder -> Wan transformer over
//! spacetime patches of the Wan VAE's latents. Every size comes from the checkpoint's
//! `config.json`; nothing here is hard-coded to one checkpoint.

pub mod allocator;
pub mod attention;
pub mod clip_vision;
pub mod conv;
pub mod conv_train;
pub mod error;
pub mod fastmath;
pub mod gguf;
pub mod linear;
pub mod loading;
pub mod norms;
pub mod ops;
pub mod testing;
pub mod tokenizer;
pub mod umt5;
pub mod wan;

pub use error::{Error, Result};
