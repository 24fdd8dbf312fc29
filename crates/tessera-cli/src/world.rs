//! `tessera world ...` (render captioned clips, print prompt suites, expand prompts, report
//! what the parser understands of prompts) and `tessera eval` (score videos against a
//! suite). Wiring only: the world crate does the work.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use tessera_media::{read_video, Frame, VideoWriter, WriteOptions};
use tessera_world::eval::continuation::{score_continuation, ContinuationReport, ContinuationVideo};
use tessera_world::eval::corrupt::{corrupt, Corruption};
use tessera_world::eval::{evaluate, Scores, VideoRef};
use tessera_world::language::Understanding;
use tessera_world::report::{Report, VideoReport};
use tessera_world::scene::SceneOptions;
use tessera_world::spec::{Description, Spec};

use crate::generate::parse_size;
use crate::progress::Reporter;

#[derive(Subcommand)]
pub enum WorldCommand {
    /// Render captioned clips: DIR/000000.mp4 and DIR/000000.json (prompt, caption, spec).
    Render(RenderArgs),
    /// Print a prompt suite as JSON Lines (prompt, caption, spec), one clip per line.
    Prompts(PromptsArgs),
    /// Expand a short prompt into a detailed caption of a full scene (words outside the
    /// world's vocabulary are skipped, with a warning).
    Expand(ExpandArgs),
    /// Report what the world's parser understands of a file of prompts, one a line: each
    /// prompt's ignored words, then the share of all words understood.
    Understand(UnderstandArgs),
}

#[derive(Args)]
pub struct RenderArgs {
    /// Number of clips.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Seed of the suite: clip i of seed S is always the same clip.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Frame size, any width and height (e.g. 128x128, 256x144, 144x256).
    #[arg(long, default_value = "128x128", value_parser = parse_size)]
    size: (usize, usize),
    /// Duration of each clip in seconds (0 gives a single image).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Frames per second.
    #[arg(long, default_value_t = 12.0)]
    fps: f64,
    /// Output folder (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Probability that a clip has a cut to a second framing.
    #[arg(long, default_value_t = 0.12)]
    cuts: f64,
    /// Which clips: `any` (the suite as drawn), `in-distribution` (those that combine
    /// nothing training holds out) or `held-out` (each with a held-out colour-shape pair,
    /// size-shape pair or launch speed). Every JSON says its clip's `split`.
    #[arg(long, default_value = "any", value_parser = ["any", "in-distribution", "held-out"])]
    split: String,
    /// Also write each clip's first SECONDS to --given-out DIR (same names): what a model
    /// is given in the continuation test (`tessera eval --continuation`).
    #[arg(long, value_name = "SECONDS", requires = "given_out")]
    given: Option<f64>,
    /// Folder for the --given clips (created if missing).
    #[arg(long, value_name = "DIR", requires = "given")]
    given_out: Option<PathBuf>,
    /// No progress output.
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Args)]
pub struct PromptsArgs {
    #[arg(long, default_value_t = 10)]
    count: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Duration of each clip in seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Which clips: `any`, `in-distribution` or `held-out` (as `world render`).
    #[arg(long, default_value = "any", value_parser = ["any", "in-distribution", "held-out"])]
    split: String,
}

#[derive(Args)]
pub struct ExpandArgs {
    /// The prompt, in the world's vocabulary (e.g. "red ball bouncing").
    prompt: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Duration in seconds, unless the prompt says.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Print {prompt, caption, spec} as JSON instead of the caption alone.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct UnderstandArgs {
    /// The prompts, one a line (blank lines and lines starting with # are skipped); `-`
    /// reads standard input.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Fail unless at least this percentage of the words is understood.
    #[arg(long, value_name = "PERCENT")]
    min: Option<f64>,
}

fn check_seconds(seconds: f64) -> Result<()> {
    if !(seconds.is_finite() && (0.0..=3600.0).contains(&seconds)) {
        bail!("--seconds {seconds} is not between 0 and 3600");
    }
    Ok(())
}

pub fn run(cmd: WorldCommand) -> Result<()> {
    match cmd {
        WorldCommand::Render(a) => render(a),
        WorldCommand::Prompts(a) => prompts(a),
        WorldCommand::Expand(a) => expand(a),
        WorldCommand::Understand(a) => understand(a),
    }
}

fn line(prompt: &str, caption: &str, spec: &Spec) -> serde_json::Value {
    let held: Vec<&str> = tessera_world::holdout::held_out(spec).iter().map(|h| h.word()).collect();
    serde_json::json!({
        "prompt": prompt, "caption": caption, "spec": spec,
        "split": tessera_world::holdout::split_of(spec), "held_out": held,
    })
}

/// Clip `i` of a suite's split: `any` draws as training's sampler does; `in-distribution`
/// skips ahead past clips that combine a held-out pair (clip i is the i-th such clip);
/// `held-out` draws from the held-out sampler.
struct Sampler {
    split: String,
    next: u64,
}

impl Sampler {
    fn new(split: &str) -> Self {
        Sampler { split: split.to_string(), next: 0 }
    }

    fn clip(&mut self, seed: u64, i: u64, opts: &SceneOptions) -> tessera_world::Clip {
        match self.split.as_str() {
            "held-out" => tessera_world::sample_held_out_clip(seed, i, opts),
            "in-distribution" => loop {
                let clip = tessera_world::sample_clip(seed, self.next, opts);
                self.next += 1;
                if tessera_world::holdout::held_out(&clip.scene.spec).is_empty() {
                    break clip;
                }
            },
            _ => tessera_world::sample_clip(seed, i, opts),
        }
    }
}

fn render(a: RenderArgs) -> Result<()> {
    check_seconds(a.seconds)?;
    if !(a.fps.is_finite() && a.fps > 0.0 && a.fps <= 240.0) {
        bail!("--fps {} is not between 0 and 240", a.fps);
    }
    if !(0.0..=1.0).contains(&a.cuts) {
        bail!("--cuts {} is not a probability", a.cuts);
    }
    let (w, h) = a.size;
    // H.264 with 4:2:0 chroma needs even sizes.
    if w % 2 != 0 || h % 2 != 0 {
        bail!("--size {w}x{h}: MP4 (H.264, yuv420p) needs an even width and height");
    }
    if let Some(g) = a.given {
        if !(g.is_finite() && g > 0.0 && g < a.seconds) {
            bail!("--given {g} must be more than 0 and less than --seconds {}", a.seconds);
        }
        let dir = a.given_out.as_ref().expect("clap requires it");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let opts = SceneOptions { seconds: a.seconds, cut_probability: a.cuts, hold_out: false };
    let mut progress = Reporter::new(a.quiet);
    let mut frames_total = 0;
    let mut sampler = Sampler::new(&a.split);
    for i in 0..a.count {
        let clip = sampler.clip(a.seed, i, &opts);
        let mut r = clip.scene.renderer(w, h, a.fps);
        let stem = format!("{i:06}");
        // Frame by frame into the encoder: a minute of large frames stays small in memory.
        let mut video = VideoWriter::create(&a.out.join(format!("{stem}.mp4")), a.fps, &WriteOptions::default())?;
        let n = r.frame_count();
        let mut given = match (a.given, &a.given_out) {
            (Some(g), Some(dir)) => Some((
                VideoWriter::create(&dir.join(format!("{stem}.mp4")), a.fps, &WriteOptions::default())?,
                ((g * a.fps).round() as usize).max(1),
            )),
            _ => None,
        };
        for k in 0..n {
            let frame = r.frame(k);
            if let Some((g, until)) = &mut given {
                if k < *until {
                    g.push(frame.clone())?;
                }
            }
            video.push(frame)?;
            if a.count == 1 && n >= 240 && (k + 1) % 24 == 0 {
                progress.count("render", "frame", k + 1, n);
            }
        }
        video.finish()?;
        if let Some((g, _)) = given {
            g.finish()?;
        }
        frames_total += n;
        let json = serde_json::to_vec_pretty(&line(&clip.prompt, &clip.caption, &clip.scene.spec))?;
        tessera_media::write_atomic(&a.out.join(format!("{stem}.json")), &json)?;
        progress.count("render", "clip", i as usize + 1, a.count as usize);
    }
    progress.done(&format!("{} clips ({frames_total} frames) in {}", a.count, a.out.display()));
    Ok(())
}

fn prompts(a: PromptsArgs) -> Result<()> {
    check_seconds(a.seconds)?;
    let opts = SceneOptions { seconds: a.seconds, ..Default::default() };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut sampler = Sampler::new(&a.split);
    for i in 0..a.count {
        let clip = sampler.clip(a.seed, i, &opts);
        writeln!(out, "{}", line(&clip.prompt, &clip.caption, &clip.scene.spec))?;
    }
    Ok(())
}

/// Warns on stderr of what the lenient reading of a prompt left out: its words outside the
/// world's vocabulary (`hint` follows them), and a missing object.
pub fn warn_understanding(u: &Understanding, hint: &str) {
    let ignored = u.ignored_words();
    if !ignored.is_empty() {
        eprintln!("warning: ignored words outside the world's vocabulary: {}{hint}", ignored.join(", "));
    }
    if u.description.objects.is_empty() {
        eprintln!(
            "warning: the prompt names no object (a ball, box or triangle): the scene gets one drawn from the seed"
        );
    }
}

fn expand(a: ExpandArgs) -> Result<()> {
    check_seconds(a.seconds)?;
    let opts = SceneOptions { seconds: a.seconds, ..Default::default() };
    let (clip, understanding) = tessera_world::expand_lenient(&a.prompt, a.seed, &opts);
    warn_understanding(&understanding, "");
    if a.json {
        println!("{}", line(&clip.prompt, &clip.caption, &clip.scene.spec));
    } else {
        println!("{}", clip.caption);
    }
    Ok(())
}

fn understand(a: UnderstandArgs) -> Result<()> {
    if let Some(m) = a.min {
        if !(m.is_finite() && (0.0..=100.0).contains(&m)) {
            bail!("--min {m} is not a percentage between 0 and 100");
        }
    }
    let text = if a.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read the prompts from standard input")?
    } else {
        std::fs::read_to_string(&a.file).with_context(|| format!("cannot read prompts {}", a.file.display()))?
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let (mut prompts, mut partly, mut known, mut total) = (0, 0, 0, 0);
    for (n, line) in text.lines().enumerate() {
        let prompt = line.trim();
        if prompt.is_empty() || prompt.starts_with('#') {
            continue;
        }
        let u = tessera_world::language::understand(prompt);
        prompts += 1;
        known += u.understood.len();
        total += u.understood.len() + u.ignored.len();
        let mut notes = Vec::new();
        if !u.ignored.is_empty() {
            partly += 1;
            notes.push(format!("ignored: {}", u.ignored_words().join(", ")));
        }
        if u.description.objects.is_empty() {
            notes.push("no object".to_string());
        }
        let notes = if notes.is_empty() { String::new() } else { format!("  [{}]", notes.join("; ")) };
        writeln!(out, "{:>4} {:>5.1}%  {prompt}{notes}", n + 1, 100.0 * u.share_understood())?;
    }
    let share = if total == 0 { 100.0 } else { 100.0 * known as f64 / total as f64 };
    writeln!(
        out,
        "{known} of {total} words understood ({share:.1}%) in {prompts} prompts; {partly} with ignored words"
    )?;
    if let Some(m) = a.min {
        if share < m {
            bail!("{share:.1}% of the words understood, less than --min {m}%");
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct EvalArgs {
    /// The prompt suite (JSON Lines with `prompt` and optionally `spec`).
    #[arg(long, value_name = "SUITE.jsonl")]
    suite: PathBuf,
    /// The videos: mp4, gif, or folders of PNG frames, scored in name order.
    #[arg(long, value_name = "DIR")]
    videos: PathBuf,
    /// Where to write the JSON report.
    #[arg(long, value_name = "REPORT.json")]
    out: PathBuf,
    /// Also write an HTML page with thumbnails and plots into this folder.
    #[arg(long, value_name = "DIR")]
    html: Option<PathBuf>,
    /// Frame rate of PNG-folder videos (files carry their own).
    #[arg(long, default_value_t = 12.0)]
    fps: f64,
    /// The evaluator's calibration: score corrupted copies of the videos (ground-truth
    /// renders) instead of the videos: flood, blank, static, shuffle, reverse, hue,
    /// fragments, or `all` (the videos as they are, then each corruption; the report holds
    /// one report per kind). blank and fragments need suite lines with a `spec`.
    #[arg(long, value_name = "KIND")]
    corrupt: Option<String>,
    /// With --corrupt KIND: also write the corrupted videos (mp4) into this folder.
    #[arg(long, value_name = "DIR", requires = "corrupt")]
    write_corrupted: Option<PathBuf>,
    /// The world-model test: each video's first --given seconds were given to a model and
    /// the rest generated; it is compared with the simulator's continuation of the suite
    /// line's `spec` (masks, positions, velocities, events), in-distribution and held-out
    /// clips reported apart.
    #[arg(long, conflicts_with = "corrupt")]
    continuation: bool,
    /// With --continuation: seconds at the start of each video that were given.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    given: f64,
    /// Score each video's round trip through this VAE (decode(encode(video)), the
    /// posterior mean, no transformer) instead of the video: the ceiling a VAE sets on a
    /// model (issue 28's VAE gate; `tools/eval_vae.sh`). A model folder or a VAE folder
    /// (config.json and weights). Videos are cut to the VAE's frame form (tf k + 1).
    #[arg(long, value_name = "DIR", conflicts_with = "corrupt")]
    vae: Option<PathBuf>,
    /// With --vae: also write each round trip (mp4, the video's name) into this folder, to
    /// look at what the VAE draws.
    #[arg(long, value_name = "DIR", requires = "vae")]
    write_round_trips: Option<PathBuf>,
    /// No progress output.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// The VAE of `--vae`: `dir/vae` when `dir` is a model folder, else `dir` itself.
fn load_vae(dir: &Path) -> Result<tessera_models::wan::vae::AutoencoderKLWan> {
    let vae_dir = if dir.join("vae").join("config.json").is_file() { dir.join("vae") } else { dir.to_path_buf() };
    tessera_models::wan::vae::AutoencoderKLWan::load(&vae_dir, candle_core::DType::F32, &candle_core::Device::Cpu)
        .with_context(|| format!("cannot load a VAE from {}", vae_dir.display()))
}

/// decode(encode(frames)) with the posterior mean, the frames cut to tf k + 1.
fn round_trip(vae: &tessera_models::wan::vae::AutoencoderKLWan, frames: &[Frame]) -> Result<Vec<Frame>> {
    let tf = vae.temporal_factor();
    let keep = (frames.len().max(1) - 1) / tf * tf + 1;
    let video = tessera_pipeline::tasks::video_tensor(&frames[..keep], &candle_core::Device::Cpu)?;
    let out = vae.decode(&vae.encode(&video)?)?; // (1, 3, T, H, W) in [-1, 1]
    let (_, _, t, h, w) = out.dims5()?;
    let hwc: Vec<f32> =
        ((out.squeeze(0)?.permute((1, 2, 3, 0))? + 1.0)? * 0.5)?.clamp(0f32, 1f32)?.flatten_all()?.to_vec1()?;
    Ok(tessera_media::frames_from_f32(&hwc, t, h, w)?)
}

/// A line of the suite: the prompt and, when the clip came from the world, its spec.
struct SuiteLine {
    prompt: String,
    desc: Description,
    spec: Option<Spec>,
    /// "in_distribution" or "held_out": the line's own, else from its spec; and which
    /// held-out properties it has.
    split: Option<String>,
    held_out: Vec<String>,
}

fn read_suite(path: &Path) -> Result<Vec<SuiteLine>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read suite {}", path.display()))?;
    let mut out = Vec::new();
    for (n, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), n + 1);
        let v: serde_json::Value = serde_json::from_str(l).with_context(|| format!("{} is not JSON", at()))?;
        let prompt = v.get("prompt").and_then(|p| p.as_str()).map(str::to_string);
        let spec = match v.get("spec") {
            Some(s) if !s.is_null() => {
                Some(serde_json::from_value::<Spec>(s.clone()).with_context(|| format!("{}: bad spec", at()))?)
            }
            _ => None,
        };
        let (prompt, desc) = match (prompt, &spec) {
            (p, Some(s)) => (p.unwrap_or_default(), s.describe()),
            (Some(p), None) => {
                // Hand-written prompts are read leniently, as `tessera generate` reads them:
                // a word outside the vocabulary is reported and skipped. Where the strict
                // parse succeeds the description, and so every score, is the same.
                let u = tessera_world::language::understand(&p);
                if u.description.objects.is_empty() {
                    bail!("{}: the prompt {p:?} names no object (a ball, box or triangle) to score", at());
                }
                let ignored = u.ignored_words();
                if !ignored.is_empty() {
                    eprintln!(
                        "warning: {}: ignored words outside the world's vocabulary: {}",
                        at(),
                        ignored.join(", ")
                    );
                }
                (p, u.description)
            }
            (None, None) => bail!("{} has neither `prompt` nor `spec`", at()),
        };
        let split = v
            .get("split")
            .and_then(|s| s.as_str())
            .map(str::to_string)
            .or_else(|| spec.as_ref().map(|s| tessera_world::holdout::split_of(s).to_string()));
        let held_out = match v.get("held_out").and_then(|h| h.as_array()) {
            Some(h) => h.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
            None => spec
                .as_ref()
                .map(|s| tessera_world::holdout::held_out(s).iter().map(|h| h.word().to_string()).collect())
                .unwrap_or_default(),
        };
        out.push(SuiteLine { prompt, desc, spec, split, held_out });
    }
    Ok(out)
}

/// The videos of a folder in name order: mp4 and gif files, and sub-folders of PNG frames.
fn list_videos(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read the videos folder {}", dir.display()))?;
    let mut out = Vec::new();
    for e in entries {
        let p = e?.path();
        let ext = p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
        if p.is_dir() || matches!(ext.as_deref(), Some("mp4" | "gif")) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn load_video(path: &Path, fps: f64) -> Result<(Vec<Frame>, f64)> {
    if path.is_dir() {
        let mut pngs: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("png")))
            .collect();
        pngs.sort();
        if pngs.is_empty() {
            bail!("{} holds no PNG frames", path.display());
        }
        let mut frames = Vec::new();
        for p in &pngs {
            let (f, _) = read_video(p)?;
            frames.extend(f);
        }
        if frames.iter().any(|f| f.width != frames[0].width || f.height != frames[0].height) {
            bail!("the PNG frames in {} differ in size", path.display());
        }
        return Ok((frames, fps));
    }
    let (frames, file_fps) = read_video(path)?;
    if frames.is_empty() {
        bail!("{} has no frames", path.display());
    }
    Ok((frames, if file_fps > 0.0 { file_fps } else { fps }))
}

pub fn eval(a: EvalArgs) -> Result<()> {
    if !(a.fps.is_finite() && a.fps > 0.0) {
        bail!("--fps {} is not a positive number", a.fps);
    }
    let kinds: Vec<Option<Corruption>> = match a.corrupt.as_deref() {
        None => vec![None],
        Some("all") => std::iter::once(None).chain(Corruption::ALL.into_iter().map(Some)).collect(),
        Some(k) => match Corruption::parse(k) {
            Some(c) => vec![Some(c)],
            None => bail!(
                "--corrupt {k:?} is not one of all, {}",
                Corruption::ALL.iter().map(|c| c.word()).collect::<Vec<_>>().join(", ")
            ),
        },
    };
    if a.continuation && !(a.given.is_finite() && a.given > 0.0) {
        bail!("--given {} is not a positive number of seconds", a.given);
    }
    let suite = read_suite(&a.suite)?;
    let videos = list_videos(&a.videos)?;
    if suite.len() != videos.len() {
        bail!(
            "the suite {} has {} prompts but {} holds {} videos (mp4, gif or PNG folders); they are paired in order",
            a.suite.display(),
            suite.len(),
            a.videos.display(),
            videos.len()
        );
    }
    let needs_spec = a.continuation || kinds.iter().flatten().any(|k| k.needs_spec());
    for (n, line) in suite.iter().enumerate() {
        if needs_spec && line.spec.is_none() {
            bail!(
                "{} line {} has no `spec`: {} needs each clip's spec (render the suite with `tessera world render`)",
                a.suite.display(),
                n + 1,
                if a.continuation { "--continuation" } else { "this corruption" }
            );
        }
    }
    for dir in [&a.write_corrupted, &a.write_round_trips].into_iter().flatten() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let vae = a.vae.as_deref().map(load_vae).transpose()?;
    let mut progress = Reporter::new(a.quiet);
    let mut reports: Vec<Vec<VideoReport>> = vec![Vec::new(); kinds.len()];
    let mut continuations = Vec::new();
    let mut thumbs = Vec::new();
    for (i, (line, path)) in suite.iter().zip(&videos).enumerate() {
        let (frames, fps) = load_video(path, a.fps).with_context(|| format!("cannot read video {}", path.display()))?;
        let frames = match &vae {
            Some(v) => round_trip(v, &frames).with_context(|| format!("cannot round-trip {}", path.display()))?,
            None => frames,
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let stem = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Some(dir) = &a.write_round_trips {
            tessera_media::write_video(&dir.join(format!("{stem}.mp4")), &frames, fps, &WriteOptions::default())?;
        }
        if a.continuation {
            let spec = line.spec.as_ref().expect("checked above");
            let c = score_continuation(&VideoRef::of(&frames, fps), spec, a.given);
            continuations.push(ContinuationVideo {
                file: name,
                prompt: line.prompt.clone(),
                split: line.split.clone().unwrap_or_else(|| "in_distribution".into()),
                held_out: line.held_out.clone(),
                continuation: c,
            });
            progress.count("eval", "video", i + 1, suite.len());
            continue;
        }
        for (k, kind) in kinds.iter().enumerate() {
            let corrupted;
            let frames = match kind {
                None => &frames,
                Some(c) => {
                    corrupted = corrupt(*c, &frames, line.spec.as_ref(), fps, i as u64)
                        .with_context(|| format!("cannot corrupt {}", path.display()))?;
                    &corrupted
                }
            };
            if let (Some(dir), Some(c)) = (&a.write_corrupted, kind) {
                let out = dir.join(format!("{stem}.{}.mp4", c.word()));
                tessera_media::write_video(&out, frames, fps, &WriteOptions::default())?;
            }
            let e = evaluate(&VideoRef::of(frames, fps), &line.desc, line.spec.as_ref());
            reports[k].push(VideoReport::new(name.clone(), line.prompt.clone(), e.scores, e.checks));
            if a.html.is_some() && k == 0 {
                thumbs.push(tessera_world::report::thumbnail_frames(frames));
            }
        }
        progress.count("eval", "video", i + 1, suite.len());
    }
    if a.continuation {
        let report = ContinuationReport::new(continuations);
        tessera_media::write_atomic(&a.out, &serde_json::to_vec_pretty(&report)?)?;
        print!("{}", report.summary());
        progress.done(&format!("report in {}", a.out.display()));
        return Ok(());
    }
    let reports: Vec<Report> = reports.into_iter().map(Report::new).collect();
    let json = if a.corrupt.as_deref() == Some("all") {
        let mut map = serde_json::Map::new();
        for (kind, r) in kinds.iter().zip(&reports) {
            map.insert(kind.map_or("as_given", |c| c.word()).to_string(), serde_json::to_value(r)?);
        }
        serde_json::to_vec_pretty(&map)?
    } else {
        serde_json::to_vec_pretty(&reports[0])?
    };
    tessera_media::write_atomic(&a.out, &json)?;
    if let Some(dir) = &a.html {
        reports[0]
            .write_html(dir, &thumbs)
            .with_context(|| format!("cannot write the HTML report in {}", dir.display()))?;
    }
    if kinds.len() > 1 {
        // The calibration table: one row per kind, the means of every dimension.
        print!("{:<12}", "video");
        for n in Scores::NAMES {
            print!(" {n:>11}");
        }
        println!();
        for (kind, r) in kinds.iter().zip(&reports) {
            print!("{:<12}", kind.map_or("as given", |c| c.word()));
            for v in r.mean.values() {
                print!(" {v:>11.3}");
            }
            println!();
        }
    } else {
        print!("{}", reports[0].summary());
    }
    progress.done(&format!("report in {}", a.out.display()));
    Ok(())
}
