//! What a model folder says about how to run it, beyond diffusers' files: `tessera.json`
//! (written by `tessera train`) and where the built-in model lives. Shared by the CLI and
//! the server so both fill in the same defaults.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// `tessera.json` beside a model's model_index.json: what the model was trained for;
/// every field optional.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ModelDefaults {
    pub fps: Option<f64>,
    pub size: Option<(usize, usize)>,
    /// The model's clip length (its generation window), in frames.
    pub frames: Option<usize>,
    pub steps: Option<usize>,
    pub max_sequence_length: Option<usize>,
    /// World models expand short prompts into the world's detailed captions first.
    #[serde(default)]
    pub expand_prompts: bool,
}

impl ModelDefaults {
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("tessera.json");
        if !path.is_file() {
            return Ok(Self::default());
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::Invalid(format!("cannot read {}: {e}", path.display())))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }
}

/// Frames for a duration at `fps`, rounded to Wan's VAE form 4k + 1 (at least 1).
pub fn frames_for_seconds(seconds: f64, fps: f64) -> usize {
    4 * ((seconds * fps / 4.0).round().max(0.0) as usize) + 1
}

/// The built-in model's folder: $TESSERA_MODEL, else models/tessera-world in the source
/// tree. An error (tessera never downloads models) when neither has a model.
pub fn builtin_model() -> Result<PathBuf> {
    let dir = std::env::var_os("TESSERA_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/tessera-world"));
    if !dir.join("model_index.json").is_file() {
        return Err(Error::Invalid(format!(
            "no --model given and the built-in model is not in this checkout ({} is missing); pass --model DIR (tessera does not download models)",
            dir.display()
        )));
    }
    Ok(dir)
}

/// `cpu` or `cuda[:N]` (the `--device` of the CLI and the server).
pub fn parse_device(s: &str) -> Result<candle_core::Device> {
    let bad = || Error::Invalid(format!("--device {s:?} is not cpu or cuda[:N]"));
    if s == "cpu" {
        return Ok(candle_core::Device::Cpu);
    }
    let rest = s.strip_prefix("cuda").ok_or_else(bad)?;
    let ordinal = match rest.strip_prefix(':') {
        Some(n) => n.parse().map_err(|_| Error::Invalid(format!("--device {s:?}: bad GPU number")))?,
        None if rest.is_empty() => 0,
        None => return Err(bad()),
    };
    candle_core::Device::new_cuda(ordinal).map_err(|e| {
        Error::Invalid(format!(
            "--device {s}: CUDA is not available ({e}); build with `--features cuda` on a machine with nvcc"
        ))
    })
}

/// A model's name: its folder's name (the built-in model's is tessera-world), as the
/// server lists it and C2PA manifests record it.
pub fn model_name(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string())
}

/// The watermark payload of one generation: a 32-bit id from the prompt, the seed and the
/// time (so two runs of one prompt differ), printed or stored for the user to match later.
pub fn generation_payload(prompt: &str, seed: u64) -> tessera_media::watermark::Payload {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let h = crate::moderation::prompt_hash(&format!("{prompt}\u{0}{seed}\u{0}{nanos}"));
    tessera_media::watermark::Payload { id: u32::from_str_radix(&h[..8], 16).unwrap_or(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_to_4k_plus_1() {
        assert_eq!(frames_for_seconds(2.0, 12.0), 25);
        assert_eq!(frames_for_seconds(0.0, 12.0), 1);
        assert_eq!(frames_for_seconds(1.0, 16.0), 17);
        assert_eq!(frames_for_seconds(1.0, 12.0), 13);
    }

    #[test]
    fn devices() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        for bad in ["gpu", "cuda:x", "cudax", "cuda:"] {
            assert!(parse_device(bad).is_err(), "{bad}");
        }
    }
}
