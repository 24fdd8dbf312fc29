//! `tessera generate` beyond text-to-video: image-to-video, keyframes, extension,
//! connecting, in-betweening, loops, edits and videos longer than the model's window.
//! Parsing and checking here; the work is tessera_pipeline::tasks.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use clap::{Args, ValueEnum};
use tessera_media::{Fit, Frame, VideoWriter, WriteOptions};
use tessera_pipeline::tasks::Session;
use tessera_pipeline::{GenerateParams, WanPipeline};

use crate::output::{Marks, OutputFormat};
use crate::progress::Reporter;

#[derive(Args, Debug, Default)]
pub struct TaskArgs {
    /// Image-to-video: this image (PNG, JPEG, GIF's first frame) is the first frame.
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
    /// This image is the last frame (with --image: a first-and-last-frame video).
    #[arg(long, value_name = "FILE")]
    last_image: Option<PathBuf>,
    /// An image at a time in the video, FILE@SECONDS (repeatable).
    #[arg(long, value_name = "FILE@SECONDS")]
    keyframe: Vec<String>,
    /// A video to extend (with --extend; --seconds is how much to add).
    #[arg(long, value_name = "FILE", requires = "extend")]
    video: Option<PathBuf>,
    /// Which way to extend --video: after its end or before its start.
    #[arg(long, value_enum, requires = "video")]
    extend: Option<Direction>,
    /// Connect two videos: A, a transition (--seconds long), then B.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    connect: Vec<PathBuf>,
    /// Raise a video's frame rate to --fps by generating the frames in between.
    #[arg(long, value_name = "FILE")]
    interpolate: Option<PathBuf>,
    /// The video ends where it begins, so it plays as a seamless loop.
    #[arg(long = "loop")]
    looped: bool,
    /// Video-to-video: redo this video from the prompt (SDEdit) by --strength.
    #[arg(long, value_name = "FILE")]
    edit: Option<PathBuf>,
    /// How much of --edit's video to redo: 0 keeps it, 1 ignores it.
    #[arg(long, requires = "edit")]
    strength: Option<f64>,
    /// How inputs of another size are fitted.
    #[arg(long, value_enum, default_value = "crop")]
    resize: ResizeArg,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum Direction {
    Forward,
    Backward,
}

#[derive(Clone, Copy, Debug, ValueEnum, Default)]
pub enum ResizeArg {
    #[default]
    Crop,
    Pad,
    Stretch,
}

impl TaskArgs {
    /// Whether any task flag is set (else: plain text-to-video).
    pub fn any(&self) -> bool {
        self.image.is_some()
            || self.last_image.is_some()
            || !self.keyframe.is_empty()
            || self.video.is_some()
            || !self.connect.is_empty()
            || self.interpolate.is_some()
            || self.looped
            || self.edit.is_some()
    }

    /// The task's name in the C2PA manifest.
    pub fn name(&self, frames: usize) -> &'static str {
        match () {
            _ if self.extend == Some(Direction::Forward) => "extend-forward",
            _ if self.extend == Some(Direction::Backward) => "extend-backward",
            _ if !self.connect.is_empty() => "connect",
            _ if self.interpolate.is_some() => "interpolate",
            _ if self.edit.is_some() => "video-to-video",
            _ if self.looped => "loop",
            _ if self.last_image.is_some() || !self.keyframe.is_empty() => "keyframes-to-video",
            _ if self.image.is_some() => "image-to-video",
            _ if frames == 1 => "text-to-image",
            _ => "text-to-video",
        }
    }

    fn fit(&self) -> Fit {
        match self.resize {
            ResizeArg::Crop => Fit::Crop,
            ResizeArg::Pad => Fit::Pad,
            ResizeArg::Stretch => Fit::Stretch,
        }
    }

    /// Which flags cannot go together: one input-video task at a time, and images only
    /// with text (or a loop).
    fn check(&self) -> Result<()> {
        let videos: Vec<&str> = [
            (self.video.is_some(), "--video"),
            (!self.connect.is_empty(), "--connect"),
            (self.interpolate.is_some(), "--interpolate"),
            (self.edit.is_some(), "--edit"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        if videos.len() > 1 {
            bail!("{} cannot go together: give one input-video task", videos.join(" and "));
        }
        let images = self.image.is_some() || self.last_image.is_some() || !self.keyframe.is_empty();
        if let (Some(v), true) = (videos.first(), images) {
            bail!("{v} cannot go with --image, --last-image or --keyframe");
        }
        if self.looped {
            if let Some(v) = videos.first() {
                bail!("--loop cannot go with {v}");
            }
            if self.last_image.is_some() || !self.keyframe.is_empty() {
                bail!("--loop ends on the first frame: it cannot go with --last-image or --keyframe");
            }
        }
        if let Some(s) = self.strength {
            if !(0.0..=1.0).contains(&s) || !s.is_finite() {
                bail!("--strength must be between 0 and 1, got {s}");
            }
        }
        Ok(())
    }
}

/// An input image, fitted to the output size.
fn read_image(path: &Path, w: usize, h: usize, fit: Fit) -> Result<Frame> {
    let (frames, _) = tessera_media::read_video(path).map_err(|e| anyhow!("{e}"))?;
    let first = frames.first().ok_or_else(|| anyhow!("{} has no frames", path.display()))?;
    Ok(tessera_media::fit(first, w, h, fit))
}

/// An input video, fitted to the output size and resampled to `fps`.
fn read_clip(path: &Path, w: usize, h: usize, fps: f64, fit: Fit) -> Result<Vec<Frame>> {
    let (frames, src_fps) = tessera_media::read_video(path).map_err(|e| anyhow!("{e}"))?;
    if frames.is_empty() {
        bail!("{} has no frames", path.display());
    }
    // Pick the frames at the output rate first, so only those are resized.
    let picked = tessera_media::resample(&frames, src_fps, fps);
    Ok(picked.iter().map(|f| tessera_media::fit(f, w, h, fit)).collect())
}

/// Frames at `fps` for `seconds` (at least one).
fn frames_for(seconds: f64, fps: f64) -> Result<usize> {
    if !(seconds.is_finite() && seconds >= 0.0) {
        bail!("--seconds must be zero or more, got {seconds}");
    }
    Ok(((seconds * fps).round() as usize).max(1))
}

/// Streams frames to the output: MP4 keeps only the compressed stream, so a minute costs
/// its file size; .safetensors collects them (as f32 in [0, 1]). One per output file, so
/// the encoder's size is not worth a box.
#[allow(clippy::large_enum_variant)]
enum Out {
    Video(VideoWriter, Marks),
    Tensor(Vec<Frame>),
}

impl Out {
    fn create(path: &Path, format: OutputFormat, fps: f64, marks: Marks, opts: &WriteOptions) -> Result<Self> {
        Ok(match format {
            OutputFormat::Safetensors => Out::Tensor(Vec::new()),
            _ => Out::Video(VideoWriter::create(path, fps, opts)?, marks),
        })
    }

    fn push(&mut self, f: Frame) -> tessera_pipeline::Result<()> {
        match self {
            Out::Video(w, marks) => {
                let mut f = f;
                marks.apply(&mut f);
                w.push(f).map_err(|e| tessera_pipeline::Error::Invalid(e.to_string()))
            }
            Out::Tensor(v) => {
                v.push(f);
                Ok(())
            }
        }
    }

    fn finish(self, path: &Path, format: OutputFormat, fps: f64) -> Result<()> {
        match self {
            Out::Video(w, _) => {
                w.finish()?;
                Ok(())
            }
            Out::Tensor(v) => {
                let (t, h, w) = (v.len(), v[0].height, v[0].width);
                let data: Vec<f32> = v.iter().flat_map(|f| f.data.iter().map(|&x| x as f32 / 255.0)).collect();
                let tensor = candle_core::Tensor::from_vec(data, (t, h, w, 3), &candle_core::Device::Cpu)?;
                crate::output::write(
                    path,
                    format,
                    &tensor,
                    fps,
                    &mut Marks::new(None, false, fps),
                    &WriteOptions::default(),
                )
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    task: &TaskArgs,
    pipeline: &WanPipeline,
    mut params: GenerateParams,
    seconds: Option<f64>,
    frames: Option<usize>,
    window: usize,
    fps: f64,
    output: &Path,
    format: OutputFormat,
    marks: Marks,
    opts: impl FnOnce() -> Result<WriteOptions>,
    reporter: &mut Reporter,
) -> Result<()> {
    task.check()?;
    let (w, h) = (params.width, params.height);
    let fit = task.fit();
    let total = params.frames; // the requested length (4k + 1) for text/image tasks
    let requested_seconds = (total.saturating_sub(1)) as f64 / fps;
    // Everything is read and checked before the model loads.
    let mut keys: Vec<(usize, Frame)> = Vec::new();
    if let Some(p) = &task.image {
        keys.push((0, read_image(p, w, h, fit)?));
    }
    if let Some(p) = &task.last_image {
        keys.push((total - 1, read_image(p, w, h, fit)?));
    }
    for k in &task.keyframe {
        let (file, at) = k.rsplit_once('@').ok_or_else(|| anyhow!("--keyframe {k:?} is not FILE@SECONDS"))?;
        let at: f64 = at.parse().map_err(|_| anyhow!("--keyframe {k:?}: {at:?} is not a number of seconds"))?;
        let i = (at * fps).round();
        if !(at.is_finite() && at >= 0.0) || i as usize >= total {
            bail!("--keyframe {k:?}: {at} s is beyond the video's duration ({requested_seconds:.2} s at {fps} fps; set --seconds)");
        }
        keys.push((i as usize, read_image(Path::new(file), w, h, fit)?));
    }
    // For extension and connection, --seconds (or --frames) is the generated part.
    let new_seconds = |what: &str| -> Result<usize> {
        match (seconds, frames) {
            (Some(s), _) => frames_for(s, fps),
            (None, Some(f)) => Ok(f),
            (None, None) => bail!("{what} needs --seconds: how long the generated part is"),
        }
    };
    params.frames = window;
    let out_fps = fps;
    // The signing keys are found (or made) once the flags and images are checked.
    let mut out = Out::create(output, format, out_fps, marks, &opts()?)?;
    let mut sink = |f: Frame| out.push(f);
    let mut progress = |ev: tessera_pipeline::Progress| reporter.event(ev);

    if let Some(dir) = task.extend {
        let path = task.video.as_ref().expect("clap requires --video with --extend");
        let video = read_clip(path, w, h, fps, fit)?;
        let new = new_seconds("--extend")?;
        let mut session = Session::new(pipeline, params, &mut progress)?;
        match dir {
            Direction::Forward => session.extend_forward(&video, new, &mut sink, &mut progress)?,
            Direction::Backward => session.extend_backward(&video, new, &mut sink, &mut progress)?,
        }
    } else if let [a, b] = &task.connect[..] {
        let a = read_clip(a, w, h, fps, fit)?;
        let b = read_clip(b, w, h, fps, fit)?;
        let new = new_seconds("--connect")?;
        let mut session = Session::new(pipeline, params, &mut progress)?;
        session.connect(&a, &b, new, &mut sink, &mut progress)?;
    } else if let Some(path) = &task.interpolate {
        // --fps is the target rate; the input keeps its own.
        let (frames, src_fps) = tessera_media::read_video(path).map_err(|e| anyhow!("{e}"))?;
        if src_fps <= 0.0 {
            bail!("--interpolate {} is a still image; give a video", path.display());
        }
        let ratio = fps / src_fps;
        let factor = ratio.round() as usize;
        if factor < 2 || (ratio - factor as f64).abs() > 0.05 {
            bail!("--interpolate: --fps {fps} must be a whole multiple (2x or more) of the video's {src_fps} fps");
        }
        let video: Vec<Frame> = frames.iter().map(|f| tessera_media::fit(f, w, h, fit)).collect();
        let mut session = Session::new(pipeline, params, &mut progress)?;
        session.interpolate(&video, factor, &mut sink, &mut progress)?;
    } else if let Some(path) = &task.edit {
        let video = read_clip(path, w, h, fps, fit)?;
        let mut session = Session::new(pipeline, params, &mut progress)?;
        session.edit(&video, task.strength.unwrap_or(0.7), &mut sink, &mut progress)?;
    } else if task.looped {
        let first = keys.into_iter().next().map(|(_, f)| f);
        let mut session = Session::new(pipeline, params, &mut progress)?;
        session.make_loop(total, first, &mut sink, &mut progress)?;
    } else {
        let mut session = Session::new(pipeline, params, &mut progress)?;
        session.keyframes(total, &keys, &mut sink, &mut progress)?;
    }
    out.finish(output, format, out_fps)?;
    reporter.done(&format!("wrote {}", output.display()));
    Ok(())
}
