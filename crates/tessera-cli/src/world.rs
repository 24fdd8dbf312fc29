//! `tessera world ...` (render captioned clips, print prompt suites, expand prompts) and
//! `tessera eval` (score videos against a suite). Wiring only: the world crate does the work.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use tessera_media::{read_video, Frame, VideoWriter, WriteOptions};
use tessera_world::eval::{evaluate, VideoRef};
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
    /// Expand a short prompt into a detailed caption of a full scene.
    Expand(ExpandArgs),
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
    }
}

fn line(prompt: &str, caption: &str, spec: &Spec) -> serde_json::Value {
    serde_json::json!({ "prompt": prompt, "caption": caption, "spec": spec })
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
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let opts = SceneOptions { seconds: a.seconds, cut_probability: a.cuts };
    let mut progress = Reporter::new(a.quiet);
    let mut frames_total = 0;
    for i in 0..a.count {
        let clip = tessera_world::sample_clip(a.seed, i, &opts);
        let mut r = clip.scene.renderer(w, h, a.fps);
        let stem = format!("{i:06}");
        // Frame by frame into the encoder: a minute of large frames stays small in memory.
        let mut video = VideoWriter::create(&a.out.join(format!("{stem}.mp4")), a.fps, &WriteOptions::default())?;
        let n = r.frame_count();
        for k in 0..n {
            video.push(r.frame(k))?;
            if a.count == 1 && n >= 240 && (k + 1) % 24 == 0 {
                progress.count("render", "frame", k + 1, n);
            }
        }
        video.finish()?;
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
    for i in 0..a.count {
        let clip = tessera_world::sample_clip(a.seed, i, &opts);
        writeln!(out, "{}", line(&clip.prompt, &clip.caption, &clip.scene.spec))?;
    }
    Ok(())
}

fn expand(a: ExpandArgs) -> Result<()> {
    check_seconds(a.seconds)?;
    let opts = SceneOptions { seconds: a.seconds, ..Default::default() };
    let clip =
        tessera_world::expand(&a.prompt, a.seed, &opts).with_context(|| format!("cannot expand {:?}", a.prompt))?;
    if a.json {
        println!("{}", line(&clip.prompt, &clip.caption, &clip.scene.spec));
    } else {
        println!("{}", clip.caption);
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
    /// No progress output.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// A line of the suite: the prompt and, when the clip came from the world, its spec.
struct SuiteLine {
    prompt: String,
    desc: Description,
    spec: Option<Spec>,
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
                let d = tessera_world::language::parse(&p)
                    .with_context(|| format!("{}: cannot parse the prompt {p:?}", at()))?;
                (p, d)
            }
            (None, None) => bail!("{} has neither `prompt` nor `spec`", at()),
        };
        out.push(SuiteLine { prompt, desc, spec });
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
    let mut progress = Reporter::new(a.quiet);
    let mut reports = Vec::new();
    let mut thumbs = Vec::new();
    for (i, (line, path)) in suite.iter().zip(&videos).enumerate() {
        let (frames, fps) = load_video(path, a.fps).with_context(|| format!("cannot read video {}", path.display()))?;
        let video = VideoRef {
            width: frames[0].width,
            height: frames[0].height,
            frames: frames.iter().map(|f| f.data.as_slice()).collect(),
            fps,
        };
        let e = evaluate(&video, &line.desc, line.spec.as_ref());
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        reports.push(VideoReport::new(name, line.prompt.clone(), e.scores, e.checks));
        if a.html.is_some() {
            thumbs.push(tessera_world::report::thumbnail_frames(&frames));
        }
        progress.count("eval", "video", i + 1, suite.len());
    }
    let report = Report::new(reports);
    let json = serde_json::to_vec_pretty(&report)?;
    tessera_media::write_atomic(&a.out, &json)?;
    if let Some(dir) = &a.html {
        report
            .write_html(dir, &thumbs)
            .with_context(|| format!("cannot write the HTML report in {}", dir.display()))?;
    }
    print!("{}", report.summary());
    progress.done(&format!("report in {}", a.out.display()));
    Ok(())
}
