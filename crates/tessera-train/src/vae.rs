//! The VAE stage: a Wan 2.1 video autoencoder trained from scratch on the world, with a
//! reconstruction loss (mean squared error of the unclamped decoder output) and a small KL
//! term on the posterior (Kingma & Welling 2014). At the end the latents' per-channel mean
//! and standard deviation are measured on fresh world clips and written into the config,
//! as Wan's `latents_mean` / `latents_std`, so the transformer sees unit-scale latents.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use tessera_models::wan::vae::{AutoencoderKLWan, AutoencoderKLWanConfig};
use tessera_world::rng::Rng;

use crate::config::TrainConfig;
use crate::data::{world_batch, Source};
use crate::flow::noise;
use crate::run::{init, profiling, sorted_vars, Run, StepReport};

/// The diffusers config of the run's VAE (latent statistics as given).
pub fn vae_config_json(cfg: &TrainConfig, mean: &[f64], std: &[f64]) -> serde_json::Value {
    let v = &cfg.autoencoder;
    // One 2x spatial downsampling per level after the first; the last two also halve time
    // (4x temporal compression, as Wan's [false, true, true]).
    let downs = v.dim_mult.len().saturating_sub(1);
    let temporal: Vec<bool> = (0..downs).map(|i| i + 2 >= downs).collect();
    serde_json::json!({
        "_class_name": "AutoencoderKLWan",
        "base_dim": v.base_dim,
        "z_dim": v.z_dim,
        "dim_mult": v.dim_mult,
        "num_res_blocks": v.num_res_blocks,
        "attn_scales": [],
        "temperal_downsample": temporal,
        "dropout": 0.0,
        "latents_mean": mean,
        "latents_std": std,
        "is_residual": v.residual,
        "in_channels": 3,
        "out_channels": 3,
        "patch_size": null,
        "scale_factor_temporal": 4,
        "scale_factor_spatial": 1usize << downs,
        "clip_output": true
    })
}

pub fn train_vae(cfg: &TrainConfig, resume: bool, device: &Device, on_step: &mut dyn FnMut(StepReport)) -> Result<PathBuf> {
    let buckets = cfg.buckets()?;
    let z = cfg.autoencoder.z_dim;
    let vcfg: AutoencoderKLWanConfig = serde_json::from_value(vae_config_json(cfg, &vec![0.0; z], &vec![1.0; z]))?;
    let vm = VarMap::new();
    AutoencoderKLWan::new(&vcfg, VarBuilder::from_varmap(&vm, DType::F32, device))?;
    init(&vm, &mut Rng::new(cfg.seed), true)?;
    let mut run = Run::open(cfg, sorted_vars(&vm, "vae."), resume)?;
    if let (Some(lv), 0) = (cfg.autoencoder.logvar_init, run.start) {
        // quant_conv's output is (mean, log-variance) along channels.
        let bias = vm.data().lock().unwrap().get("quant_conv.bias").cloned().ok_or_else(|| anyhow::anyhow!("the VAE has no quant_conv.bias"))?;
        let b = bias.as_tensor().narrow(0, 0, z)?;
        bias.set(&Tensor::cat(&[&b, &Tensor::full(lv as f32, z, device)?], 0)?)?;
        run.sync_ema()?;
    }
    let source = Source::open(&cfg.data)?;
    for step in run.start..cfg.steps {
        let mut srng = Rng::derive(cfg.seed ^ 0x0AE5, step as u64);
        let batch = source.batch(cfg.seed, step, cfg.batch, &buckets, cfg.data.fps, 0.5, device)?;
        let t0 = Instant::now();
        let model = AutoencoderKLWan::new(&vcfg, VarBuilder::from_varmap(&vm, DType::F32, device))?;
        let (mean, logvar) = model.encode_posterior(&batch.video)?;
        let t1 = Instant::now();
        let eps = noise(&mut srng, mean.dims(), device, DType::F32)?;
        let mut zs = (&mean + (logvar.affine(0.5, 0.0)?.exp()? * eps)?)?;
        if cfg.autoencoder.decoder_noise > 0.0 {
            zs = (&zs + decoder_noise(&mean, cfg.autoencoder.decoder_noise, &mut srng)?)?;
        }
        let recon = model.decode_unclamped(&zs)?;
        let err = (recon - &batch.video)?;
        let plain = err.sqr()?;
        let mse = plain.mean_all()?;
        let sq = with_chroma_error(plain, &err, cfg.autoencoder.chroma_weight)?;
        let rec = if cfg.autoencoder.object_weight > 0.0 {
            // Weighted mean: sum(w * e^2) / sum(w) over all values, so the scale stays MSE's.
            let w = object_weights(&batch.video, cfg.autoencoder.object_weight)?;
            (sq.broadcast_mul(&w)?.sum_all()? / (w.sum_all()?.to_scalar::<f32>()? as f64 * 3.0))?
        } else {
            sq.mean_all()?
        };
        let kl = ((mean.sqr()? + logvar.exp()?)? - 1.0)?.sub(&logvar)?.mean_all()?.affine(0.5, 0.0)?;
        let loss = (&rec + (kl * cfg.autoencoder.kl)?)?;
        let t2 = Instant::now();
        let (backward, _) = run.step(step, &loss, &mse, on_step)?;
        if profiling() {
            eprintln!("step {}: encode {:.2}s, decode {:.2}s, backward {:.2}s", step + 1, (t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64(), backward.as_secs_f64());
        }
    }
    export_vae(cfg, &vcfg, &run, device)
}

/// The per-value squared error `sq` (= err^2) of a (B, 3, ...) RGB error `err`, plus on the
/// green channel's slot `chroma_weight` times the square of the pixel's green-magenta
/// error G - (R + B) / 2 (`[autoencoder] chroma_weight`), so a sum over values counts it
/// once per pixel.
pub fn with_chroma_error(sq: Tensor, err: &Tensor, chroma_weight: f64) -> Result<Tensor> {
    if chroma_weight <= 0.0 {
        return Ok(sq);
    }
    let gm = (err.narrow(1, 1, 1)? - ((err.narrow(1, 0, 1)? + err.narrow(1, 2, 1)?)? * 0.5)?)?;
    let extra = (gm.sqr()? * chroma_weight)?;
    let zero = extra.zeros_like()?;
    Ok((sq + Tensor::cat(&[&zero, &extra, &zero], 1)?)?)
}

/// The noise of noise-augmented decoding (`[autoencoder] decoder_noise`) for posterior
/// means (B, C, F, h, w): Gaussian, std `u * level` times each channel's std over the batch
/// (detached, so the encoder cannot shrink it), u uniform in 0..1 drawn per sample.
pub fn decoder_noise(mean: &Tensor, level: f64, rng: &mut Rng) -> Result<Tensor> {
    let (b, c, _, _, _) = mean.dims5()?;
    let per_channel = mean.detach().transpose(0, 1)?.contiguous()?.flatten_from(1)?;
    let std = per_channel.var_keepdim(1)?.sqrt()?.reshape((1, c, 1, 1, 1))?;
    let levels: Vec<f32> = (0..b).map(|_| (rng.unit() * level) as f32).collect();
    let levels = Tensor::from_vec(levels, (b, 1, 1, 1, 1), mean.device())?;
    Ok(noise(rng, mean.dims(), mean.device(), DType::F32)?.broadcast_mul(&std)?.broadcast_mul(&levels)?)
}

/// Per-pixel loss weights (B, 1, T, H, W) for a (B, 3, T, H, W) video in [-1, 1]: 1 + `extra`
/// where a pixel or one of its 8 neighbours is a palette colour (an object of the world,
/// as the evaluator segments them), else 1.
pub fn object_weights(video: &Tensor, extra: f64) -> Result<Tensor> {
    use tessera_world::eval::segment::{classify, Image, NONE};
    let (b, _, t, h, w) = video.dims5()?;
    let v: Vec<f32> = video.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let plane = h * w;
    let mut out = vec![1f32; b * t * plane];
    let mut rgb = vec![0u8; plane * 3];
    for bi in 0..b {
        for ti in 0..t {
            for c in 0..3 {
                let base = ((bi * 3 + c) * t + ti) * plane;
                for i in 0..plane {
                    rgb[i * 3 + c] = ((v[base + i] + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8;
                }
            }
            let img = Image { width: w, height: h, data: std::mem::take(&mut rgb) };
            let class = classify(&img);
            rgb = img.data;
            let o = &mut out[(bi * t + ti) * plane..][..plane];
            for y in 0..h {
                for x in 0..w {
                    if class[y * w + x] == NONE {
                        continue;
                    }
                    for yy in y.saturating_sub(1)..(y + 2).min(h) {
                        for xx in x.saturating_sub(1)..(x + 2).min(w) {
                            o[yy * w + xx] = 1.0 + extra as f32;
                        }
                    }
                }
            }
        }
    }
    Ok(Tensor::from_vec(out, (b, 1, t, h, w), &Device::Cpu)?.to_device(video.device())?)
}

/// How many fresh clips the exported latent statistics are measured on.
const STAT_CLIPS: usize = 64;

/// Writes out/model/vae with the EMA weights and measured latent statistics.
fn export_vae(cfg: &TrainConfig, vcfg: &AutoencoderKLWanConfig, run: &Run, device: &Device) -> Result<PathBuf> {
    let dir = cfg.out.join("model").join("vae");
    std::fs::create_dir_all(&dir)?;
    let map = run.ema_weights("vae.");
    let weights = dir.join("diffusion_pytorch_model.safetensors");
    candle_core::safetensors::save(&map, &weights)?;
    // Latent statistics over fresh clips (steps past the end of training).
    let model = AutoencoderKLWan::new(vcfg, VarBuilder::from_tensors(map, DType::F32, device))?;
    let buckets = cfg.buckets()?;
    let z = vcfg.z_dim;
    let (mut sum, mut sq, mut n) = (vec![0f64; z], vec![0f64; z], 0f64);
    // A world clip is one scene: its background fills most of the latents, so the channel
    // statistics vary from clip to clip far more than within one. Until 2026-12-01 they
    // were measured on 4 batches (4 clips at batch 1), which left the v3 VAE's normalised
    // latents with a mean square of about 5 instead of 1. Now at least 64 clips.
    let batches = STAT_CLIPS.div_ceil(cfg.batch.max(1));
    for k in 0..batches {
        let batch = world_batch(cfg.seed ^ 0x57A7, cfg.steps + k, cfg.batch, &buckets, cfg.data.fps, 0.5, device)?;
        let lat = model.encode(&batch.video)?.transpose(0, 1)?.flatten_from(1)?.to_dtype(DType::F64)?; // (z, N)
        let s: Vec<f64> = lat.sum(1)?.to_vec1()?;
        let q: Vec<f64> = lat.sqr()?.sum(1)?.to_vec1()?;
        for c in 0..z {
            sum[c] += s[c];
            sq[c] += q[c];
        }
        n += lat.dim(1)? as f64;
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let std: Vec<f64> = sq.iter().zip(&mean).map(|(q, m)| (q / n - m * m).max(1e-8).sqrt()).collect();
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&vae_config_json(cfg, &mean, &std))?)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chroma_weight_counts_only_the_green_magenta_error() {
        let dev = Device::Cpu;
        let total = |e: [f32; 3], k: f64| -> f32 {
            let t = Tensor::new(&e, &dev).unwrap().reshape((1, 3, 1, 1, 1)).unwrap();
            with_chroma_error(t.sqr().unwrap(), &t, k).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap()
        };
        // Luminance and blue-orange errors have no green-magenta part: unchanged.
        assert!((total([0.1, 0.1, 0.1], 8.0) - 0.03).abs() < 1e-6);
        assert!((total([0.1, 0.0, -0.1], 8.0) - 0.02).abs() < 1e-6);
        // A pure green error: 0.01 plus 8 times its green-magenta part, 0.1^2.
        assert!((total([0.0, 0.1, 0.0], 8.0) - 0.09).abs() < 1e-6);
        assert!((total([0.0, 0.1, 0.0], 0.0) - 0.01).abs() < 1e-6);
    }

    #[test]
    fn decoder_noise_follows_each_channels_std_and_the_level() {
        // Channel 0 spread 1, channel 1 spread 10: the noise's std per channel follows.
        let dev = Device::Cpu;
        let mut rng = Rng::new(3);
        let base = noise(&mut rng, &[2, 2, 4, 16, 16], &dev, DType::F32).unwrap();
        let scale = Tensor::new(&[1f32, 10.0], &dev).unwrap().reshape((1, 2, 1, 1, 1)).unwrap();
        let mean = base.broadcast_mul(&scale).unwrap();
        let std_of = |t: &Tensor, c: usize| -> f64 {
            let v: Vec<f32> = t.narrow(1, c, 1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            (v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
        };
        // Averaged over many draws of the per-sample level u: E[u^2] = 1/3.
        let (mut s0, mut s1) = (0.0, 0.0);
        let draws = 200;
        for _ in 0..draws {
            let e = decoder_noise(&mean, 0.6, &mut rng).unwrap();
            assert_eq!(e.dims(), mean.dims());
            s0 += std_of(&e, 0).powi(2);
            s1 += std_of(&e, 1).powi(2);
        }
        let (r0, r1) = ((s0 / draws as f64).sqrt(), (s1 / draws as f64).sqrt());
        let want = 0.6 / 3f64.sqrt();
        assert!((r0 / want - 1.0).abs() < 0.1, "channel 0: {r0} against {want}");
        assert!((r1 / r0 - 10.0).abs() < 0.5, "channel 1 / channel 0: {}", r1 / r0);
        // Level 0: no noise.
        let e = decoder_noise(&mean, 0.0, &mut rng).unwrap();
        assert_eq!(e.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    }
}
