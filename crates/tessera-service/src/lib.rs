//! The generation service: the one sequence that turns a [`GenerationRequest`] into a
//! signed video, for `tessera generate` and for the server's workers alike
//! (docs/ARCHITECTURE.md, section 1):
//!
//! 1. [`moderate`]: the content policy, with refusals written to the audit log;
//! 2. [`plan`]: the request checked ([`GenerationRequest::validate`]), the model's
//!    defaults filled in, the prompt expanded into the world's caption (words outside
//!    the vocabulary reported as warnings), all before any weight is loaded;
//! 3. [`run`]: the inputs read and fitted, the task chosen, the windowed session run,
//!    every frame watermarked and streamed to an [`Output`], which signs the file with
//!    the C2PA claim made here.
//!
//! The front ends differ only in where inputs come from ([`Media`]: files, or the
//! server's storage), where frames go ([`Output`]: a file, or an MP4 plus previews in
//! storage) and how progress is shown ([`Events`]).

pub mod request;

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use candle_core::Tensor;
use tessera_media::keys::Credentials;
use tessera_media::marks::Marks;
use tessera_media::provenance::{Claim, Signing};
use tessera_media::{Fit, Frame, WriteOptions};
use tessera_pipeline::moderation::{Policy, Refusal};
use tessera_pipeline::tasks::Session;
use tessera_pipeline::{CacheKind, GenerateParams, ModelDefaults, Progress, StepCache, WanPipeline};

pub use request::{
    Direction, GenerationRequest, Invalid, Keyframe, Limits, Provenance, Resize, Size, Task, DEFAULT_STRENGTH,
};

/// Where a request's input references lead: files on the CLI, storage keys on the server.
pub trait Media {
    /// The frames of an image or video and its frame rate (0 for a still image).
    fn read(&self, reference: &str) -> Result<(Vec<Frame>, f64)>;
}

/// Files on this machine, the reference being the path.
pub struct Files;

impl Media for Files {
    fn read(&self, reference: &str) -> Result<(Vec<Frame>, f64)> {
        tessera_media::read_video(Path::new(reference)).map_err(|e| anyhow!("{e}"))
    }
}

/// Where the finished frames go, in order.
pub trait Output {
    /// Before the first frame: about how many frames will come, at what rate, and how the
    /// file is to be signed.
    fn begin(&mut self, frames: usize, fps: f64, opts: &WriteOptions) -> Result<()>;
    /// A finished frame, already marked.
    fn frame(&mut self, frame: Frame) -> Result<()>;
    /// Whether the output is a lossless still (the watermark then takes its still form).
    fn still(&self) -> bool {
        false
    }
    /// Whether the output takes frames unmarked and, for a one-window text-to-video, the
    /// decoder's frames before quantisation ([`Output::tensor`]): parity outputs.
    fn raw(&self) -> bool {
        false
    }
    /// The decoder's frames, (T, H, W, 3) f32 in [0, 1] (only when [`Output::raw`]).
    fn tensor(&mut self, frames: &Tensor) -> Result<()> {
        let _ = frames;
        bail!("internal: this output takes frames, not tensors")
    }
    /// After the last frame.
    fn finish(&mut self) -> Result<()>;
}

/// What the service reports while it works.
pub trait Events {
    /// A line for the user: the expanded prompt, the watermark id, what is generated.
    fn message(&mut self, text: &str);
    /// Something the user should know about their request (an ignored word); the CLI
    /// prints it, the API lists it in the video's `warnings`.
    fn warning(&mut self, text: &str);
    /// The pipeline's progress.
    fn progress(&mut self, p: Progress);
}

/// A refused prompt: the policy's message (and the category), logged to the audit log.
#[derive(Debug)]
pub struct Refused(pub Refusal);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Refused {}

/// The content policy over the prompt and the negative prompt, before any work. A refusal
/// is appended to `audit_log` (JSON Lines) with `who` asked.
pub fn moderate(req: &GenerationRequest, policy: &Policy, audit_log: Option<&Path>, who: &str) -> Result<(), Refused> {
    for text in [&req.prompt, &req.negative_prompt] {
        if let Some(refusal) = policy.check(text) {
            if let Some(log) = audit_log {
                if let Err(e) = tessera_pipeline::moderation::audit(log, who, policy, text, &refusal) {
                    eprintln!("warning: {e}");
                }
            }
            return Err(Refused(refusal));
        }
    }
    Ok(())
}

/// A request with the model's defaults filled in and its prompt understood: everything
/// known before any weight is loaded.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What the model is given: the world's caption for world models, else the prompt.
    pub caption: String,
    /// The prompt's words the world does not know, and other notes for the user.
    pub warnings: Vec<String>,
    pub width: usize,
    pub height: usize,
    pub fps: f64,
    /// Text and image tasks: the video's frames; extension and connection: the
    /// generated part; edits and in-betweening: unused (the input's length decides).
    pub frames: usize,
    /// Frames a generation window has (the model's clip length).
    pub window: usize,
    /// What every window shares (prompt, size, steps, guidance, seed); `frames` is the
    /// window. `latents` may be set by a caller for parity checks.
    pub params: GenerateParams,
    /// The task's name in the C2PA claim.
    pub task: &'static str,
}

/// Fills in the model's defaults and expands the prompt. Errors are the request's.
pub fn plan(req: &GenerationRequest, defaults: &ModelDefaults, limits: &Limits) -> Result<Plan, Invalid> {
    req.validate(limits)?;
    let fps = req.fps.or(defaults.fps).unwrap_or(16.0);
    let size = req.size.map(|s| (s.width, s.height)).or(defaults.size).unwrap_or((832, 480));
    if let Some(max) = limits.max_pixels {
        if size.0 * size.1 > max {
            return Err(Invalid::new(
                "size",
                format!("{}x{} is larger than this server allows ({max} pixels)", size.0, size.1),
            ));
        }
    }
    // The whole video (text and image tasks), 4k + 1 frames from a duration.
    let whole = match (req.frames, req.seconds) {
        (Some(f), _) => f,
        (None, Some(s)) => tessera_pipeline::frames_for_seconds(s, fps),
        (None, None) => defaults.frames.unwrap_or(81),
    };
    // Extension and connection: the generated part, any count.
    let frames = if req.task.adds_frames() {
        match (req.seconds, req.frames) {
            (Some(s), _) => ((s * fps).round() as usize).max(1),
            (None, Some(f)) => f,
            (None, None) => unreachable!("validate() asks for seconds or frames"),
        }
    } else {
        whole
    };
    let window = defaults.frames.unwrap_or(whole);
    if req.cache == Some(CacheKind::MagCache) && defaults.mag_ratios.as_ref().is_none_or(|r| r.is_empty()) {
        return Err(Invalid::new(
            "cache",
            "`cache` magcache needs the model's magnitude ratios and this model has none (`mag_ratios` in its tessera.json, measured by `tessera cache-calibrate`); use first-block",
        ));
    }
    let mut warnings = Vec::new();
    let caption = if defaults.expand_prompts && req.expand {
        let seconds = frames.saturating_sub(1) as f64 / fps;
        let (caption, w) = expand(&req.prompt, req.seed, seconds, req.strict_prompt, req.task.has_given_frames())?;
        warnings = w;
        caption
    } else {
        req.prompt.clone()
    };
    let params = GenerateParams {
        prompt: caption.clone(),
        negative_prompt: req.negative_prompt.clone(),
        width: size.0,
        height: size.1,
        frames: whole,
        steps: req.steps.or(defaults.steps).unwrap_or(50),
        guidance: req.guidance,
        guidance_2: req.guidance_2,
        max_sequence_length: req.max_sequence_length.or(defaults.max_sequence_length).unwrap_or(512),
        seed: req.seed,
        latents: None,
        flow_shift: req.shift,
        given: None,
        edit: None,
        cache: req.cache.map(|kind| StepCache { kind, threshold: req.cache_threshold }),
        calibrate_cache: false,
        quantize: None,
        gguf: Vec::new(),
    };
    Ok(Plan {
        caption,
        warnings,
        width: size.0,
        height: size.1,
        fps,
        frames,
        window,
        params,
        task: req.task.name(whole),
    })
}

/// A prompt in the world's terms: the caption a world model was trained on, and the
/// warnings to show. Sora's expansion never refuses, and neither does this (unless
/// `strict`): words outside the world's vocabulary are left out and reported; a prompt
/// that names no object gets one drawn from the seed, except where frames are given
/// (extension, connection, edits...): the scene they show goes on, captioned by the
/// prompt as given.
pub fn expand(
    prompt: &str,
    seed: u64,
    seconds: f64,
    strict: bool,
    given_frames: bool,
) -> Result<(String, Vec<String>), Invalid> {
    let u = tessera_world::language::understand(prompt);
    let mut warnings = Vec::new();
    let ignored = u.ignored_words();
    if !ignored.is_empty() {
        if strict {
            return Err(Invalid::new(
                "prompt",
                format!("words outside the world's vocabulary: {} (strict_prompt is set)", ignored.join(", ")),
            ));
        }
        warnings.push(format!("ignored words outside the world's vocabulary: {}", ignored.join(", ")));
    }
    if u.description.objects.is_empty() {
        if given_frames {
            warnings
                .push("the prompt names no object: the given frames' scene goes on, with the prompt as given".into());
            return Ok((prompt.to_string(), warnings));
        }
        warnings.push(
            "the prompt names no object (a ball, box or triangle): the scene gets one drawn from the seed".into(),
        );
    }
    let opts = tessera_world::scene::SceneOptions { seconds, cut_probability: 0.0, hold_out: false };
    let (clip, _) = tessera_world::expand_lenient(prompt, seed, &opts);
    Ok((clip.caption, warnings))
}

/// The inputs a task takes, read, fitted to the output size and (videos) resampled to the
/// output rate.
struct Inputs {
    /// (frame index, image) given in a text or image task.
    keys: Vec<(usize, Frame)>,
    videos: Vec<Vec<Frame>>,
    /// In-betweening: output frames per input frame.
    factor: usize,
}

fn read_inputs(req: &GenerationRequest, plan: &Plan, media: &dyn Media) -> Result<Inputs> {
    let (w, h, fps) = (plan.width, plan.height, plan.fps);
    let fit: Fit = req.resize.into();
    let image = |r: &str| -> Result<Frame> {
        let (frames, _) = media.read(r)?;
        let first = frames.first().ok_or_else(|| anyhow!("{r} has no frames"))?;
        Ok(tessera_media::fit(first, w, h, fit))
    };
    let clip = |r: &str| -> Result<Vec<Frame>> {
        let (frames, src_fps) = media.read(r)?;
        if frames.is_empty() {
            bail!("{r} has no frames");
        }
        // Pick the frames at the output rate first, so only those are resized.
        let picked = if src_fps > 0.0 { tessera_media::resample(&frames, src_fps, fps) } else { frames };
        Ok(picked.iter().map(|f| tessera_media::fit(f, w, h, fit)).collect())
    };
    let total = plan.frames;
    let mut inputs = Inputs { keys: Vec::new(), videos: Vec::new(), factor: 1 };
    match &req.task {
        Task::Generate { image: first, last_image, keyframes } => {
            if let Some(r) = first {
                inputs.keys.push((0, image(r)?));
            }
            if let Some(r) = last_image {
                inputs.keys.push((total - 1, image(r)?));
            }
            for k in keyframes {
                let i = (k.seconds * fps).round() as usize;
                if i >= total {
                    let secs = total.saturating_sub(1) as f64 / fps;
                    bail!(Invalid::new(
                        "keyframes",
                        format!(
                            "keyframe {}@{}: {} s is beyond the video's duration ({secs:.2} s at {fps} fps; set seconds)",
                            k.image, k.seconds, k.seconds
                        )
                    ));
                }
                inputs.keys.push((i, image(&k.image)?));
            }
        }
        Task::Loop { image: first } => {
            if let Some(r) = first {
                inputs.keys.push((0, image(r)?));
            }
        }
        Task::Extend { video, .. } | Task::Edit { video, .. } => inputs.videos.push(clip(video)?),
        Task::Connect { a, b } => {
            inputs.videos.push(clip(a)?);
            inputs.videos.push(clip(b)?);
        }
        Task::Interpolate { video } => {
            // `fps` is the target rate; the input keeps its own.
            let (frames, src_fps) = media.read(video)?;
            if src_fps <= 0.0 {
                bail!(Invalid::new("video", format!("{video} is a still image; in-betweening needs a video")));
            }
            let ratio = fps / src_fps;
            let factor = ratio.round() as usize;
            if factor < 2 || (ratio - factor as f64).abs() > 0.05 {
                bail!(Invalid::new(
                    "fps",
                    format!(
                        "in-betweening: `fps` {fps} must be a whole multiple (2x or more) of the video's {src_fps} fps"
                    )
                ));
            }
            inputs.factor = factor;
            inputs.videos.push(frames.iter().map(|f| tessera_media::fit(f, w, h, fit)).collect());
        }
    }
    Ok(inputs)
}

/// About how many frames the output will have (the server's progress and previews).
fn expected_frames(req: &GenerationRequest, plan: &Plan, inputs: &Inputs, tf: usize) -> usize {
    let valid = |n: usize| (n.max(1) - 1).div_ceil(tf) * tf + 1;
    match &req.task {
        Task::Generate { .. } => plan.frames,
        Task::Loop { .. } => valid(plan.frames.max(tf + 1)),
        Task::Extend { .. } => inputs.videos[0].len() + plan.frames,
        Task::Connect { .. } => {
            let (a, b) = (&inputs.videos[0], &inputs.videos[1]);
            let (ca, cb) = (
                tessera_pipeline::tasks::PREFIX_CONTEXT.min(a.len()),
                tessera_pipeline::tasks::SUFFIX_CONTEXT.min(b.len()),
            );
            a.len() + valid(ca + plan.frames + cb) - ca - cb + b.len()
        }
        Task::Edit { .. } => inputs.videos[0].len(),
        Task::Interpolate { .. } => (inputs.videos[0].len().max(1) - 1) * inputs.factor + 1,
    }
}

/// What signs and marks a generation: the watermark payload (None with provenance off)
/// and the writer's options with the C2PA claim.
pub struct Stamp {
    pub payload: Option<tessera_media::watermark::Payload>,
    pub opts: WriteOptions,
}

/// The watermark payload and the C2PA claim of one generation (`credentials` None: no
/// manifest).
pub fn stamp(req: &GenerationRequest, plan: &Plan, model: &str, credentials: Option<Credentials>) -> Stamp {
    let payload = req.provenance.enabled.then(|| tessera_pipeline::defaults::generation_payload(&req.prompt, req.seed));
    let claim = Claim {
        version: env!("CARGO_PKG_VERSION").to_string(),
        model: model.to_string(),
        task: plan.task.to_string(),
        prompt: req.prompt.clone(),
        include_prompt: req.provenance.include_prompt,
        watermark_id: payload.map(|p| p.id),
    };
    let c2pa = credentials.filter(|_| req.provenance.enabled).map(|credentials| Signing { claim, credentials });
    Stamp { payload, opts: WriteOptions { c2pa, ..Default::default() } }
}

/// A model ready to run: the pipeline over its folder and the name its outputs' C2PA
/// claims give.
#[derive(Clone, Copy)]
pub struct Model<'m> {
    pub name: &'m str,
    pub pipeline: &'m WanPipeline,
}

/// Runs a planned request on `model`: reads the inputs, runs the task's windows, marks
/// every frame and streams it to `out`, which signs the file with `credentials` (with
/// provenance on).
pub fn run(
    req: &GenerationRequest,
    plan: &Plan,
    model: Model,
    media: &dyn Media,
    credentials: Option<Credentials>,
    out: &mut dyn Output,
    events: &mut dyn Events,
) -> Result<()> {
    let pipeline = model.pipeline;
    // Everything is read and checked before the model loads.
    let mut inputs = read_inputs(req, plan, media)?;
    let expected = expected_frames(req, plan, &inputs, pipeline.temporal_factor());
    let stamp = stamp(req, plan, model.name, credentials);
    if let Some(p) = stamp.payload {
        events.message(&format!("watermark id {:08x}", p.id));
    }
    let mut marks = Marks::new(stamp.payload, req.provenance.visible_watermark, plan.fps);
    marks.still = out.still();
    let raw = out.raw();
    let mut params = plan.params.clone();
    let plain = matches!(req.task, Task::Generate { .. }) && inputs.keys.is_empty() && plan.frames <= plan.window;
    if plain {
        // One window of text-to-video (or an image): the decoder's frames as they are.
        pipeline.validate(&params)?;
        out.begin(expected, plan.fps, &stamp.opts)?;
        events.message(&format!(
            "generating {}x{}, {} frames, {} steps with {}",
            params.width, params.height, params.frames, params.steps, model.name
        ));
        let frames = pipeline.generate(&params, &mut |ev| events.progress(ev))?;
        if raw {
            out.tensor(&frames)?;
        } else {
            let (t, h, w, _) = frames.dims4()?;
            let data: Vec<f32> = frames.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1()?;
            for mut f in tessera_media::frames_from_f32(&data, t, h, w)? {
                marks.apply(&mut f);
                out.frame(f)?;
            }
        }
        return out.finish();
    }
    params.frames = plan.window;
    out.begin(expected, plan.fps, &stamp.opts)?;
    events.message(&format!(
        "{} at {}x{}, {} steps a window of {} frames, with {}",
        plan.task, params.width, params.height, params.steps, plan.window, model.name
    ));
    // The output's error is kept whole (the pipeline's sink carries only its text).
    let mut failed: Option<anyhow::Error> = None;
    let mut sink = |mut f: Frame| -> tessera_pipeline::Result<()> {
        if !raw {
            marks.apply(&mut f);
        }
        out.frame(f).map_err(|e| {
            let text = format!("{e:#}");
            failed = Some(e);
            tessera_pipeline::Error::Invalid(text)
        })
    };
    let mut progress = |ev: Progress| events.progress(ev);
    let result = (|| -> tessera_pipeline::Result<()> {
        let mut session = Session::new(pipeline, params, &mut progress)?;
        match &req.task {
            Task::Generate { .. } => session.keyframes(plan.frames, &inputs.keys, &mut sink, &mut progress),
            Task::Loop { .. } => {
                let first = inputs.keys.pop().map(|(_, f)| f);
                session.make_loop(plan.frames, first, &mut sink, &mut progress)
            }
            Task::Extend { direction: Direction::Forward, .. } => {
                session.extend_forward(&inputs.videos[0], plan.frames, &mut sink, &mut progress)
            }
            Task::Extend { direction: Direction::Backward, .. } => {
                session.extend_backward(&inputs.videos[0], plan.frames, &mut sink, &mut progress)
            }
            Task::Connect { .. } => {
                session.connect(&inputs.videos[0], &inputs.videos[1], plan.frames, &mut sink, &mut progress)
            }
            Task::Interpolate { .. } => session.interpolate(&inputs.videos[0], inputs.factor, &mut sink, &mut progress),
            Task::Edit { strength, .. } => session.edit(&inputs.videos[0], *strength, &mut sink, &mut progress),
        }
    })();
    if let Err(e) = result {
        return Err(failed.take().unwrap_or_else(|| anyhow!("{e}")));
    }
    out.finish()
}
