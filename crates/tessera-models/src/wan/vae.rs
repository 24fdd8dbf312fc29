//! The Wan video VAE (`AutoencoderKLWan`, diffusers models/autoencoders/autoencoder_kl_wan.py):
//! a causal 3D convolutional autoencoder that maps 4k+1 frames to k+1 latent frames
//! (Wan 2.1: 8x spatial, 16 channels; Wan 2.2 TI2V: a residual variant with 2x2
//! patchify, 16x spatial, 48 channels).
//!
//! Encode and decode stream over time as the reference does (encode: the first frame,
//! then 4 frames at a time; decode: one latent frame at a time), keeping only the causal
//! convolutions' frame caches between chunks, so memory does not grow with video length.
//! The latent scale and shift live here ([`AutoencoderKLWan::normalize_latents`] and
//! [`AutoencoderKLWan::denormalize_latents`]), never at call sites.

mod blocks;
mod coder;
mod tiling;

pub use tiling::Tiling;

use std::path::Path;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::loading::{check_class, in_component, read_json, var_builder};
use blocks::{Cache, CausalConv3d};
use coder::Coder;

fn d_base() -> usize {
    96
}
fn d_z() -> usize {
    16
}
fn d_mult() -> Vec<usize> {
    vec![1, 2, 4, 4]
}
fn d_res() -> usize {
    2
}
fn d_tdown() -> Vec<bool> {
    vec![false, true, true]
}
fn d_three() -> usize {
    3
}
fn d_four() -> Option<usize> {
    Some(4)
}
fn d_eight() -> Option<usize> {
    Some(8)
}
/// Wan 2.1's latent statistics (diffusers' defaults).
fn d_mean() -> Vec<f64> {
    vec![
        -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715, 0.5517, -0.3632, -0.1922,
        -0.9497, 0.2503, -0.2921,
    ]
}
fn d_std() -> Vec<f64> {
    vec![
        2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253,
        2.8251, 1.9160,
    ]
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AutoencoderKLWanConfig {
    #[serde(default = "d_base")]
    pub base_dim: usize,
    #[serde(default)]
    pub decoder_base_dim: Option<usize>,
    #[serde(default = "d_z")]
    pub z_dim: usize,
    #[serde(default = "d_mult")]
    pub dim_mult: Vec<usize>,
    #[serde(default = "d_res")]
    pub num_res_blocks: usize,
    #[serde(default)]
    pub attn_scales: Vec<f64>,
    #[serde(default = "d_tdown")]
    pub temperal_downsample: Vec<bool>,
    #[serde(default = "d_mean")]
    pub latents_mean: Vec<f64>,
    #[serde(default = "d_std")]
    pub latents_std: Vec<f64>,
    #[serde(default)]
    pub is_residual: bool,
    #[serde(default = "d_three")]
    pub in_channels: usize,
    #[serde(default = "d_three")]
    pub out_channels: usize,
    #[serde(default)]
    pub patch_size: Option<usize>,
    #[serde(default = "d_four")]
    pub scale_factor_temporal: Option<usize>,
    #[serde(default = "d_eight")]
    pub scale_factor_spatial: Option<usize>,
}

impl AutoencoderKLWanConfig {
    pub fn load(path: &Path) -> crate::Result<Self> {
        check_class(path, &["AutoencoderKLWan"])?;
        let cfg: Self = read_json(path)?;
        let bad = |message: String| crate::Error::BadConfig { path: path.to_path_buf(), message };
        if cfg.latents_mean.len() != cfg.z_dim || cfg.latents_std.len() != cfg.z_dim {
            return Err(bad(format!(
                "`latents_mean` and `latents_std` must have z_dim = {} entries (have {} and {})",
                cfg.z_dim,
                cfg.latents_mean.len(),
                cfg.latents_std.len()
            )));
        }
        if cfg.dim_mult.is_empty() || cfg.temperal_downsample.len() + 1 < cfg.dim_mult.len() {
            return Err(bad("`dim_mult` must be non-empty and `temperal_downsample` one shorter".into()));
        }
        Ok(cfg)
    }

    /// Frames per latent frame after the first.
    pub fn temporal_factor(&self) -> usize {
        self.scale_factor_temporal.unwrap_or(4)
    }

    /// Pixels per latent cell along each side.
    pub fn spatial_factor(&self) -> usize {
        self.scale_factor_spatial.unwrap_or(8)
    }

    /// The Wan 2.1 fixture configuration (tools/make_fixtures.py), weights aside.
    pub fn tiny() -> Self {
        Self {
            base_dim: 8,
            decoder_base_dim: None,
            z_dim: 16,
            dim_mult: vec![1, 2, 2, 2],
            num_res_blocks: 1,
            attn_scales: vec![],
            temperal_downsample: d_tdown(),
            latents_mean: vec![0.0; 16],
            latents_std: vec![1.0; 16],
            is_residual: false,
            in_channels: 3,
            out_channels: 3,
            patch_size: None,
            scale_factor_temporal: Some(4),
            scale_factor_spatial: Some(8),
        }
    }
}

/// Wan 2.2's 2x2 patchify: (B, C, T, H, W) -> (B, C * p * p, T, H/p, W/p) with channel
/// order (c, pw, ph), as the reference's `patchify`.
fn patchify(x: &Tensor, p: usize) -> Result<Tensor> {
    let (b, c, t, h, w) = x.dims5()?;
    x.reshape(vec![b, c, t, h / p, p, w / p, p])?.permute(vec![0, 1, 6, 4, 2, 3, 5])?.reshape((
        b,
        c * p * p,
        t,
        h / p,
        w / p,
    ))
}

/// Inverse of [`patchify`].
fn unpatchify(x: &Tensor, p: usize) -> Result<Tensor> {
    let (b, cp, t, h, w) = x.dims5()?;
    let c = cp / (p * p);
    x.reshape(vec![b, c, p, p, t, h, w])?.permute(vec![0, 1, 4, 5, 3, 6, 2])?.reshape((b, c, t, h * p, w * p))
}

#[derive(Debug, Clone)]
pub struct AutoencoderKLWan {
    cfg: AutoencoderKLWanConfig,
    /// The encoder and its `quant_conv`; `None` when loaded with [`Self::load_decoder`].
    encoder: Option<(Coder, CausalConv3d)>,
    decoder: Coder,
    post_quant_conv: CausalConv3d,
    /// Spatial tiling of encode and decode (off: whole frames, diffusers' default).
    tiling: Option<Tiling>,
}

impl Drop for AutoencoderKLWan {
    fn drop(&mut self) {
        crate::conv::release_scratch();
    }
}

impl AutoencoderKLWan {
    pub fn new(cfg: &AutoencoderKLWanConfig, vb: VarBuilder) -> Result<Self> {
        let z = cfg.z_dim;
        let encoder = Coder::encoder(cfg, vb.pp("encoder"))?;
        let quant_conv = CausalConv3d::new(2 * z, 2 * z, (1, 1), 1, (0, 0), vb.pp("quant_conv"))?;
        let mut vae = Self::new_decoder(cfg, vb)?;
        vae.encoder = Some((encoder, quant_conv));
        Ok(vae)
    }

    /// The decoder half only (what text-to-video needs): the encoder's weights, 42% of
    /// Wan 2.1's VAE, are neither read nor held. [`Self::encode`] then fails.
    pub fn new_decoder(cfg: &AutoencoderKLWanConfig, vb: VarBuilder) -> Result<Self> {
        let z = cfg.z_dim;
        Ok(Self {
            cfg: cfg.clone(),
            encoder: None,
            decoder: Coder::decoder(cfg, vb.pp("decoder"))?,
            post_quant_conv: CausalConv3d::new(z, z, (1, 1), 1, (0, 0), vb.pp("post_quant_conv"))?,
            tiling: None,
        })
    }

    pub fn load(dir: &Path, dtype: DType, device: &Device) -> crate::Result<Self> {
        let cfg = AutoencoderKLWanConfig::load(&dir.join("config.json"))?;
        let vb = var_builder(dir, dtype, device)?;
        in_component(dir, Self::new(&cfg, vb))
    }

    /// [`Self::load`] without the encoder ([`Self::new_decoder`]).
    pub fn load_decoder(dir: &Path, dtype: DType, device: &Device) -> crate::Result<Self> {
        let cfg = AutoencoderKLWanConfig::load(&dir.join("config.json"))?;
        let vb = var_builder(dir, dtype, device)?;
        in_component(dir, Self::new_decoder(&cfg, vb))
    }

    pub fn config(&self) -> &AutoencoderKLWanConfig {
        &self.cfg
    }

    /// Encode and decode in overlapping spatial tiles ([`Tiling`], diffusers'
    /// `enable_tiling`) when a frame is larger than one tile; `None`: whole frames.
    pub fn set_tiling(&mut self, tiling: Option<Tiling>) -> Result<()> {
        if let Some(t) = &tiling {
            t.check().map_err(candle_core::Error::Msg)?;
            let s = self.spatial_factor();
            if t.stride.0 < s || t.stride.1 < s {
                candle_core::bail!("VAE tile strides {:?} are below the VAE's {s}-pixel cell", t.stride);
            }
        }
        self.tiling = tiling;
        Ok(())
    }

    pub fn tiling(&self) -> Option<Tiling> {
        self.tiling
    }

    fn patch(&self) -> usize {
        self.cfg.patch_size.unwrap_or(1).max(1)
    }

    pub fn temporal_factor(&self) -> usize {
        self.cfg.temporal_factor()
    }

    pub fn spatial_factor(&self) -> usize {
        self.cfg.spatial_factor()
    }

    /// video: (B, 3, T, H, W) in [-1, 1], T = 4k+1. Returns the posterior mean
    /// (B, z, k+1, H/s, W/s) (`latent_dist.mode()`), un-normalised.
    pub fn encode(&self, video: &Tensor) -> Result<Tensor> {
        let h = self.encode_moments(video)?;
        h.narrow(1, 0, self.cfg.z_dim)
    }

    /// The posterior's mean and log-variance (each (B, z, k+1, H/s, W/s)), as diffusers'
    /// DiagonalGaussianDistribution reads them (log-variance clamped to [-30, 20]): what
    /// training samples from.
    pub fn encode_posterior(&self, video: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self.encode_moments(video)?;
        let z = self.cfg.z_dim;
        Ok((h.narrow(1, 0, z)?, h.narrow(1, z, z)?.clamp(-30f32, 20f32)?))
    }

    fn encode_moments(&self, video: &Tensor) -> Result<Tensor> {
        let x = match self.cfg.patch_size {
            Some(p) if p > 1 => patchify(video, p)?,
            _ => video.clone(),
        };
        // diffusers' `tiled_encode`: tiles in the patchified frame's cells, used when the
        // frame before patchifying is larger than a tile (its `_encode`).
        if let Some(t) = self.tiling {
            let (_, _, _, h, w) = x.dims5()?;
            let (vh, vw) = (video.dim(3)?, video.dim(4)?);
            if vh > t.tile.0 || vw > t.tile.1 {
                let es = self.spatial_factor() / self.patch();
                let lat_min = (t.tile.0 / es, t.tile.1 / es);
                let lat_stride = (t.stride.0 / es, t.stride.1 / es);
                let blend = (lat_min.0 - lat_stride.0, lat_min.1 - lat_stride.1);
                return tiling::tiled(&x, t.tile, t.stride, (lat_stride, blend, (h / es, w / es)), &mut |tile| {
                    self.encode_tile(tile)
                });
            }
        }
        self.encode_tile(&x)
    }

    /// Moments of a (patchified) clip, whole frames.
    fn encode_tile(&self, x: &Tensor) -> Result<Tensor> {
        let Some((encoder, quant_conv)) = &self.encoder else {
            candle_core::bail!("this VAE was loaded without its encoder (AutoencoderKLWan::load_decoder)")
        };
        let t = x.dim(2)?;
        let tf = self.temporal_factor();
        let mut cache = Cache::default();
        let mut outs = Vec::new();
        // First frame alone, then chunks of `tf` frames (the reference's loop).
        let mut start = 0;
        while start < t {
            let len = if start == 0 { 1 } else { tf.min(t - start) };
            outs.push(encoder.forward(&x.narrow(2, start, len)?, &mut cache, start == 0)?);
            start += len;
        }
        quant_conv.forward(&Tensor::cat(&outs, 2)?, None)
    }

    /// z: (B, z, T', H', W') raw latents -> (B, 3, 4(T'-1)+1, H, W) in [-1, 1].
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let mut chunks = Vec::new();
        self.decode_streaming(z, &mut |c| {
            chunks.push(c);
            Ok(())
        })?;
        Tensor::cat(&chunks, 2)
    }

    /// Decodes one latent frame at a time and hands each chunk of frames (B, 3, t, H, W),
    /// clamped to [-1, 1], to `on_frames` as soon as it is ready.
    pub fn decode_streaming(&self, z: &Tensor, on_frames: &mut dyn FnMut(Tensor) -> Result<()>) -> Result<()> {
        self.decode_chunks(z, true, on_frames)
    }

    /// The decoder's output without the clamp to [-1, 1]: what training compares with the
    /// input (the clamp would stop gradients wherever the output overshoots).
    pub fn decode_unclamped(&self, z: &Tensor) -> Result<Tensor> {
        let mut chunks = Vec::new();
        self.decode_chunks(z, false, &mut |c| {
            chunks.push(c);
            Ok(())
        })?;
        Tensor::cat(&chunks, 2)
    }

    fn decode_chunks(&self, z: &Tensor, clamp: bool, on_frames: &mut dyn FnMut(Tensor) -> Result<()>) -> Result<()> {
        // diffusers' `tiled_decode`: every tile over all frames, blended in the decoder's
        // (patchified) output, then unpatchified and clamped.
        if let Some(t) = self.tiling {
            let (_, _, _, h, w) = z.dims5()?;
            let s = self.spatial_factor();
            let lat_min = (t.tile.0 / s, t.tile.1 / s);
            if h > lat_min.0 || w > lat_min.1 {
                let p = self.patch();
                let stride_out = (t.stride.0 / p, t.stride.1 / p);
                let blend = (t.tile.0 / p - stride_out.0, t.tile.1 / p - stride_out.1);
                let size = (h * s / p, w * s / p);
                let out = tiling::tiled(
                    z,
                    lat_min,
                    (t.stride.0 / s, t.stride.1 / s),
                    (stride_out, blend, size),
                    &mut |tile| {
                        let mut outs = Vec::new();
                        self.decoder_frames(tile, &mut |o| {
                            outs.push(o);
                            Ok(())
                        })?;
                        Tensor::cat(&outs, 2)
                    },
                )?;
                let out = if p > 1 { unpatchify(&out, p)? } else { out };
                let out = if clamp { out.clamp(-1f32, 1f32)? } else { out };
                // Handed on as the untiled decode hands it: the first frame, then each
                // latent frame's.
                let (frames, tf) = (out.dim(2)?, self.temporal_factor());
                let mut start = 0;
                while start < frames {
                    let len = if start == 0 { 1 } else { tf.min(frames - start) };
                    on_frames(out.narrow(2, start, len)?)?;
                    start += len;
                }
                return Ok(());
            }
        }
        let p = self.patch();
        self.decoder_frames(z, &mut |out| {
            let out = if p > 1 { unpatchify(&out, p)? } else { out };
            on_frames(if clamp { out.clamp(-1f32, 1f32)? } else { out })
        })
    }

    /// The decoder's output for each latent frame in turn (patchified, unclamped), one
    /// causal cache through all of them: what both the whole-frame and the tiled decode run.
    fn decoder_frames(&self, z: &Tensor, on_out: &mut dyn FnMut(Tensor) -> Result<()>) -> Result<()> {
        let x = self.post_quant_conv.forward(z, None)?;
        let mut cache = Cache::default();
        for i in 0..x.dim(2)? {
            on_out(self.decoder.forward(&x.narrow(2, i, 1)?, &mut cache, i == 0)?)?;
        }
        Ok(())
    }

    fn stats(&self, like: &Tensor) -> Result<(Tensor, Tensor)> {
        let shape = (1, self.cfg.z_dim, 1, 1, 1);
        let f = |v: &[f64]| -> Result<Tensor> {
            Tensor::from_vec(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), shape, like.device())?
                .to_dtype(like.dtype())
        };
        Ok((f(&self.cfg.latents_mean)?, f(&self.cfg.latents_std)?))
    }

    /// (z - mean) / std: what Wan pipelines feed the transformer for given frames.
    pub fn normalize_latents(&self, z: &Tensor) -> Result<Tensor> {
        let (mean, std) = self.stats(z)?;
        z.broadcast_sub(&mean)?.broadcast_div(&std)
    }

    /// The inverse, as WanPipeline before decoding: `latents / (1 / std) + mean`.
    pub fn denormalize_latents(&self, z: &Tensor) -> Result<Tensor> {
        let (mean, std) = self.stats(z)?;
        // The reference divides by the reciprocal; keep its rounding.
        let inv = std.recip()?;
        z.broadcast_div(&inv)?.broadcast_add(&mean)
    }
}
