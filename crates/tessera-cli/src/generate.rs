//! `tessera generate`: text to video (or image) with a diffusers-format Wan folder.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use tessera_media::keys::Credentials;
use tessera_pipeline::moderation::Policy;
use tessera_pipeline::{builtin_model, CacheKind, ModelDefaults, Quantize, VaeTiling, WanPipeline};
use tessera_service::{GenerationRequest, Limits, Model, Provenance, Size};

use crate::output::OutputFormat;
use crate::progress::Reporter;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The prompt (the same as --prompt).
    #[arg(value_name = "PROMPT")]
    prompt_positional: Option<String>,
    /// What the video shows.
    #[arg(long)]
    prompt: Option<String>,
    /// What the video should not show (used with guidance > 1).
    #[arg(long, default_value = "")]
    negative_prompt: String,
    /// A diffusers-format model folder (model_index.json, transformer/, vae/, text_encoder/,
    /// tokenizer/, scheduler/). Default: the built-in model, models/tessera-world (or
    /// $TESSERA_MODEL).
    /// Or a Hugging Face name, OWNER/NAME[@REVISION] (for example
    /// Wan-AI/Wan2.1-T2V-1.3B-Diffusers), found in the local Hugging Face cache
    /// ($HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub); nothing is downloaded.
    #[arg(long, value_name = "DIR|OWNER/NAME")]
    model: Option<String>,
    /// Output size, WIDTHxHEIGHT [default: the model's (tessera.json), else 832x480].
    #[arg(long, value_parser = parse_size, value_name = "WIDTHxHEIGHT")]
    size: Option<(usize, usize)>,
    /// Number of frames: 4k+1 for Wan's VAE (1 gives an image) [default: the model's
    /// clip length, else 81].
    #[arg(long, conflicts_with = "seconds")]
    pub frames: Option<usize>,
    /// Duration in seconds at the frame rate (--fps, else the model's): sets --frames to the
    /// nearest 4k+1.
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Denoising steps [default: the model's, else 50].
    #[arg(long)]
    steps: Option<usize>,
    /// Classifier-free guidance scale (1 disables guidance).
    #[arg(long, default_value_t = 5.0)]
    guidance: f64,
    /// Guidance scale for the second (low-noise) expert of two-expert models; defaults to --guidance.
    #[arg(long = "guidance-2")]
    guidance_2: Option<f64>,
    /// Text tokens fed to the encoder (the prompt is truncated or padded to this length)
    /// [default: the model's, else 512 as the reference].
    #[arg(long)]
    max_sequence_length: Option<usize>,
    /// Seed of the initial noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Frame rate of the written video [default: the model's, else 16].
    #[arg(long)]
    fps: Option<f64>,
    /// Do not expand the prompt (world models expand short prompts into detailed captions
    /// in the world's vocabulary first, as Sora does).
    #[arg(long)]
    no_expand: bool,
    /// Words outside the world's vocabulary are an error instead of a warning.
    #[arg(long, conflicts_with = "no_expand")]
    strict_prompt: bool,
    /// A safetensors file with tensor `latents` (1, C, T, H, W): the initial noise instead
    /// of seeded noise (for parity checks across implementations).
    #[arg(long, value_name = "FILE")]
    latents: Option<PathBuf>,
    /// Override the scheduler's flow shift.
    #[arg(long)]
    shift: Option<f64>,
    /// Step caching, off by default: `first-block` (the rest of the blocks are skipped
    /// while the first block's output barely changes; diffusers' FirstBlockCache) or
    /// `magcache` (skips by the model's calibrated residual magnitudes; needs `mag_ratios`
    /// in its tessera.json, see `tessera cache-calibrate`).
    #[arg(long, value_parser = parse_cache, value_name = "KIND")]
    cache: Option<CacheKind>,
    /// The cache's threshold: higher skips more [default: 0.05 first-block, 0.06 magcache,
    /// diffusers' defaults].
    #[arg(long, requires = "cache", value_name = "X")]
    cache_threshold: Option<f64>,
    /// Quantize the transformer's block weights as they load: q8_0 (8-bit blocks, about a
    /// quarter of f32's memory) or q4_k (4-bit, about an eighth) [default: as stored].
    #[arg(long, value_parser = parse_quantize, value_name = "FORMAT")]
    quantize: Option<Quantize>,
    /// The transformer's weights from a GGUF file, as the community publishes Wan (Q8_0,
    /// Q5_K, Q4_K, F16...; original or diffusers key layout), kept in their block formats;
    /// the model folder gives the config and the other components. A two-expert Wan 2.2
    /// model takes two: the high-noise `transformer`'s, then `transformer_2`'s. (A folder
    /// whose transformer/ holds one .gguf file instead of safetensors loads it without
    /// this flag.)
    #[arg(long, value_name = "FILE")]
    gguf: Vec<PathBuf>,
    /// Encode and decode with the VAE in overlapping tiles of 256 pixels (diffusers'
    /// `enable_tiling`), so that memory stays bounded at any size: `auto` tiles frames
    /// larger than 1280x720.
    #[arg(long, value_parser = parse_vae_tiling, default_value = "auto", value_name = "auto|on|off")]
    vae_tiling: VaeTiling,
    /// Output file; the extension picks the format: .mp4, .gif, .png, .safetensors.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: PathBuf,
    /// Weight and activation dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// cpu, or cuda[:N] when built with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// No progress output.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    pub task: crate::tasks::TaskArgs,
    /// Write outputs without the invisible watermark and without the signed C2PA manifest
    /// (tessera says so on stderr).
    #[arg(long)]
    pub no_provenance: bool,
    /// Put the prompt's text into the C2PA manifest (by default only its SHA-256 is).
    #[arg(long, conflicts_with = "no_provenance")]
    pub provenance_prompt: bool,
    /// The C2PA signing keys (`tessera keys init`); made there on first use when missing
    /// [default: $TESSERA_KEYS, else ~/.config/tessera/keys].
    #[arg(long, value_name = "DIR")]
    pub keys: Option<PathBuf>,
    /// Also draw a small visible "TESSERA" mark that moves across the video.
    #[arg(long)]
    pub visible_watermark: bool,
    /// A prompt policy file (TOML) instead of the default policy.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Where refused prompts are logged (JSON Lines) [default: $TESSERA_AUDIT_LOG, else
    /// ~/.local/state/tessera/audit.jsonl].
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
}

pub fn parse_size(s: &str) -> std::result::Result<(usize, usize), String> {
    let size = Size::parse(s).map_err(|e| e.message)?;
    Ok((size.width, size.height))
}

pub fn parse_quantize(s: &str) -> std::result::Result<Quantize, String> {
    Quantize::parse(s).ok_or_else(|| format!("{s:?} is not a quantization ({})", Quantize::NAMES))
}

pub fn parse_vae_tiling(s: &str) -> std::result::Result<VaeTiling, String> {
    VaeTiling::parse(s).ok_or_else(|| format!("{s:?} is not a tiling choice ({})", VaeTiling::NAMES))
}

pub fn parse_cache(s: &str) -> std::result::Result<CacheKind, String> {
    CacheKind::parse(s).ok_or_else(|| format!("{s:?} is not a cache kind ({})", CacheKind::NAMES))
}

pub fn parse_dtype(s: &str) -> Result<DType> {
    match s {
        "f32" | "float32" => Ok(DType::F32),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        "f16" | "float16" => Ok(DType::F16),
        _ => bail!("--dtype {s:?} is not one of f32, bf16, f16"),
    }
}

/// `--device`, as the pipeline parses it (the server takes the same strings).
pub fn parse_device(s: &str) -> Result<Device> {
    Ok(tessera_pipeline::defaults::parse_device(s)?)
}

/// Reads the `latents` tensor of a safetensors file.
fn read_latents(path: &Path) -> Result<Tensor> {
    let tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| anyhow!("cannot read latents file {}: {e}", path.display()))?;
    match tensors.get("latents") {
        Some(t) => Ok(t.clone()),
        None => {
            let mut names: Vec<&String> = tensors.keys().collect();
            names.sort();
            bail!(
                "latents file {} has no tensor named `latents` (it has: {})",
                path.display(),
                names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )
        }
    }
}

/// `tessera image PROMPT --size WxH -o out.png`: a one-frame generation.
pub fn run_image(mut args: GenerateArgs) -> Result<()> {
    if args.seconds.is_some() || args.frames.is_some_and(|f| f != 1) {
        bail!("`tessera image` makes one frame: drop --seconds/--frames (or use `tessera generate`)");
    }
    if args.task.any() {
        bail!("`tessera image` takes a prompt only; image-to-video, extension and the other tasks are `tessera generate` flags");
    }
    args.frames = Some(1);
    run(args)
}

/// The request the flags describe (the server builds the same type from its bodies).
fn request(args: &GenerateArgs, prompt: String) -> Result<GenerationRequest> {
    Ok(GenerationRequest {
        prompt,
        negative_prompt: args.negative_prompt.clone(),
        size: args.size.map(|(width, height)| Size { width, height }),
        frames: args.frames,
        seconds: args.seconds,
        fps: args.fps,
        steps: args.steps,
        guidance: args.guidance,
        guidance_2: args.guidance_2,
        max_sequence_length: args.max_sequence_length,
        seed: args.seed,
        shift: args.shift,
        expand: !args.no_expand,
        strict_prompt: args.strict_prompt,
        task: args.task.to_task()?,
        resize: args.task.resize(),
        provenance: Provenance {
            enabled: !args.no_provenance,
            include_prompt: args.provenance_prompt,
            visible_watermark: args.visible_watermark,
        },
        cache: args.cache,
        cache_threshold: args.cache_threshold,
    })
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let prompt = match (args.prompt_positional.clone(), args.prompt.clone()) {
        (Some(_), Some(_)) => bail!("give the prompt once: either as an argument or with --prompt"),
        (Some(p), None) | (None, Some(p)) => p,
        (None, None) => bail!("no prompt: pass it as an argument or with --prompt"),
    };
    // The content policy comes before any work.
    let policy = match &args.policy {
        Some(p) => Policy::load(p)?,
        None => Policy::default_policy(),
    };
    let req = request(&args, prompt)?;
    let log = args.audit_log.clone().or_else(default_audit_log);
    tessera_service::moderate(&req, &policy, log.as_deref(), "cli")?;
    // Everything a user can get wrong is checked before any weight is loaded.
    let format = OutputFormat::from_path(&args.output)?;
    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            bail!("output folder {} does not exist", parent.display());
        }
    }
    let dtype = parse_dtype(&args.dtype)?;
    let device = parse_device(&args.device)?;
    if dtype == DType::BF16 && device.is_cpu() {
        bail!("--dtype bf16 needs a GPU: candle has no bf16 matrix multiply on the CPU; use f32 (the default) or f16");
    }
    let model = model_ref(args.model.as_deref())?;
    let model_dir = model.dir;
    let defaults = ModelDefaults::read(&model_dir)?;
    let mut plan = tessera_service::plan(&req, &defaults, &Limits::default())?;
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    let expanded = defaults.expand_prompts && req.expand;
    if expanded && !plan.warnings.is_empty() {
        eprintln!("note: pass --no-expand to give the model the prompt as it is");
    }
    let mut reporter = Reporter::new(args.quiet);
    if expanded {
        reporter.message(&format!("prompt expanded: {}", plan.caption));
    }
    let mut pipeline = WanPipeline::open(&model_dir, &device, dtype)?;
    pipeline.set_vae_tiling(args.vae_tiling);
    plan.params.latents = args.latents.as_deref().map(read_latents).transpose()?;
    plan.params.quantize = args.quantize;
    plan.params.gguf = args.gguf.clone();
    let name = model.name;
    let model = Model { name: &name, pipeline: &pipeline };
    // The signing keys are found (or made) once the request is checked, before any work.
    let credentials = signing_keys(args.no_provenance, args.keys.as_deref())?;
    if args.no_provenance {
        eprintln!("note: --no-provenance: the output carries no watermark and no C2PA manifest");
    }
    let mut out = crate::tasks::FileOutput::new(&args.output, format);
    let mut events = crate::tasks::ReporterEvents(&mut reporter);
    tessera_service::run(&req, &plan, model, &tessera_service::Files, credentials, &mut out, &mut events)?;
    reporter.done(&format!("wrote {}", args.output.display()));
    Ok(())
}

/// `--model` (a folder or a Hugging Face name in the local cache), or the built-in model.
pub fn model_ref(spec: Option<&str>) -> Result<tessera_pipeline::defaults::ModelRef> {
    Ok(match spec {
        Some(spec) => tessera_pipeline::defaults::resolve_model(spec)?,
        None => {
            let dir = builtin_model()?;
            tessera_pipeline::defaults::ModelRef { name: tessera_pipeline::defaults::model_name(&dir), dir }
        }
    })
}

/// The C2PA credentials outputs are signed with (made on first use), or None with
/// --no-provenance.
fn signing_keys(no_provenance: bool, dir: Option<&Path>) -> Result<Option<Credentials>> {
    if no_provenance {
        return Ok(None);
    }
    Ok(Some(crate::keys::for_signing(dir)?))
}

/// $TESSERA_AUDIT_LOG, else ~/.local/state/tessera/audit.jsonl (XDG's state folder).
fn default_audit_log() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TESSERA_AUDIT_LOG") {
        return Some(PathBuf::from(p));
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("tessera/audit.jsonl"))
}
