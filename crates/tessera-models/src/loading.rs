//! Loading the pieces of a diffusers-format model folder:
//!
//! ```text
//! model_index.json            which class sits in which sub-folder (+ pipeline options)
//! transformer/  transformer_2/ config.json + diffusion_pytorch_model*.safetensors[.index.json]
//! vae/                        config.json + diffusion_pytorch_model*.safetensors
//! text_encoder/               config.json + model*.safetensors[.index.json]
//! tokenizer/                  tokenizer.json
//! scheduler/                  scheduler_config.json
//! ```
//!
//! Weights are memory-mapped (f32, bf16 or f16 on disk) and converted to the requested
//! dtype as each tensor is fetched; parameter names follow the checkpoint keys, so no
//! renaming table is needed (the candle convention, see docs/ARCHITECTURE.md, Conventions).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Reads a whole file, naming it in the error.
pub fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

/// Deserialises a JSON config file, naming the file in the error.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = read_to_string(path)?;
    serde_json::from_str(&text).map_err(|source| Error::Json { path: path.to_path_buf(), source })
}

/// The `_class_name` of a config file, checked against the classes a loader supports.
pub fn check_class(path: &Path, supported: &[&str]) -> Result<String> {
    let value: serde_json::Value = read_json(path)?;
    let class = value.get("_class_name").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    // Configs saved by `transformers` carry `architectures` instead of `_class_name`.
    let class = if class.is_empty() {
        value.get("architectures").and_then(|a| a.get(0)).and_then(|v| v.as_str()).unwrap_or_default().to_string()
    } else {
        class
    };
    if supported.iter().any(|s| *s == class) {
        Ok(class)
    } else {
        Err(Error::UnknownClass { path: path.to_path_buf(), class, supported: supported.join(", ") })
    }
}

/// The safetensors files of one component folder: a sharded checkpoint's index
/// (`*.safetensors.index.json`, its `weight_map` values) wins over single files.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    if let Some(index) = names.iter().find(|p| p.to_string_lossy().ends_with(".safetensors.index.json")) {
        let value: serde_json::Value = read_json(index)?;
        let map = value
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::BadWeights { path: index.clone(), message: "has no `weight_map` object".into() })?;
        let mut files: Vec<PathBuf> = map.values().filter_map(|v| v.as_str()).map(|f| dir.join(f)).collect();
        files.sort();
        files.dedup();
        for f in &files {
            if !f.is_file() {
                return Err(Error::BadWeights {
                    path: index.clone(),
                    message: format!("lists shard {} which does not exist", f.display()),
                });
            }
        }
        return Ok(files);
    }
    let files: Vec<PathBuf> = names.into_iter().filter(|p| p.extension().is_some_and(|e| e == "safetensors")).collect();
    if files.is_empty() {
        return Err(Error::NoWeights { path: dir.to_path_buf() });
    }
    Ok(files)
}

/// A memory-mapped VarBuilder over a component folder's safetensors files.
pub fn var_builder(dir: &Path, dtype: DType, device: &Device) -> Result<VarBuilder<'static>> {
    let files = safetensors_files(dir)?;
    // Validate headers first so a truncated or corrupt file is reported by name rather
    // than as a bare deserialisation error from deep inside candle.
    for f in &files {
        let file = std::fs::File::open(f).map_err(|source| Error::Io { path: f.clone(), source })?;
        // SAFETY: the mapping is read-only and the file is not modified while mapped.
        let mmap = unsafe { memmap_file(&file) }.map_err(|source| Error::Io { path: f.clone(), source })?;
        safetensors::SafeTensors::deserialize(&mmap).map_err(|e| Error::BadWeights {
            path: f.clone(),
            message: format!("not a valid safetensors file ({e})"),
        })?;
    }
    // SAFETY: as above; candle keeps the mappings alive inside the VarBuilder.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, device)? };
    Ok(vb)
}

unsafe fn memmap_file(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    memmap2::MmapOptions::new().map(file)
}

/// Wraps a candle error raised while building a component so the message names the
/// folder (candle's own message already names the missing or mis-shaped tensor).
pub fn in_component<T>(dir: &Path, r: candle_core::Result<T>) -> Result<T> {
    r.map_err(|e| Error::BadWeights {
        path: dir.to_path_buf(),
        // candle appends a backtrace when RUST_BACKTRACE is set; the first line is the message.
        message: e.to_string().lines().next().unwrap_or_default().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file whose header claims a terabyte is refused by name (the header's
    /// size is checked against safetensors' 100 MB bound before anything is read into
    /// memory), as is one shorter than its own length prefix.
    #[test]
    fn weights_declaring_huge_headers_are_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("tessera-loading-huge-header-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("diffusion_pytorch_model.safetensors");
        for bytes in [[&(1u64 << 40).to_le_bytes()[..], b"{}"].concat(), vec![200, 0, 0]] {
            std::fs::write(&file, &bytes).unwrap();
            let e = var_builder(&dir, DType::F32, &Device::Cpu).err().expect("refused").to_string();
            assert!(e.contains("diffusion_pytorch_model.safetensors") && e.contains("not a valid safetensors"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
