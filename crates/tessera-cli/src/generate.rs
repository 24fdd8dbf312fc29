//! `tessera generate`: text to video (or image) with a diffusers-format Wan folder.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use tessera_pipeline::{GenerateParams, WanPipeline};

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
    /// tokenizer/, scheduler/).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Output size, WIDTHxHEIGHT.
    #[arg(long, default_value = "832x480", value_parser = parse_size, value_name = "WIDTHxHEIGHT")]
    size: (usize, usize),
    /// Number of frames: 4k+1 for Wan's VAE (1 gives an image).
    #[arg(long, default_value_t = 81)]
    frames: usize,
    /// Denoising steps.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Classifier-free guidance scale (1 disables guidance).
    #[arg(long, default_value_t = 5.0)]
    guidance: f64,
    /// Guidance scale for the second (low-noise) expert of two-expert models; defaults to --guidance.
    #[arg(long = "guidance-2")]
    guidance_2: Option<f64>,
    /// Text tokens fed to the encoder (the prompt is truncated or padded to this length).
    #[arg(long, default_value_t = 512)]
    max_sequence_length: usize,
    /// Seed of the initial noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Frame rate of the written video.
    #[arg(long, default_value_t = 16.0)]
    fps: f64,
    /// A safetensors file with tensor `latents` (1, C, T, H, W): the initial noise instead
    /// of seeded noise (for parity checks across implementations).
    #[arg(long, value_name = "FILE")]
    latents: Option<PathBuf>,
    /// Override the scheduler's flow shift.
    #[arg(long)]
    shift: Option<f64>,
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
}

pub fn parse_size(s: &str) -> std::result::Result<(usize, usize), String> {
    let err = || format!("size {s:?} is not WIDTHxHEIGHT (for example 832x480)");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(err)?;
    let w: usize = w.trim().parse().map_err(|_| err())?;
    let h: usize = h.trim().parse().map_err(|_| err())?;
    if w == 0 || h == 0 {
        return Err(err());
    }
    Ok((w, h))
}

pub fn parse_dtype(s: &str) -> Result<DType> {
    match s {
        "f32" | "float32" => Ok(DType::F32),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        "f16" | "float16" => Ok(DType::F16),
        _ => bail!("--dtype {s:?} is not one of f32, bf16, f16"),
    }
}

pub fn parse_device(s: &str) -> Result<Device> {
    if s == "cpu" {
        return Ok(Device::Cpu);
    }
    if let Some(rest) = s.strip_prefix("cuda") {
        let ordinal = match rest.strip_prefix(':') {
            Some(n) => n
                .parse()
                .map_err(|_| anyhow!("--device {s:?}: bad GPU number"))?,
            None if rest.is_empty() => 0,
            None => bail!("--device {s:?} is not cpu or cuda[:N]"),
        };
        return Device::new_cuda(ordinal)
            .map_err(|e| anyhow!("--device {s}: CUDA is not available ({e}); build with `--features cuda` on a machine with nvcc"));
    }
    bail!("--device {s:?} is not cpu or cuda[:N]")
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
                names
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let prompt = match (args.prompt_positional, args.prompt) {
        (Some(_), Some(_)) => bail!("give the prompt once: either as an argument or with --prompt"),
        (Some(p), None) | (None, Some(p)) => p,
        (None, None) => bail!("no prompt: pass it as an argument or with --prompt"),
    };
    // Everything a user can get wrong is checked before any weight is loaded.
    let format = OutputFormat::from_path(&args.output)?;
    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            bail!("output folder {} does not exist", parent.display());
        }
    }
    if !(args.fps.is_finite() && args.fps > 0.0) {
        bail!("--fps must be a positive number, got {}", args.fps);
    }
    let dtype = parse_dtype(&args.dtype)?;
    let device = parse_device(&args.device)?;
    if dtype == DType::BF16 && device.is_cpu() {
        bail!("--dtype bf16 needs a GPU: candle has no bf16 matrix multiply on the CPU; use f32 (the default) or f16");
    }
    let model_dir = match args.model {
        Some(dir) => dir,
        None => bail!("no --model given: pass a diffusers-format Wan folder (tessera does not download models)"),
    };
    let mut reporter = Reporter::new(args.quiet);
    let pipeline = WanPipeline::open(&model_dir, &device, dtype)?;
    let latents = args.latents.as_deref().map(read_latents).transpose()?;
    let (width, height) = args.size;
    let params = GenerateParams {
        prompt,
        negative_prompt: args.negative_prompt,
        width,
        height,
        frames: args.frames,
        steps: args.steps,
        guidance: args.guidance,
        guidance_2: args.guidance_2,
        max_sequence_length: args.max_sequence_length,
        seed: args.seed,
        latents,
        flow_shift: args.shift,
    };
    pipeline.validate(&params)?;
    reporter.message(&format!(
        "generating {}x{}, {} frames, {} steps with {}",
        width,
        height,
        params.frames,
        params.steps,
        model_dir.display()
    ));
    let frames = pipeline.generate(&params, &mut |ev| reporter.event(ev))?;
    crate::output::write(&args.output, format, &frames, args.fps)?;
    reporter.done(&format!("wrote {}", args.output.display()));
    Ok(())
}
