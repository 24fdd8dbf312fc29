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
    // One 2x spatial downsampling per level after the first; by default the last two also
    // halve time (4x temporal compression, as Wan's [false, true, true]).
    let downs = v.dim_mult.len().saturating_sub(1);
    let temporal = v.temporal();
    let mut json = serde_json::json!({
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
        "scale_factor_temporal": v.temporal_factor(),
        "scale_factor_spatial": 1usize << downs,
        "clip_output": true
    });
    if let Some(d) = v.decoder_base_dim {
        json["decoder_base_dim"] = d.into();
    }
    json
}

/// Whether a VAE variable (name without the "vae." prefix) belongs to the encoder side,
/// which `[autoencoder] frozen_encoder` loads and freezes.
fn encoder_side(name: &str) -> bool {
    name.starts_with("encoder.") || name.starts_with("quant_conv.")
}

/// The frozen encoder of `[autoencoder] frozen_encoder`: its encoder-side weights and its
/// latent statistics, checked against the run's sizes.
struct FrozenEncoder {
    weights: std::collections::HashMap<String, Tensor>,
    mean: Vec<f64>,
    std: Vec<f64>,
}

fn load_frozen_encoder(dir: &std::path::Path, vcfg: &AutoencoderKLWanConfig, device: &Device) -> Result<FrozenEncoder> {
    use anyhow::{ensure, Context};
    let text = std::fs::read_to_string(dir.join("config.json"))
        .with_context(|| format!("[autoencoder] frozen_encoder: cannot read {}/config.json", dir.display()))?;
    let theirs: AutoencoderKLWanConfig = serde_json::from_str(&text).with_context(|| {
        format!("[autoencoder] frozen_encoder: {}/config.json is not a Wan VAE config", dir.display())
    })?;
    let same = theirs.base_dim == vcfg.base_dim
        && theirs.z_dim == vcfg.z_dim
        && theirs.dim_mult == vcfg.dim_mult
        && theirs.num_res_blocks == vcfg.num_res_blocks
        && theirs.temperal_downsample == vcfg.temperal_downsample
        && theirs.is_residual == vcfg.is_residual;
    ensure!(
        same,
        "[autoencoder] frozen_encoder: {} has base_dim {}, z_dim {}, dim_mult {:?}, num_res_blocks {}, temporal {:?}, residual {}; this run has {}, {}, {:?}, {}, {:?}, {}",
        dir.display(),
        theirs.base_dim,
        theirs.z_dim,
        theirs.dim_mult,
        theirs.num_res_blocks,
        theirs.temperal_downsample,
        theirs.is_residual,
        vcfg.base_dim,
        vcfg.z_dim,
        vcfg.dim_mult,
        vcfg.num_res_blocks,
        vcfg.temperal_downsample,
        vcfg.is_residual
    );
    let file = dir.join("diffusion_pytorch_model.safetensors");
    let all = candle_core::safetensors::load(&file, device)
        .with_context(|| format!("[autoencoder] frozen_encoder: cannot read {}", file.display()))?;
    let weights: std::collections::HashMap<String, Tensor> = all
        .into_iter()
        .filter(|(k, _)| encoder_side(k))
        .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
        .collect::<Result<_>>()?;
    ensure!(!weights.is_empty(), "[autoencoder] frozen_encoder: {} holds no encoder weights", file.display());
    let z = vcfg.z_dim;
    let (mean, std) = (theirs.latents_mean.clone(), theirs.latents_std.clone());
    ensure!(
        mean.len() == z && std.len() == z,
        "[autoencoder] frozen_encoder: {}/config.json needs latents_mean and latents_std of {z} values",
        dir.display()
    );
    Ok(FrozenEncoder { weights, mean, std })
}

/// The run's VAE weights (EMA) without the "vae." prefix, with the frozen encoder's where
/// there is one.
fn full_weights(run: &Run, frozen: Option<&FrozenEncoder>) -> std::collections::HashMap<String, Tensor> {
    let mut map = run.ema_weights("vae.");
    if let Some(f) = frozen {
        map.extend(f.weights.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    map
}

pub fn train_vae(
    cfg: &TrainConfig,
    resume: bool,
    device: &Device,
    on_step: &mut dyn FnMut(StepReport),
) -> Result<PathBuf> {
    let buckets = cfg.buckets()?;
    let z = cfg.autoencoder.z_dim;
    let vcfg: AutoencoderKLWanConfig = serde_json::from_value(vae_config_json(cfg, &vec![0.0; z], &vec![1.0; z]))?;
    let vm = VarMap::new();
    AutoencoderKLWan::new(&vcfg, VarBuilder::from_varmap(&vm, DType::F32, device))?;
    init(&vm, &mut Rng::new(cfg.seed), true)?;
    if cfg.autoencoder.carry_init {
        init_carry(&vm, &vcfg)?;
    }
    let frozen = match &cfg.autoencoder.frozen_encoder {
        Some(dir) => Some(load_frozen_encoder(dir, &vcfg, device)?),
        None => None,
    };
    let mut named = sorted_vars(&vm, "vae.");
    if let Some(f) = &frozen {
        // The encoder side takes the frozen VAE's weights and leaves the trained set.
        for (name, var) in &named {
            let short = &name["vae.".len()..];
            if encoder_side(short) {
                let w = f
                    .weights
                    .get(short)
                    .ok_or_else(|| anyhow::anyhow!("[autoencoder] frozen_encoder: its weights lack {short}"))?;
                anyhow::ensure!(
                    w.dims() == var.dims(),
                    "[autoencoder] frozen_encoder: {short} is {:?}, this run's is {:?}",
                    w.dims(),
                    var.dims()
                );
                var.set(w)?;
            }
        }
        named.retain(|(name, _)| !encoder_side(&name["vae.".len()..]));
    }
    let mut run = Run::open(cfg, named, resume)?;
    if let (Some(lv), 0, None) = (cfg.autoencoder.logvar_init, run.start, &frozen) {
        // quant_conv's output is (mean, log-variance) along channels.
        let bias = vm
            .data()
            .lock()
            .unwrap()
            .get("quant_conv.bias")
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the VAE has no quant_conv.bias"))?;
        let b = bias.as_tensor().narrow(0, 0, z)?;
        bias.set(&Tensor::cat(&[&b, &Tensor::full(lv as f32, z, device)?], 0)?)?;
        run.sync_ema()?;
    }
    let source = Source::open(&cfg.data)?;
    let sample_clips = crate::samples::sample_clips(cfg.data.fps, device)?;
    for step in run.start..cfg.steps {
        let mut srng = Rng::derive(cfg.seed ^ 0x0AE5, step as u64);
        let batch = source.batch(cfg.seed, step, cfg.batch, &buckets, cfg.data.fps, 0.5, device)?;
        let t0 = Instant::now();
        let model = AutoencoderKLWan::new(&vcfg, VarBuilder::from_varmap(&vm, DType::F32, device))?;
        let (mut mean, mut logvar) = model.encode_posterior(&batch.video)?;
        if frozen.is_some() {
            // Nothing flows back into the frozen encoder.
            (mean, logvar) = (mean.detach(), logvar.detach());
        }
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
        let w = if cfg.autoencoder.object_weight > 0.0 {
            Some(object_weights(&batch.video, cfg.autoencoder.object_weight)?)
        } else {
            None
        };
        // Weighted mean: sum(w * e^2) / sum(w) over all values, so the scale stays MSE's.
        let weighted = |sq: &Tensor, w: Option<&Tensor>| -> Result<Tensor> {
            Ok(match w {
                Some(w) => (sq.broadcast_mul(w)?.sum_all()? / (w.sum_all()?.to_scalar::<f32>()? as f64 * 3.0))?,
                None => sq.mean_all()?,
            })
        };
        let mut rec = weighted(&sq, w.as_ref())?;
        let t = err.dim(2)?;
        if cfg.autoencoder.motion_weight > 0.0 && t > 1 {
            // The error of each frame-to-frame difference: e[t+1] - e[t].
            let de = (err.narrow(2, 1, t - 1)? - err.narrow(2, 0, t - 1)?)?;
            let wl = w.as_ref().map(|w| w.narrow(2, 1, t - 1)).transpose()?;
            rec = (rec + (weighted(&de.sqr()?, wl.as_ref())? * cfg.autoencoder.motion_weight)?)?;
        }
        let kl = ((mean.sqr()? + logvar.exp()?)? - 1.0)?.sub(&logvar)?.mean_all()?.affine(0.5, 0.0)?;
        let loss = (&rec + (kl * cfg.autoencoder.kl)?)?;
        let t2 = Instant::now();
        let (backward, _) = run.step(step, &loss, &mse, on_step)?;
        if cfg.sample_every > 0 && ((step + 1) % cfg.sample_every == 0 || step + 1 == cfg.steps) {
            let ema = AutoencoderKLWan::new(
                &vcfg,
                VarBuilder::from_tensors(full_weights(&run, frozen.as_ref()), DType::F32, device),
            )?;
            crate::samples::vae_sheet(&ema, &sample_clips, &cfg.out, step + 1)?;
        }
        if profiling() {
            eprintln!(
                "step {}: encode {:.2}s, decode {:.2}s, backward {:.2}s",
                step + 1,
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64(),
                backward.as_secs_f64()
            );
        }
    }
    export_vae(cfg, &vcfg, &run, frozen.as_ref(), device)
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

/// The carry channels' constant (see [`init_carry`]): large against the colours (|v| <= 1)
/// so the channel RMS norms before the output convolutions divide by nearly the same
/// number everywhere (K = 20: within 0.8%).
const CARRY_K: f32 = 20.0;

/// The carry initialisation of a residual VAE (`[autoencoder] carry_init`), applied over
/// `init`'s: the VAE starts as an average-and-repeat autoencoder that keeps colour, so
/// training refines a colour-correct mosaic instead of discovering colour (every VAE
/// trained from a random start lost the world's weakest colour axis; MODEL_CARD).
/// - Every residual branch starts at zero (the last convolution of each ResBlock, the
///   attention's output projection, the resamplers' convolutions; as Fixup / ReZero's
///   zero-initialised residuals), and `conv_shortcut`s are identities on their first
///   channels, so only Wan 2.2's parameter-free shortcuts (AvgDown3D / DupUp3D) carry:
///   the encoder averages over space and time, the decoder repeats.
/// - The encoder's `conv_in` writes seven carry channels: +R, -R, +G, -G, +B, -B and a
///   constant K; the other channels start at zero. The shortcuts keep the channels apart
///   (checked here for the layout), so at the end of the encoder each channel holds one
///   carry value times a common factor.
/// - `norm_out` then divides by about K times a constant, and SiLU is undone exactly by
///   the pairs: silu(y) - silu(-y) = y. `conv_out` reads latent c = the pair's difference,
///   scaled so a flat colour's latent is the colour itself (in [-1, 1]); the remaining
///   latent channels keep their random start, the log-variance outputs start at zero
///   weight. `quant_conv` and `post_quant_conv` start as identities.
/// - The decoder mirrors it: `conv_in` writes the pairs of latents 0..3 and K, `conv_out`
///   reads the pairs' differences.
///
/// At the start a clip whose colours are constant over each 4x4 block and 4-frame group
/// comes back exactly, except the first latent frame at 1/sqrt(2) of its colour (the
/// encoder's first chunk is zero-padded in time by AvgDown3D, which halves its share of the
/// norm); training corrects that and learns the detail.
pub fn init_carry(vm: &VarMap, vcfg: &AutoencoderKLWanConfig) -> Result<()> {
    use anyhow::{bail, ensure};
    ensure!(vcfg.is_residual, "[autoencoder] carry_init needs residual = true (it carries through Wan 2.2's averaging / duplicating shortcuts)");
    let z = vcfg.z_dim;
    ensure!(z >= 3, "[autoencoder] carry_init needs z_dim >= 3 (latents 0..3 carry R, G, B), not {z}");
    let (dim, mult, n) = (vcfg.base_dim, &vcfg.dim_mult, vcfg.dim_mult.len());
    ensure!(dim >= 7, "[autoencoder] carry_init needs base_dim >= 7 (seven carry channels), not {dim}");
    // Which carry value (0..7: +R, -R, +G, -G, +B, -B, K) each channel holds, through a shortcut
    // that maps flattened (channel, sub-position) index i of input channel i / per_in to output
    // channel i / per_out.
    type Map = Vec<Option<usize>>;
    let fold = |map: &Map, out: usize, per_in: usize, per_out: usize| -> Result<Map> {
        let total = map.len() * per_in;
        ensure!(
            total == out * per_out,
            "carry_init: a shortcut of {} channels into {out} does not divide evenly",
            map.len()
        );
        (0..out)
            .map(|k| {
                let src: Vec<Option<usize>> = (k * per_out..(k + 1) * per_out).map(|i| map[i / per_in]).collect();
                if src.iter().all(|s| *s == src[0]) {
                    Ok(src[0])
                } else {
                    bail!("[autoencoder] carry_init: this layout's shortcuts mix channels (dim_mult {mult:?}); it supports layouts whose shortcuts keep each channel apart, as [1, 2, 2]")
                }
            })
            .collect()
    };
    let start: Map = (0..7).map(Some).chain(std::iter::repeat(None)).take(dim).collect();
    // Encoder: down block i takes dims[i] to dims[i + 1]; AvgDown3D groups (C, ft, fs, fs).
    let edims: Vec<usize> = std::iter::once(1).chain(mult.iter().copied()).map(|m| dim * m).collect();
    let mut emap = start.clone();
    for i in 0..n {
        let last = i == n - 1;
        let tdown = !last && vcfg.temperal_downsample.get(i).copied().unwrap_or(false);
        let factor = if tdown { 2 } else { 1 } * if last { 1 } else { 4 };
        let out = edims[i + 1];
        if last {
            // No resampler: resnets(x) + x, both identities on the carry at the start.
            ensure!(edims[i] == out, "carry_init: the last down block must keep its width");
        }
        emap = fold(&emap, out, factor, edims[i] * factor / out)?;
    }
    // Decoder: up block i takes ddims[i] to ddims[i + 1]; DupUp3D repeats each channel.
    // The decoder's width (`decoder_base_dim`) may differ from the encoder's.
    let ddim = vcfg.decoder_base_dim.unwrap_or(dim);
    ensure!(ddim >= 7, "[autoencoder] carry_init needs decoder_base_dim >= 7 (seven carry channels), not {ddim}");
    let ddims: Vec<usize> = std::iter::once(mult[n - 1]).chain(mult.iter().rev().copied()).map(|m| ddim * m).collect();
    let tup: Vec<bool> = vcfg.temperal_downsample.iter().rev().copied().collect();
    let mut dmap = start;
    ensure!(ddims[0] >= 7, "carry_init: the decoder is too narrow");
    dmap.resize(ddims[0], None);
    for i in 0..n {
        let cout = ddims[i + 1];
        if i != n - 1 {
            let factor = if tup.get(i).copied().unwrap_or(false) { 8 } else { 4 };
            dmap = fold(&dmap, cout, cout * factor / ddims[i], factor)?;
        } else {
            // No shortcut: the resnets, the first with conv_shortcut = identity on the first channels.
            ensure!(
                dmap[cout..].iter().all(|m| m.is_none()),
                "carry_init: the decoder's last block drops a carry channel"
            );
            dmap.truncate(cout);
        }
    }
    let count = |map: &Map, j: usize| map.iter().filter(|m| **m == Some(j)).count();
    let data = vm.data().lock().unwrap();
    let var = |name: &str| data.get(name).ok_or_else(|| anyhow::anyhow!("carry_init: the VAE has no {name}"));
    // Where only the shape is needed, var(name)?.dims(): get copies the values out.
    let dims = |name: &str| -> Result<Vec<usize>> { Ok(var(name)?.dims().to_vec()) };
    let set = |name: &str, values: Vec<f32>| -> Result<()> {
        let v = var(name)?;
        v.set(&Tensor::from_vec(values, v.dims(), &Device::Cpu)?.to_device(v.device())?)?;
        Ok(())
    };
    let get = |name: &str| -> Result<(Vec<f32>, Vec<usize>)> {
        let v = var(name)?;
        Ok((v.as_tensor().to_device(&Device::Cpu)?.flatten_all()?.to_vec1()?, v.dims().to_vec()))
    };
    // Zero residual branches and identity channel projections.
    let mut names: Vec<String> = data.keys().cloned().collect();
    names.sort();
    for name in &names {
        let zero = (name.contains(".resnets.") && name.contains(".conv2."))
            || name.contains(".attentions.0.proj.")
            || name.contains("sampler.resample.1.")
            || (name.contains("downsampler.time_conv.") && name.ends_with("bias"));
        let dims = dims(name)?;
        let len: usize = dims.iter().product();
        if zero {
            set(name, vec![0.0; len])?;
        } else if name.ends_with("conv_shortcut.weight")
            || name == "quant_conv.weight"
            || name == "post_quant_conv.weight"
        {
            let (o, i) = (dims[0], dims[1]);
            set(name, (0..o * i).map(|k| if k / i == k % i { 1.0 } else { 0.0 }).collect())?;
        }
    }
    // A 3x3x3 causal kernel's current-frame centre tap: (kt, kh, kw) = (2, 1, 1).
    let centre = |o: usize, i: usize, cin: usize| ((o * cin + i) * 3 + 2) * 9 + 4;
    for (conv_in, cin) in [("encoder.conv_in", 3), ("decoder.conv_in", z)] {
        let dims = dims(&format!("{conv_in}.weight"))?;
        let mut w = vec![0f32; dims.iter().product()];
        for c in 0..3 {
            w[centre(2 * c, c, cin)] = 1.0;
            w[centre(2 * c + 1, c, cin)] = -1.0;
        }
        set(&format!("{conv_in}.weight"), w)?;
        let mut b = vec![0f32; dims[0]];
        b[6] = CARRY_K;
        set(&format!("{conv_in}.bias"), b)?;
    }
    // Output convolutions: latent / colour c = a * sum(silu(+c) - silu(-c)), with
    // a = sqrt(m_K) K / (m_c sqrt(C)), m the number of channels holding a carry value.
    for (conv_out, map, rows) in [("encoder.conv_out", &emap, 2 * z), ("decoder.conv_out", &dmap, 3)] {
        let (mut w, dims) = get(&format!("{conv_out}.weight"))?;
        let cin = dims[1];
        ensure!(cin == map.len() && dims[0] == rows, "carry_init: {conv_out} has an unexpected shape {dims:?}");
        let per_row = cin * 27;
        let keep_random = if rows == 3 { 0..0 } else { 3..z };
        for o in 0..rows {
            if !keep_random.contains(&o) {
                w[o * per_row..(o + 1) * per_row].iter_mut().for_each(|x| *x = 0.0);
            }
        }
        let mk = count(map, 6) as f32;
        ensure!(mk > 0.0, "carry_init: the constant channel is lost in {conv_out}");
        for c in 0..3 {
            let mc = count(map, 2 * c) as f32;
            ensure!(mc > 0.0 && count(map, 2 * c + 1) as f32 == mc, "carry_init: colour {c} is lost in {conv_out}");
            let a = mk.sqrt() * CARRY_K / (mc * (cin as f32).sqrt());
            for (ch, m) in map.iter().enumerate() {
                match m {
                    Some(j) if *j == 2 * c => w[centre(c, ch, cin)] = a,
                    Some(j) if *j == 2 * c + 1 => w[centre(c, ch, cin)] = -a,
                    _ => {}
                }
            }
        }
        set(&format!("{conv_out}.weight"), w)?;
        set(&format!("{conv_out}.bias"), vec![0.0; rows])?;
    }
    Ok(())
}

/// How many fresh clips the exported latent statistics are measured on.
const STAT_CLIPS: usize = 64;

/// Writes out/model/vae with the EMA weights and measured latent statistics.
/// With a frozen encoder its weights and statistics are written as they were, so the
/// latents are exactly those of the frozen VAE.
fn export_vae(
    cfg: &TrainConfig,
    vcfg: &AutoencoderKLWanConfig,
    run: &Run,
    frozen: Option<&FrozenEncoder>,
    device: &Device,
) -> Result<PathBuf> {
    let dir = cfg.out.join("model").join("vae");
    std::fs::create_dir_all(&dir)?;
    let map = full_weights(run, frozen);
    let weights = dir.join("diffusion_pytorch_model.safetensors");
    candle_core::safetensors::save(&map, &weights)?;
    if let Some(f) = frozen {
        std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&vae_config_json(cfg, &f.mean, &f.std))?)?;
        return Ok(dir);
    }
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
        let batch = world_batch(
            cfg.seed ^ 0x57A7,
            cfg.steps + k,
            cfg.batch,
            &buckets,
            cfg.data.fps,
            0.5,
            cfg.data.hold_out,
            device,
        )?;
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
    #[test]
    fn carry_init_starts_as_a_colour_keeping_autoencoder() {
        // A tiny residual VAE (4x spatial, 4x temporal, 4 latents) at its carry start: a clip
        // whose colours are constant over 4x4 blocks and over time comes back, colour for
        // colour; the first frame at 1/sqrt(2) of its colour (see init_carry).
        let dev = Device::Cpu;
        let cfg: AutoencoderKLWanConfig = serde_json::from_value(serde_json::json!({
            "base_dim": 8, "z_dim": 4, "dim_mult": [1, 2, 2], "num_res_blocks": 1, "attn_scales": [],
            "temperal_downsample": [true, true], "latents_mean": [0.0, 0.0, 0.0, 0.0],
            "latents_std": [1.0, 1.0, 1.0, 1.0], "is_residual": true
        }))
        .unwrap();
        let vm = VarMap::new();
        AutoencoderKLWan::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
        init(&vm, &mut Rng::new(1), true).unwrap();
        let model = || AutoencoderKLWan::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
        // 16x16 of 4x4 blocks in palette-like colours, the same over 5 frames.
        let mut rng = Rng::new(2);
        let blocks: Vec<f32> = (0..3 * 16).map(|_| (rng.unit() * 1.8 - 0.9) as f32).collect();
        let mut v = vec![0f32; 3 * 5 * 16 * 16];
        for c in 0..3 {
            for t in 0..5 {
                for y in 0..16 {
                    for x in 0..16 {
                        v[((c * 5 + t) * 16 + y) * 16 + x] = blocks[c * 16 + (y / 4) * 4 + x / 4];
                    }
                }
            }
        }
        let video = Tensor::from_vec(v, (1, 3, 5, 16, 16), &dev).unwrap();
        let roundtrip = |m: &AutoencoderKLWan| {
            let (mean, _) = m.encode_posterior(&video).unwrap();
            m.decode_unclamped(&mean).unwrap()
        };
        let max_err =
            |a: &Tensor, b: &Tensor| (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        // A random start does not keep the colours.
        let plain = roundtrip(&model());
        assert!(max_err(&plain, &video) > 0.3);
        init_carry(&vm, &cfg).unwrap();
        let out = roundtrip(&model());
        assert_eq!(out.dims(), video.dims());
        let rest = max_err(&out.narrow(2, 1, 4).unwrap(), &video.narrow(2, 1, 4).unwrap());
        assert!(rest < 0.02, "frames 1..5 off by {rest}");
        let first = max_err(
            &out.narrow(2, 0, 1).unwrap(),
            &(video.narrow(2, 0, 1).unwrap() * std::f64::consts::FRAC_1_SQRT_2).unwrap(),
        );
        assert!(first < 0.02, "frame 0 off by {first}");
        // The latents are the blocks' colours (latents 0..3; latent 3 is free).
        let (mean, logvar) = model().encode_posterior(&video).unwrap();
        let l1 = mean.narrow(2, 1, 1).unwrap().narrow(1, 0, 3).unwrap().squeeze(0).unwrap().squeeze(1).unwrap();
        let want = Tensor::from_vec(blocks, (3, 4, 4), &dev).unwrap();
        assert!(max_err(&l1, &want) < 0.02);
        assert!(logvar.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() < 1e-6);
        // A decoder wider than the encoder (`decoder_base_dim`) starts the same way.
        let wide = AutoencoderKLWanConfig { decoder_base_dim: Some(16), ..cfg.clone() };
        let wvm = VarMap::new();
        AutoencoderKLWan::new(&wide, VarBuilder::from_varmap(&wvm, DType::F32, &dev)).unwrap();
        init(&wvm, &mut Rng::new(1), true).unwrap();
        init_carry(&wvm, &wide).unwrap();
        let wmodel = AutoencoderKLWan::new(&wide, VarBuilder::from_varmap(&wvm, DType::F32, &dev)).unwrap();
        let wout = roundtrip(&wmodel);
        let rest = max_err(&wout.narrow(2, 1, 4).unwrap(), &video.narrow(2, 1, 4).unwrap());
        assert!(rest < 0.02, "wide decoder: frames 1..5 off by {rest}");
        assert_eq!(wvm.data().lock().unwrap()["decoder.conv_in.weight"].dims()[0], 32, "16 x dim_mult's last 2");
        // Layouts it cannot carry through, and the plain layout, are refused clearly.
        let plain_cfg = AutoencoderKLWanConfig { is_residual: false, ..cfg.clone() };
        assert!(init_carry(&vm, &plain_cfg).unwrap_err().to_string().contains("residual = true"));
    }
}
