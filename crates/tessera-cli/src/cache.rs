//! `tessera cache-calibrate`: measures MagCache's magnitude ratios for a model (one per
//! denoising step) and prints them, or writes them into the model's `tessera.json`, where
//! `--cache magcache` reads them (docs/ARCHITECTURE.md, section 1, stage 10).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use tessera_pipeline::{ModelDefaults, Progress, WanPipeline};
use tessera_service::{GenerationRequest, Limits, Size};

use crate::generate::{model_ref, parse_device, parse_dtype, parse_size};
use crate::progress::Reporter;

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// The model (a folder or OWNER/NAME in the local Hugging Face cache) [default: the
    /// built-in model].
    #[arg(long, value_name = "DIR|OWNER/NAME")]
    model: Option<String>,
    /// Prompts to measure with (the ratios are averaged over them); repeat the flag for
    /// more [default: three of the world's scenes].
    #[arg(long = "prompt")]
    prompts: Vec<String>,
    /// Denoising steps the ratios are measured at (other step counts stretch them)
    /// [default: the model's, else 50].
    #[arg(long)]
    steps: Option<usize>,
    /// Size, WIDTHxHEIGHT [default: the model's, else 832x480].
    #[arg(long, value_parser = parse_size, value_name = "WIDTHxHEIGHT")]
    size: Option<(usize, usize)>,
    /// Frames (4k+1) [default: the model's clip length, else 81].
    #[arg(long)]
    frames: Option<usize>,
    /// Classifier-free guidance scale.
    #[arg(long, default_value_t = 5.0)]
    guidance: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the ratios into the model's tessera.json (`mag_ratios`) instead of only
    /// printing them.
    #[arg(long)]
    write: bool,
    /// Quantize the weights as they load, as `generate --quantize` does: the ratios are
    /// the model's as it will run (measure with the weights you serve).
    #[arg(long, value_parser = crate::generate::parse_quantize, value_name = "q8_0|q4_k")]
    quantize: Option<tessera_pipeline::Quantize>,
    /// The transformer's weights from a GGUF file, as `generate --gguf` (twice for a
    /// two-expert Wan 2.2 model).
    #[arg(long, value_name = "FILE")]
    gguf: Vec<PathBuf>,
    #[arg(long, default_value = "f32")]
    dtype: String,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, short = 'q')]
    quiet: bool,
}

const DEFAULT_PROMPTS: [&str; 3] = [
    "a red ball bounces on a wooden floor",
    "a blue cube slides across a checkered floor and stops",
    "two balls roll toward each other on grass and collide",
];

pub fn calibrate(args: CalibrateArgs) -> Result<()> {
    let model = model_ref(args.model.as_deref())?;
    let defaults = ModelDefaults::read(&model.dir)?;
    let prompts: Vec<String> = if args.prompts.is_empty() {
        DEFAULT_PROMPTS.iter().map(|s| s.to_string()).collect()
    } else {
        args.prompts.clone()
    };
    let dtype = parse_dtype(&args.dtype)?;
    let device = parse_device(&args.device)?;
    let pipeline = WanPipeline::open(&model.dir, &device, dtype)?;
    let mut reporter = Reporter::new(args.quiet);
    let mut sums: Vec<f64> = Vec::new();
    for (k, prompt) in prompts.iter().enumerate() {
        let req = GenerationRequest {
            prompt: prompt.clone(),
            size: args.size.map(|(width, height)| Size { width, height }),
            frames: args.frames,
            steps: args.steps,
            guidance: args.guidance,
            seed: args.seed + k as u64,
            ..Default::default()
        };
        let mut plan = tessera_service::plan(&req, &defaults, &Limits::default())?;
        plan.params.calibrate_cache = true;
        plan.params.quantize = args.quantize;
        plan.params.gguf = args.gguf.clone();
        pipeline.validate(&plan.params)?;
        reporter.message(&format!("prompt {} of {}: {}", k + 1, prompts.len(), plan.caption));
        let (cond, uncond) = pipeline.encode_text(&plan.params, &mut |ev| reporter.event(ev))?;
        let mut ratios = Vec::new();
        pipeline.denoise(&plan.params, &cond, uncond.as_ref(), &mut |ev| match ev {
            Progress::Cached { ratios: r, .. } => ratios.extend_from_slice(r),
            ev => reporter.event(ev),
        })?;
        if sums.is_empty() {
            sums = vec![0.0; ratios.len()];
        }
        if ratios.len() != sums.len() {
            bail!("internal: {} ratios for prompt {}, {} before", ratios.len(), k + 1, sums.len());
        }
        sums.iter_mut().zip(&ratios).for_each(|(s, r)| *s += r);
    }
    // Four decimals, as MagCache's published tables (the ratios vary far more than that
    // from prompt to prompt).
    let ratios: Vec<f64> = sums.iter().map(|s| (s / prompts.len() as f64 * 1e4).round() / 1e4).collect();
    reporter.done(&format!("{} steps measured over {} prompts", ratios.len(), prompts.len()));
    println!("{}", serde_json::json!({ "mag_ratios": ratios }));
    if args.write {
        let path = model.dir.join("tessera.json");
        let mut json: serde_json::Map<String, serde_json::Value> = if path.is_file() {
            serde_json::from_slice(&std::fs::read(&path)?).with_context(|| format!("reading {}", path.display()))?
        } else {
            serde_json::Map::new()
        };
        json.insert("mag_ratios".into(), serde_json::json!(ratios));
        let text = serde_json::to_string_pretty(&json)? + "\n";
        let tmp = PathBuf::from(format!("{}.tmp", path.display()));
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path)?;
        eprintln!("wrote mag_ratios into {}", path.display());
    }
    Ok(())
}
