//! The training loop, top to bottom: data, objective, step, EMA, log, checkpoint. One file
//! to read in a sitting (after nanoGPT's train.py).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use tessera_models::tokenizer::WanTokenizer;
use tessera_models::umt5::{encode_prompts, UMT5Config, UMT5EncoderModel};
use tessera_models::wan::config::WanTransformerConfig;
use tessera_models::wan::transformer::WanTransformer3DModel;
use tessera_models::wan::vae::AutoencoderKLWan;
use tessera_world::rng::Rng;

use crate::config::{Stage, TrainConfig};
use crate::data::Source;
use crate::flow::{mask_channels, masked_video, noise, noised, sample_t, MaskKind};
use crate::run::{init, profiling, sorted_vars, Run};

/// The configs of the two trained models, derived from the run's config and the VAE.
/// `tf`: the VAE's temporal factor, the number of Wan's mask channels.
pub fn model_configs(
    cfg: &TrainConfig,
    z_dim: usize,
    tf: usize,
    vocab: usize,
) -> Result<(serde_json::Value, serde_json::Value)> {
    let t = &cfg.transformer;
    let transformer = serde_json::json!({
        "_class_name": "WanTransformer3DModel",
        "patch_size": [1, t.patch, t.patch],
        "num_attention_heads": t.heads,
        "attention_head_dim": t.head_dim,
        "in_channels": 2 * z_dim + tf,
        "out_channels": z_dim,
        "text_dim": cfg.text.dim,
        "freq_dim": 256,
        "ffn_dim": t.ffn,
        "num_layers": t.layers,
        "cross_attn_norm": true,
        "qk_norm": "rms_norm_across_heads",
        "eps": 1e-6,
        "image_dim": null,
        "added_kv_proj_dim": null,
        "rope_max_seq_len": 1024,
        "pos_embed_seq_len": null
    });
    let x = &cfg.text;
    let text = serde_json::json!({
        "_class_name": "UMT5EncoderModel",
        "architectures": ["UMT5EncoderModel"],
        "model_type": "umt5",
        "vocab_size": vocab,
        "d_model": x.dim,
        "d_kv": x.dim / x.heads,
        "d_ff": 2 * x.dim,
        "num_layers": x.layers,
        "num_heads": x.heads,
        "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128,
        "feed_forward_proj": "gated-gelu",
        "layer_norm_epsilon": 1e-6,
        "dense_act_fn": "gelu_new",
        "is_gated_act": true
    });
    Ok((transformer, text))
}

pub use crate::run::StepReport;

/// Trains (or resumes) the run described by `cfg`; `on_step` hears of every step. Returns
/// the exported folder.
pub fn train(cfg: &TrainConfig, resume: bool, device: &Device, on_step: &mut dyn FnMut(StepReport)) -> Result<PathBuf> {
    match cfg.stage {
        Stage::Vae => crate::vae::train_vae(cfg, resume, device, on_step),
        Stage::Transformer => train_transformer(cfg, resume, device, on_step),
    }
}

fn train_transformer(
    cfg: &TrainConfig,
    resume: bool,
    device: &Device,
    on_step: &mut dyn FnMut(StepReport),
) -> Result<PathBuf> {
    let vae_path = cfg.vae.clone().context("the transformer stage needs `vae`")?;
    let buckets = cfg.buckets()?;
    let model_dir = cfg.out.join("model");

    // The frozen VAE and the tokenizer (written where the exported model will read it).
    let vae = AutoencoderKLWan::load(&vae_path, DType::F32, device)
        .with_context(|| format!("cannot load the VAE {}", vae_path.display()))?;
    let z_dim = vae.config().z_dim;
    let stride = vae.config().spatial_factor() * cfg.transformer.patch;
    if let Some(b) = buckets.iter().find(|b| b.width % stride != 0 || b.height % stride != 0) {
        anyhow::bail!(
            "bucket {}x{}x{}: width and height must be multiples of {stride} (the VAE's stride {} times patch {})",
            b.width,
            b.height,
            b.frames,
            vae.config().spatial_factor(),
            cfg.transformer.patch
        );
    }
    let tok = crate::text::world_tokenizer()?;
    crate::text::save_tokenizer(&tok, &model_dir.join("tokenizer"))?;
    let tokenizer = WanTokenizer::from_file(&model_dir.join("tokenizer/tokenizer.json"))?;
    let (tcfg_json, xcfg_json) = model_configs(cfg, z_dim, vae.config().temporal_factor(), tok.get_vocab_size(true))?;
    let tcfg: WanTransformerConfig = serde_json::from_value(tcfg_json.clone())?;
    let xcfg: UMT5Config = serde_json::from_value(xcfg_json.clone())?;

    // Variables: the text encoder's and the transformer's, initialised from the seed.
    let (text_vm, tr_vm) = (VarMap::new(), VarMap::new());
    UMT5EncoderModel::new(&xcfg, VarBuilder::from_varmap(&text_vm, DType::F32, device))?;
    WanTransformer3DModel::new(&tcfg, VarBuilder::from_varmap(&tr_vm, DType::F32, device))?;
    let mut rng = Rng::new(cfg.seed);
    init(&text_vm, &mut rng, false)?;
    init(&tr_vm, &mut rng, cfg.transformer.fan_in_init)?;
    if cfg.text.informative_init {
        crate::run::init_text_path(&text_vm, &tr_vm, &mut rng)?;
    }
    if cfg.transformer.carry_init {
        crate::run::init_carry(&tr_vm, z_dim, cfg.transformer.patch, &mut rng)?;
    }
    let named: Vec<(String, Var)> =
        sorted_vars(&text_vm, "text_encoder.").into_iter().chain(sorted_vars(&tr_vm, "transformer.")).collect();
    let mut run = Run::open(cfg, named, resume)?;

    let source = Source::open(&cfg.data)?;
    let mut empty_cond: HashMap<(usize, usize, usize), Tensor> = HashMap::new();
    // The encoded batch of the current group of `reuse` steps. A group's data is a
    // function of (seed, its first step), so a resumed run rebuilds it exactly.
    let reuse = cfg.data.reuse.max(1);
    let mut group: Option<(usize, Encoded)> = None;
    for step in run.start..cfg.steps {
        let mut marks = vec![("start", Instant::now())];
        let first = step - step % reuse;
        if group.as_ref().map(|g| g.0) != Some(first) {
            group = Some((first, encode_group(cfg, &source, &vae, first, &buckets, &mut empty_cond, device)?));
            marks.push(("render+encode", Instant::now()));
        }
        let Encoded { x0, cond, mask, captions, weights } = &group.as_ref().unwrap().1;
        let mut srng = Rng::derive(cfg.seed ^ 0x57E9, step as u64);
        let (b, _, f, h, w) = x0.dims5()?;
        let captions: Vec<String> = captions
            .iter()
            .map(|c| if srng.chance(cfg.flow.text_dropout) { String::new() } else { c.clone() })
            .collect();
        let ts: Vec<f64> = (0..b).map(|_| sample_t(&mut srng, cfg.flow.shift)).collect();
        let eps = noise(&mut srng, &[b, z_dim, f, h, w], device, DType::F32)?;
        let (xt, target) = noised(x0, &eps, &ts)?;

        // Forward through models rebuilt from the variables (they keep derived weights).
        let text = UMT5EncoderModel::new(&xcfg, VarBuilder::from_varmap(&text_vm, DType::F32, device))?;
        let transformer = WanTransformer3DModel::new(&tcfg, VarBuilder::from_varmap(&tr_vm, DType::F32, device))?;
        let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
        let ctx = encode_prompts(&tokenizer, &text, &refs, cfg.text.max_tokens, device)?;
        marks.push(("text", Instant::now()));
        let input = Tensor::cat(&[&xt, mask, cond], 1)?;
        let t = Tensor::from_vec(ts.iter().map(|&t| (t * 1000.0) as f32).collect::<Vec<_>>(), b, device)?;
        let pred = transformer.forward(&input, &t, &ctx, None)?;
        let sq = (pred - target)?.sqr()?;
        let mse = sq.mean_all()?;
        let weights = match weights {
            Some(w) => Some(gate_weights(w, &ts, cfg.flow.object_weight_max_t)?),
            None => None,
        };
        let loss = match &weights {
            // Weighted mean over cells and channels: sum(w e^2) / (sum(w) C), so the scale
            // stays the plain loss's; the log reports the plain loss, comparable across runs.
            Some(w) => (sq.broadcast_mul(w)?.sum_all()? / (w.sum_all()?.to_scalar::<f32>()? as f64 * z_dim as f64))?,
            None => mse.clone(),
        };
        marks.push(("forward", Instant::now()));

        // Step.
        let (backward, update) = run.step(step, &loss, &mse, on_step)?;
        if cfg.sample_every > 0 && ((step + 1) % cfg.sample_every == 0 || step + 1 == cfg.steps) {
            // The EMA weights exported as a model folder and run as `tessera generate` runs it.
            let dir = cfg.out.join("samples").join("model");
            export(cfg, &dir, &run, &tcfg_json, &xcfg_json)?;
            crate::text::save_tokenizer(&tok, &dir.join("tokenizer"))?;
            crate::samples::transformer_sheet(&dir, &cfg.out, step + 1, cfg.data.fps, device)?;
        }
        if profiling() {
            let mut parts: Vec<String> =
                marks.windows(2).map(|w| format!("{} {:.2}s", w[1].0, (w[1].1 - w[0].1).as_secs_f64())).collect();
            parts.push(format!("backward {:.2}s, update {:.2}s", backward.as_secs_f64(), update.as_secs_f64()));
            eprintln!("step {}: {}", step + 1, parts.join(", "));
        }
    }
    export(cfg, &model_dir, &run, &tcfg_json, &xcfg_json)?;
    Ok(model_dir)
}

/// A batch ready for the transformer: clean latents, the frame mask's channels, the
/// conditioning latents, the captions (before dropout), and the loss weights of the
/// latent cells (B, 1, F, h, w) when `[flow] object_weight` is set.
struct Encoded {
    x0: Tensor,
    cond: Tensor,
    mask: Tensor,
    captions: Vec<String>,
    weights: Option<Tensor>,
}

/// Renders (or reads) the batch of step `first`, draws each sample's conditioning mask and
/// encodes the clips and their given frames.
fn encode_group(
    cfg: &TrainConfig,
    source: &Source,
    vae: &AutoencoderKLWan,
    first: usize,
    buckets: &[crate::config::Bucket],
    empty_cond: &mut HashMap<(usize, usize, usize), Tensor>,
    device: &Device,
) -> Result<Encoded> {
    let mut mrng = Rng::derive(cfg.seed ^ 0x3A5C, first as u64);
    let batch = source.batch(cfg.seed, first, cfg.batch, buckets, cfg.data.fps, cfg.data.prompt_probability, device)?;
    let x0 = vae.normalize_latents(&vae.encode(&batch.video)?)?; // (B, z, F, h, w)
    let (b, _, _, h, w) = x0.dims5()?;
    let mut conds = Vec::with_capacity(b);
    let mut masks = Vec::with_capacity(b);
    for i in 0..b {
        let kind = MaskKind::sample(&mut mrng, cfg.flow.cond_probability);
        let m = kind.frames(batch.bucket.frames, &mut mrng);
        let c = if kind == MaskKind::None {
            // Nothing given: the latents of an all-zero video, the same for every sample of
            // a bucket, encoded once.
            let key = (batch.bucket.width, batch.bucket.height, batch.bucket.frames);
            if let std::collections::hash_map::Entry::Vacant(e) = empty_cond.entry(key) {
                let zeros = batch.video.narrow(0, 0, 1)?.zeros_like()?;
                e.insert(vae.normalize_latents(&vae.encode(&zeros)?)?);
            }
            empty_cond[&key].clone()
        } else {
            let given = masked_video(&batch.video.narrow(0, i, 1)?, &m)?;
            vae.normalize_latents(&vae.encode(&given)?)?
        };
        conds.push(c);
        masks.push(mask_channels(&m, vae.config().temporal_factor(), 1, h, w, device, DType::F32)?);
    }
    let weights = if cfg.flow.object_weight > 0.0 {
        let px = crate::vae::object_weights(&batch.video, cfg.flow.object_weight)?;
        Some(latent_cell_weights(&px, vae.config().spatial_factor(), vae.config().temporal_factor(), h, w)?)
    } else {
        None
    };
    Ok(Encoded { x0, cond: Tensor::cat(&conds, 0)?, mask: Tensor::cat(&masks, 0)?, captions: batch.captions, weights })
}

/// The loss weights of a batch's cells (B, 1, F, h, w) with sample i's reset to 1 where its
/// timestep `ts[i]` is above `max_t` (`[flow] object_weight_max_t`): the object weighting
/// applies only where the noisy latents still show the objects.
pub fn gate_weights(w: &Tensor, ts: &[f64], max_t: f64) -> Result<Tensor> {
    if ts.iter().all(|&t| t <= max_t) {
        return Ok(w.clone());
    }
    let gate: Vec<f32> = ts.iter().map(|&t| if t <= max_t { 1.0 } else { 0.0 }).collect();
    let gate = Tensor::from_vec(gate, (ts.len(), 1, 1, 1, 1), w.device())?.to_dtype(w.dtype())?;
    Ok(((w - 1.0)?.broadcast_mul(&gate)? + 1.0)?)
}

/// Pools per-pixel weights (B, 1, T, H, W) to the latent grid (B, 1, F, h, w) by maximum
/// over each cell's pixels and frames: a causal VAE's latent frame 0 is pixel frame 0,
/// latent frame k >= 1 covers pixel frames tf (k - 1) + 1..=tf k (`temporal` = tf).
pub fn latent_cell_weights(px: &Tensor, spatial: usize, temporal: usize, h: usize, w: usize) -> Result<Tensor> {
    let (b, _, t, ph, pw) = px.dims5()?;
    let f = 1 + (t - 1) / temporal;
    let v: Vec<f32> = px.to_device(&Device::Cpu)?.flatten_all()?.to_vec1()?;
    let mut out = vec![0f32; b * f * h * w];
    for bi in 0..b {
        for ti in 0..t {
            let fi = if ti == 0 { 0 } else { ti.div_ceil(temporal) };
            for y in 0..ph.min(h * spatial) {
                for x in 0..pw.min(w * spatial) {
                    let p = v[((bi * t + ti) * ph + y) * pw + x];
                    let o = &mut out[((bi * f + fi) * h + y / spatial) * w + x / spatial];
                    *o = o.max(p);
                }
            }
        }
    }
    Ok(Tensor::from_vec(out, (b, 1, f, h, w), &Device::Cpu)?.to_device(px.device())?)
}

/// Writes the diffusers folder: the EMA weights of the transformer and text encoder, the
/// tokenizer, the VAE it was trained on, and a flow-matching UniPC scheduler.
/// A model folder that `export` wrote, loaded again (f32): its VAE, transformer, text
/// encoder and tokenizer, and the prompt length it was trained with (`tessera.json`).
/// For the diagnostics under examples/ that run a trained model's parts one by one.
pub struct Exported {
    pub vae: AutoencoderKLWan,
    pub transformer: WanTransformer3DModel,
    pub text_encoder: UMT5EncoderModel,
    pub tokenizer: WanTokenizer,
    pub max_tokens: usize,
}

impl Exported {
    pub fn load(dir: &Path, device: &Device) -> Result<Exported> {
        let extra: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join("tessera.json"))
                .with_context(|| format!("{} has no tessera.json", dir.display()))?,
        )?;
        Ok(Exported {
            vae: AutoencoderKLWan::load(&dir.join("vae"), DType::F32, device)?,
            transformer: WanTransformer3DModel::load(&dir.join("transformer"), DType::F32, device)?,
            text_encoder: UMT5EncoderModel::load(&dir.join("text_encoder"), DType::F32, device)?,
            tokenizer: WanTokenizer::from_file(&dir.join("tokenizer/tokenizer.json"))?,
            max_tokens: extra["max_sequence_length"].as_u64().unwrap_or(64) as usize,
        })
    }
}

fn export(cfg: &TrainConfig, dir: &Path, run: &Run, tcfg: &serde_json::Value, xcfg: &serde_json::Value) -> Result<()> {
    for (sub, prefix, config, file, config_json) in [
        ("transformer", "transformer.", tcfg, "diffusion_pytorch_model.safetensors", "config.json"),
        ("text_encoder", "text_encoder.", xcfg, "model.safetensors", "config.json"),
    ] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d)?;
        let dt = cfg.export_dtype.dtype();
        let weights = run
            .ema_weights(prefix)
            .into_iter()
            .map(|(k, w)| Ok((k, w.to_dtype(dt)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        candle_core::safetensors::save(&weights, d.join(file))?;
        std::fs::write(d.join(config_json), serde_json::to_vec_pretty(config)?)?;
    }
    let vae_dir = dir.join("vae");
    std::fs::create_dir_all(&vae_dir)?;
    for e in std::fs::read_dir(cfg.vae.as_ref().context("no VAE")?)? {
        let p = e?.path();
        if p.is_file() {
            std::fs::copy(&p, vae_dir.join(p.file_name().unwrap()))?;
        }
    }
    let sched = dir.join("scheduler");
    std::fs::create_dir_all(&sched)?;
    let s = serde_json::json!({"_class_name": "UniPCMultistepScheduler", "num_train_timesteps": 1000, "prediction_type": "flow_prediction", "use_flow_sigmas": true, "flow_shift": cfg.flow.shift, "solver_order": 2, "solver_type": "bh2", "lower_order_final": true});
    std::fs::write(sched.join("scheduler_config.json"), serde_json::to_vec_pretty(&s)?)?;
    let index = serde_json::json!({
        "_class_name": "WanImageToVideoPipeline",
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
        "scheduler": ["diffusers", "UniPCMultistepScheduler"],
        "image_encoder": [null, null],
        "image_processor": [null, null],
        "transformer_2": [null, null]
    });
    std::fs::write(dir.join("model_index.json"), serde_json::to_vec_pretty(&index)?)?;
    // What `tessera generate` needs to know beyond diffusers' layout: the size, length and
    // frame rate it was trained for, and that prompts in the world's vocabulary are
    // expanded into captions first (models trained on the world).
    let main = cfg.main_bucket()?;
    let extra = serde_json::json!({
        "fps": cfg.data.fps,
        "size": [main.width, main.height],
        "frames": main.frames,
        "steps": 20,
        "max_sequence_length": cfg.text.max_tokens,
        "expand_prompts": cfg.data.folder.is_none(),
        "buckets": cfg.data.buckets,
    });
    std::fs::write(dir.join("tessera.json"), serde_json::to_vec_pretty(&extra)?)?;
    Ok(())
}
