//! The Wan video diffusion family (Wan 2.1, Wan 2.2): transformer, rotary embedding, VAE.

pub mod cache;
pub mod config;
pub mod rope;
pub mod transformer;
pub mod vae;
