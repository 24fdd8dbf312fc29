//! Writing generated frames: the output's extension picks the format. Every writer goes
//! through a temporary file and a rename, so a failure never leaves a partial output.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
pub use tessera_media::marks::Marks;
use tessera_media::WriteOptions;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputFormat {
    Mp4,
    Gif,
    Png,
    Safetensors,
}

impl OutputFormat {
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).unwrap_or_default();
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
/// raw tensor (for parity checks) and is never marked or signed; the others carry the
/// C2PA manifest of `opts`, if any.
pub fn write(
    path: &Path,
    format: OutputFormat,
    frames: &Tensor,
    fps: f64,
    marks: &mut Marks,
    opts: &WriteOptions,
) -> Result<()> {
    let frames = frames.to_dtype(DType::F32)?;
    match format {
        OutputFormat::Safetensors => {
            let tmp = tessera_media::temp_path(path);
            let map = std::collections::HashMap::from([("frames".to_string(), frames)]);
            candle_core::safetensors::save(&map, &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        }
        _ => {
            let (t, h, w, c) = frames.dims4()?;
            if c != 3 {
                bail!("internal: frames have {c} channels, expected 3");
            }
            // Same quantisation as diffusers' numpy_to_pil: (x * 255).round() as u8.
            let data: Vec<f32> = frames.flatten_all()?.to_vec1()?;
            let mut frames = tessera_media::frames_from_f32(&data, t, h, w)?;
            marks.still = format == OutputFormat::Png;
            for f in frames.iter_mut() {
                marks.apply(f);
            }
            tessera_media::write_video(path, &frames, fps, opts)?;
        }
    }
    Ok(())
}
