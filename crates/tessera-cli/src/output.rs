//! Writing generated frames: the output's extension picks the format. Every writer goes
//! through a temporary file and a rename, so a failure never leaves a partial output.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use tessera_media::watermark::Payload;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputFormat {
    Mp4,
    Gif,
    Png,
    Safetensors,
}

impl OutputFormat {
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .unwrap_or_default();
        Ok(match ext.as_str() {
            "mp4" => Self::Mp4,
            "gif" => Self::Gif,
            "png" => Self::Png,
            "safetensors" => Self::Safetensors,
            _ => bail!(
                "output {} has an unknown extension {:?}: use .mp4, .gif, .png or .safetensors",
                path.display(),
                ext
            ),
        })
    }
}

/// `frames`: (T, H, W, 3) f32 in [0, 1], as diffusers' `output_type="np"`. Video and
/// image outputs carry the invisible watermark when `mark` is set; `.safetensors` is the
/// raw tensor (for parity checks) and is never marked.
pub fn write(path: &Path, format: OutputFormat, frames: &Tensor, fps: f64, marks: &mut Marks) -> Result<()> {
    let frames = frames.to_dtype(DType::F32)?;
    match format {
        OutputFormat::Safetensors => {
            let tmp = tessera_media::temp_path(path);
            let map = std::collections::HashMap::from([("frames".to_string(), frames)]);
            candle_core::safetensors::save(&map, &tmp)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        _ => {
            let (t, h, w, c) = frames.dims4()?;
            if c != 3 {
                bail!("internal: frames have {c} channels, expected 3");
            }
            // Same quantisation as diffusers' numpy_to_pil: (x * 255).round() as u8.
            let data: Vec<f32> = frames.flatten_all()?.to_vec1()?;
            let mut frames = tessera_media::frames_from_f32(&data, t, h, w)?;
            for f in frames.iter_mut() {
                marks.apply(f);
            }
            tessera_media::write_video(path, &frames, fps, &Default::default())?;
        }
    }
    Ok(())
}

/// What is drawn into every output frame: the visible mark (when asked for), then the
/// invisible watermark (unless provenance is off).
pub struct Marks {
    pub invisible: Option<Payload>,
    pub visible: bool,
    pub fps: f64,
    embedder: Option<tessera_media::watermark::Embedder>,
    index: usize,
}

impl Marks {
    pub fn new(invisible: Option<Payload>, visible: bool, fps: f64) -> Self {
        Marks { invisible, visible, fps, embedder: None, index: 0 }
    }

    /// Marks the next frame of the output.
    pub fn apply(&mut self, f: &mut tessera_media::Frame) {
        if self.visible {
            tessera_media::visible::stamp(f, self.index, self.fps);
        }
        if let Some(p) = self.invisible {
            self.embedder.get_or_insert_with(|| tessera_media::watermark::Embedder::new(f.width, f.height, p)).mark(f, self.index);
        }
        self.index += 1;
    }
}

/// The watermark payload of one generation: a 32-bit id from the prompt, the seed and the
/// time (so two runs of one prompt differ), printed for the user to match later.
pub fn generation_payload(prompt: &str, seed: u64) -> Payload {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let h = tessera_pipeline::moderation::prompt_hash(&format!("{prompt}\u{0}{seed}\u{0}{nanos}"));
    Payload { id: u32::from_str_radix(&h[..8], 16).unwrap_or(0) }
}
