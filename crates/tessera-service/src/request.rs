//! The typed request both front ends build: `tessera generate`'s flags and the server's
//! JSON and multipart bodies become one [`GenerationRequest`], checked by one
//! [`GenerationRequest::validate`] that holds every limit (docs/ARCHITECTURE.md, section 1).
//!
//! Every field has a serde default, so a request stored by an older release (the server
//! keeps the request as its job) still reads after an upgrade: a new field is added with a
//! default, never renamed.

use serde::{Deserialize, Serialize};
use tessera_pipeline::cache::{check_threshold, CacheKind};

/// What to make. Unset options take the model's defaults (`tessera.json`), then Wan's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationRequest {
    /// What the video shows, as the user wrote it.
    pub prompt: String,
    /// What it should not show (used with guidance > 1).
    pub negative_prompt: String,
    /// Output size [default: the model's, else 832x480].
    pub size: Option<Size>,
    /// Frames: for text and image tasks the whole video (4k+1), for extension and
    /// connection the generated part. Overrides `seconds`.
    pub frames: Option<usize>,
    /// The same as a duration at `fps`.
    pub seconds: Option<f64>,
    /// Frame rate [default: the model's, else 16]. For in-betweening, the target rate.
    pub fps: Option<f64>,
    /// Denoising steps [default: the model's, else 50].
    pub steps: Option<usize>,
    /// Classifier-free guidance scale (1 disables guidance).
    pub guidance: f64,
    /// Guidance of the second (low-noise) expert of two-expert models.
    pub guidance_2: Option<f64>,
    /// Text tokens fed to the encoder [default: the model's, else 512].
    pub max_sequence_length: Option<usize>,
    /// Seed of the initial noise (and of the details a prompt leaves open).
    pub seed: u64,
    /// Overrides the scheduler's flow shift.
    pub shift: Option<f64>,
    /// World models expand the prompt into one of the world's captions first.
    pub expand: bool,
    /// Words outside the world's vocabulary are an error instead of a warning.
    pub strict_prompt: bool,
    /// Which frames are given and how the video is built from them.
    pub task: Task,
    /// How inputs of another size are fitted.
    pub resize: Resize,
    /// Watermark and C2PA manifest.
    pub provenance: Provenance,
    /// Step caching: `first-block` or `magcache` (off when absent).
    pub cache: Option<CacheKind>,
    /// The cache's threshold [default: the kind's, as diffusers': 0.05 first-block, 0.06
    /// magcache]; higher skips more.
    pub cache_threshold: Option<f64>,
}

impl Default for GenerationRequest {
    fn default() -> Self {
        GenerationRequest {
            prompt: String::new(),
            negative_prompt: String::new(),
            size: None,
            frames: None,
            seconds: None,
            fps: None,
            steps: None,
            guidance: 5.0,
            guidance_2: None,
            max_sequence_length: None,
            seed: 0,
            shift: None,
            expand: true,
            strict_prompt: false,
            task: Task::default(),
            resize: Resize::Crop,
            provenance: Provenance::default(),
            cache: None,
            cache_threshold: None,
        }
    }
}

/// WIDTHxHEIGHT; written and read as that string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub width: usize,
    pub height: usize,
}

impl Size {
    /// "832x480" (either case of x, spaces around the numbers allowed).
    pub fn parse(s: &str) -> Result<Size, Invalid> {
        let err = || Invalid::new("size", format!("`size` {s:?} is not WIDTHxHEIGHT (for example 832x480)"));
        let (w, h) = s.split_once(['x', 'X']).ok_or_else(err)?;
        let width: usize = w.trim().parse().map_err(|_| err())?;
        let height: usize = h.trim().parse().map_err(|_| err())?;
        if width == 0 || height == 0 {
            return Err(err());
        }
        Ok(Size { width, height })
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl Serialize for Size {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Size::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// Inputs are references the front end resolves ([`crate::Media`]): a file path on the
/// CLI, a storage key on the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Task {
    /// Text to video (or an image at one frame), with frames given where they belong:
    /// image-to-video (`image`), a last frame, keyframes at times.
    Generate {
        #[serde(default)]
        image: Option<String>,
        #[serde(default)]
        last_image: Option<String>,
        #[serde(default)]
        keyframes: Vec<Keyframe>,
    },
    /// The video ends where it begins (optionally on a given first frame).
    Loop {
        #[serde(default)]
        image: Option<String>,
    },
    /// A video continued after its end or before its start by `frames`/`seconds`.
    Extend {
        video: String,
        #[serde(default)]
        direction: Direction,
    },
    /// Video A, a transition of `frames`/`seconds`, then video B.
    Connect { a: String, b: String },
    /// The video's frame rate raised to `fps` by generating the frames in between.
    Interpolate { video: String },
    /// The video redone from the prompt (SDEdit): 0 keeps it, 1 ignores it.
    Edit {
        video: String,
        #[serde(default = "default_strength")]
        strength: f64,
    },
}

impl Default for Task {
    fn default() -> Self {
        Task::Generate { image: None, last_image: None, keyframes: Vec::new() }
    }
}

fn default_strength() -> f64 {
    0.7
}

/// The default `strength` of an edit (a remix on the server).
pub const DEFAULT_STRENGTH: f64 = 0.7;

impl Task {
    /// The task's name in the C2PA manifest (and the logs).
    pub fn name(&self, frames: usize) -> &'static str {
        match self {
            Task::Extend { direction: Direction::Forward, .. } => "extend-forward",
            Task::Extend { direction: Direction::Backward, .. } => "extend-backward",
            Task::Connect { .. } => "connect",
            Task::Interpolate { .. } => "interpolate",
            Task::Edit { .. } => "video-to-video",
            Task::Loop { .. } => "loop",
            Task::Generate { last_image, keyframes, .. } if last_image.is_some() || !keyframes.is_empty() => {
                "keyframes-to-video"
            }
            Task::Generate { image: Some(_), .. } => "image-to-video",
            Task::Generate { .. } if frames == 1 => "text-to-image",
            Task::Generate { .. } => "text-to-video",
        }
    }

    /// Whether frames are given (images or videos): the prompt then describes a scene
    /// that is already there.
    pub fn has_given_frames(&self) -> bool {
        !matches!(self, Task::Generate { image: None, last_image: None, keyframes } if keyframes.is_empty())
            && !matches!(self, Task::Loop { image: None })
    }

    /// Whether `frames`/`seconds` is the generated part (extension, connection) rather
    /// than the whole video.
    pub fn adds_frames(&self) -> bool {
        matches!(self, Task::Extend { .. } | Task::Connect { .. })
    }

    /// Every input reference, with the request field it came from.
    pub fn inputs(&self) -> Vec<(&'static str, &str)> {
        match self {
            Task::Generate { image, last_image, keyframes } => image
                .iter()
                .map(|i| ("image", i.as_str()))
                .chain(last_image.iter().map(|i| ("last_image", i.as_str())))
                .chain(keyframes.iter().map(|k| ("keyframes", k.image.as_str())))
                .collect(),
            Task::Loop { image } => image.iter().map(|i| ("image", i.as_str())).collect(),
            Task::Extend { video, .. } | Task::Interpolate { video } | Task::Edit { video, .. } => {
                vec![("video", video.as_str())]
            }
            Task::Connect { a, b } => vec![("connect", a.as_str()), ("connect", b.as_str())],
        }
    }
}

/// An image at a time in the video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyframe {
    pub image: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Forward,
    Backward,
}

/// How an input of another size is fitted to the output's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    #[default]
    Crop,
    Pad,
    Stretch,
}

impl From<Resize> for tessera_media::Fit {
    fn from(r: Resize) -> Self {
        match r {
            Resize::Crop => tessera_media::Fit::Crop,
            Resize::Pad => tessera_media::Fit::Pad,
            Resize::Stretch => tessera_media::Fit::Stretch,
        }
    }
}

/// The invisible watermark and the signed C2PA manifest (both on by default), the
/// prompt's text in the manifest (else only its hash), and the visible mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Provenance {
    pub enabled: bool,
    pub include_prompt: bool,
    pub visible_watermark: bool,
}

impl Default for Provenance {
    fn default() -> Self {
        Provenance { enabled: true, include_prompt: false, visible_watermark: false }
    }
}

/// Limits every request is checked against. The defaults are the CLI's; a server sets
/// its own duration and size caps (`tessera serve --max-seconds`, `--max-pixels`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Characters in the prompt and in the negative prompt.
    pub prompt_chars: usize,
    pub max_steps: usize,
    pub max_guidance: f64,
    /// Seconds of the whole output (for extension and connection: of what is generated;
    /// the server checks the total against its inputs' lengths).
    pub max_seconds: Option<f64>,
    /// Pixels of one frame.
    pub max_pixels: Option<usize>,
    pub max_fps: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            prompt_chars: 4000,
            max_steps: 200,
            max_guidance: 30.0,
            max_seconds: None,
            max_pixels: None,
            max_fps: 120.0,
        }
    }
}

/// A request that cannot run: which field (the API's `param`) and why, in words both
/// front ends print as they are.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub param: Option<&'static str>,
    pub message: String,
}

impl Invalid {
    pub fn new(param: &'static str, message: impl Into<String>) -> Self {
        Invalid { param: Some(param), message: message.into() }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Invalid {}

impl GenerationRequest {
    /// Every check that needs no model: lengths, ranges, finite numbers, the task's
    /// settings. The model's own constraints (size multiples, 4k+1 frames) are the
    /// pipeline's (`WanPipeline::validate`), once the folder is open.
    pub fn validate(&self, limits: &Limits) -> Result<(), Invalid> {
        if self.prompt.trim().is_empty() {
            return Err(Invalid::new("prompt", "`prompt` is required"));
        }
        for (param, text) in [("prompt", &self.prompt), ("negative_prompt", &self.negative_prompt)] {
            if text.chars().count() > limits.prompt_chars {
                return Err(Invalid::new(
                    param,
                    format!("`{param}` is longer than {} characters", limits.prompt_chars),
                ));
            }
        }
        if let Some(steps) = self.steps {
            if !(1..=limits.max_steps).contains(&steps) {
                return Err(Invalid::new(
                    "steps",
                    format!("`steps` must be between 1 and {}, got {steps}", limits.max_steps),
                ));
            }
        }
        for (param, g) in [("guidance", Some(self.guidance)), ("guidance_2", self.guidance_2)] {
            if let Some(g) = g {
                if !(g.is_finite() && (0.0..=limits.max_guidance).contains(&g)) {
                    return Err(Invalid::new(
                        param,
                        format!("`{param}` must be between 0 and {}, got {g}", limits.max_guidance),
                    ));
                }
            }
        }
        if self.max_sequence_length == Some(0) {
            return Err(Invalid::new("max_sequence_length", "`max_sequence_length` must be at least 1"));
        }
        if let Some(t) = self.cache_threshold {
            if self.cache.is_none() {
                return Err(Invalid::new(
                    "cache_threshold",
                    format!("`cache_threshold` needs `cache` ({})", CacheKind::NAMES),
                ));
            }
            check_threshold(t).map_err(|m| Invalid::new("cache_threshold", format!("`cache_threshold`: {m}")))?;
        }
        if let Some(shift) = self.shift {
            if !(shift.is_finite() && shift > 0.0) {
                return Err(Invalid::new("shift", format!("`shift` must be a positive number, got {shift}")));
            }
        }
        if let Some(fps) = self.fps {
            if !(fps.is_finite() && fps > 0.0 && fps <= limits.max_fps) {
                return Err(Invalid::new(
                    "fps",
                    format!("`fps` must be more than 0 and at most {}, got {fps}", limits.max_fps),
                ));
            }
        }
        if self.frames == Some(0) {
            return Err(Invalid::new("frames", "`frames` must be at least 1"));
        }
        if let Some(s) = self.seconds {
            if !(s.is_finite() && s >= 0.0) {
                return Err(Invalid::new("seconds", format!("`seconds` must be zero or more, got {s}")));
            }
            if let Some(max) = limits.max_seconds {
                if !(s > 0.0 && s <= max) {
                    return Err(Invalid::new(
                        "seconds",
                        format!("`seconds` must be more than 0 and at most {max}, got {s}"),
                    ));
                }
            }
        }
        if let Some(size) = self.size {
            if let Some(max) = limits.max_pixels {
                if size.width * size.height > max {
                    return Err(Invalid::new(
                        "size",
                        format!("{size} is larger than this server allows ({max} pixels)"),
                    ));
                }
            }
        }
        match &self.task {
            Task::Edit { strength, .. } => {
                if !(strength.is_finite() && (0.0..=1.0).contains(strength)) {
                    return Err(Invalid::new(
                        "strength",
                        format!("`strength` must be between 0 and 1, got {strength}"),
                    ));
                }
            }
            Task::Generate { keyframes, .. } => {
                for k in keyframes {
                    if !(k.seconds.is_finite() && k.seconds >= 0.0) {
                        return Err(Invalid::new(
                            "keyframes",
                            format!("keyframe {}: {} s is not a time in the video", k.image, k.seconds),
                        ));
                    }
                }
            }
            Task::Extend { .. } | Task::Connect { .. } => {
                if self.frames.is_none() && self.seconds.is_none() {
                    let what = if matches!(self.task, Task::Extend { .. }) { "extending" } else { "connecting" };
                    return Err(Invalid::new(
                        "seconds",
                        format!("{what} needs `seconds` (or `frames`): how long the generated part is"),
                    ));
                }
            }
            Task::Loop { .. } | Task::Interpolate { .. } => {}
        }
        for (param, reference) in self.task.inputs() {
            if reference.trim().is_empty() {
                return Err(Invalid::new(param, format!("`{param}` names no file")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_object_is_the_default_request() {
        let r: GenerationRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(r, GenerationRequest::default());
        assert_eq!((r.guidance, r.expand, r.provenance.enabled), (5.0, true, true));
    }

    #[test]
    fn requests_round_trip_through_json() {
        let r = GenerationRequest {
            prompt: "a red ball".into(),
            size: Some(Size { width: 128, height: 96 }),
            seconds: Some(2.0),
            task: Task::Extend { video: "in.mp4".into(), direction: Direction::Backward },
            cache: Some(CacheKind::MagCache),
            ..Default::default()
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"size\":\"128x96\"") && text.contains("\"type\":\"extend\""), "{text}");
        assert!(text.contains("\"cache\":\"magcache\""), "{text}");
        assert_eq!(serde_json::from_str::<GenerationRequest>(&text).unwrap(), r);
        let edit: Task = serde_json::from_str(r#"{"type": "edit", "video": "v.mp4"}"#).unwrap();
        assert_eq!(edit, Task::Edit { video: "v.mp4".into(), strength: DEFAULT_STRENGTH });
    }

    #[test]
    fn every_limit_names_its_field() {
        let base = GenerationRequest { prompt: "a ball".into(), ..Default::default() };
        let limits = Limits { max_seconds: Some(20.0), max_pixels: Some(65536), ..Default::default() };
        assert_eq!(base.validate(&limits), Ok(()));
        let cases: Vec<(GenerationRequest, &str)> = vec![
            (GenerationRequest { prompt: " ".into(), ..base.clone() }, "prompt"),
            (GenerationRequest { negative_prompt: "x".repeat(4001), ..base.clone() }, "negative_prompt"),
            (GenerationRequest { steps: Some(0), ..base.clone() }, "steps"),
            (GenerationRequest { steps: Some(201), ..base.clone() }, "steps"),
            (GenerationRequest { guidance: 31.0, ..base.clone() }, "guidance"),
            (GenerationRequest { guidance: f64::NAN, ..base.clone() }, "guidance"),
            (GenerationRequest { guidance_2: Some(-1.0), ..base.clone() }, "guidance_2"),
            (GenerationRequest { max_sequence_length: Some(0), ..base.clone() }, "max_sequence_length"),
            (GenerationRequest { fps: Some(0.0), ..base.clone() }, "fps"),
            (GenerationRequest { frames: Some(0), ..base.clone() }, "frames"),
            (GenerationRequest { seconds: Some(21.0), ..base.clone() }, "seconds"),
            (GenerationRequest { seconds: Some(-1.0), ..base.clone() }, "seconds"),
            (GenerationRequest { size: Some(Size { width: 512, height: 512 }), ..base.clone() }, "size"),
            (GenerationRequest { task: Task::Edit { video: "v".into(), strength: 1.5 }, ..base.clone() }, "strength"),
            (GenerationRequest { task: Task::Connect { a: "a".into(), b: "b".into() }, ..base.clone() }, "seconds"),
            (GenerationRequest { task: Task::Interpolate { video: String::new() }, ..base.clone() }, "video"),
            (GenerationRequest { cache_threshold: Some(0.1), ..base.clone() }, "cache_threshold"),
            (
                GenerationRequest { cache: Some(CacheKind::FirstBlock), cache_threshold: Some(0.0), ..base.clone() },
                "cache_threshold",
            ),
        ];
        for (r, param) in cases {
            let e = r.validate(&limits).unwrap_err();
            assert_eq!(e.param, Some(param), "{e}");
            assert!(e.message.contains(param) || param == "size", "{e}");
        }
    }

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(Size::parse("832X480").unwrap(), Size { width: 832, height: 480 });
        assert_eq!(Size::parse(" 64 x 32 ").unwrap().to_string(), "64x32");
        for bad in ["", "64", "0x64", "ax3", "64x"] {
            assert!(Size::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn task_names() {
        let g = |image: Option<&str>| Task::Generate {
            image: image.map(String::from),
            last_image: None,
            keyframes: vec![],
        };
        assert_eq!(g(None).name(1), "text-to-image");
        assert_eq!(g(None).name(25), "text-to-video");
        assert_eq!(g(Some("a.png")).name(25), "image-to-video");
        assert!(!g(None).has_given_frames() && g(Some("a")).has_given_frames());
        assert!(!Task::Loop { image: None }.has_given_frames());
        assert!(Task::Edit { video: "v".into(), strength: 0.5 }.has_given_frames());
    }
}
