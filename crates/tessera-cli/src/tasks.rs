//! `tessera generate` beyond text-to-video: image-to-video, keyframes, extension,
//! connecting, in-betweening, loops, edits and videos longer than the model's window.
//! The flags become the request's [`Task`]; the work is tessera_service's, and the file
//! it writes is [`FileOutput`].

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use clap::{Args, ValueEnum};
use tessera_media::{Frame, VideoWriter, WriteOptions};
use tessera_service::{Events, Keyframe, Output, Resize, Task};

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

    /// `--resize` as the request's.
    pub fn resize(&self) -> Resize {
        match self.resize {
            ResizeArg::Crop => Resize::Crop,
            ResizeArg::Pad => Resize::Pad,
            ResizeArg::Stretch => Resize::Stretch,
        }
    }

    /// The task these flags ask for, once they are checked to go together.
    pub fn to_task(&self) -> Result<Task> {
        self.check()?;
        let path = |p: &Path| p.to_string_lossy().into_owned();
        if let (Some(dir), Some(video)) = (self.extend, &self.video) {
            let direction = match dir {
                Direction::Forward => tessera_service::Direction::Forward,
                Direction::Backward => tessera_service::Direction::Backward,
            };
            return Ok(Task::Extend { video: path(video), direction });
        }
        if let [a, b] = &self.connect[..] {
            return Ok(Task::Connect { a: path(a), b: path(b) });
        }
        if let Some(v) = &self.interpolate {
            return Ok(Task::Interpolate { video: path(v) });
        }
        if let Some(v) = &self.edit {
            return Ok(Task::Edit {
                video: path(v),
                strength: self.strength.unwrap_or(tessera_service::DEFAULT_STRENGTH),
            });
        }
        if self.looped {
            return Ok(Task::Loop { image: self.image.as_deref().map(path) });
        }
        let mut keyframes = Vec::new();
        for k in &self.keyframe {
            let (file, at) = k.rsplit_once('@').ok_or_else(|| anyhow!("--keyframe {k:?} is not FILE@SECONDS"))?;
            let seconds: f64 =
                at.parse().map_err(|_| anyhow!("--keyframe {k:?}: {at:?} is not a number of seconds"))?;
            keyframes.push(Keyframe { image: file.to_string(), seconds });
        }
        Ok(Task::Generate {
            image: self.image.as_deref().map(path),
            last_image: self.last_image.as_deref().map(path),
            keyframes,
        })
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
        Ok(())
    }
}

/// A file output: the extension picks the format. MP4 keeps only the compressed stream,
/// so a minute costs its file size; `.safetensors` keeps the frames (f32 in [0, 1]: the
/// decoder's own for one window, else the 8-bit frames) and is never marked or signed.
pub struct FileOutput {
    path: PathBuf,
    format: OutputFormat,
    fps: f64,
    writer: Option<VideoWriter>,
    frames: Vec<Frame>,
    tensor: Option<candle_core::Tensor>,
}

impl FileOutput {
    pub fn new(path: &Path, format: OutputFormat) -> Self {
        FileOutput { path: path.to_path_buf(), format, fps: 0.0, writer: None, frames: Vec::new(), tensor: None }
    }
}

impl Output for FileOutput {
    fn begin(&mut self, _frames: usize, fps: f64, opts: &WriteOptions) -> Result<()> {
        self.fps = fps;
        if self.format != OutputFormat::Safetensors {
            self.writer = Some(VideoWriter::create(&self.path, fps, opts)?);
        }
        Ok(())
    }

    fn frame(&mut self, frame: Frame) -> Result<()> {
        match &mut self.writer {
            Some(w) => Ok(w.push(frame)?),
            None => {
                self.frames.push(frame);
                Ok(())
            }
        }
    }

    fn still(&self) -> bool {
        self.format == OutputFormat::Png
    }

    fn raw(&self) -> bool {
        self.format == OutputFormat::Safetensors
    }

    fn tensor(&mut self, frames: &candle_core::Tensor) -> Result<()> {
        self.tensor = Some(frames.clone());
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(w) = self.writer.take() {
            return Ok(w.finish()?);
        }
        let tensor = match self.tensor.take() {
            Some(t) => t,
            None => {
                let v = std::mem::take(&mut self.frames);
                let first = v.first().ok_or_else(|| anyhow!("no frames to write to {}", self.path.display()))?;
                let (t, h, w) = (v.len(), first.height, first.width);
                let data: Vec<f32> = v.iter().flat_map(|f| f.data.iter().map(|&x| x as f32 / 255.0)).collect();
                candle_core::Tensor::from_vec(data, (t, h, w, 3), &candle_core::Device::Cpu)?
            }
        };
        crate::output::write(
            &self.path,
            self.format,
            &tensor,
            self.fps,
            &mut Marks::new(None, false, self.fps),
            &WriteOptions::default(),
        )
    }
}

/// The service's events on the terminal: progress bars and messages (quiet with -q),
/// warnings always.
pub struct ReporterEvents<'r>(pub &'r mut Reporter);

impl Events for ReporterEvents<'_> {
    fn message(&mut self, text: &str) {
        self.0.message(text);
    }

    fn warning(&mut self, text: &str) {
        eprintln!("warning: {text}");
    }

    fn progress(&mut self, p: tessera_pipeline::Progress) {
        self.0.event(p);
    }
}
