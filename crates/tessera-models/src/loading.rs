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
//! dtype as each tensor is fetched, the mapped pages given back once copied; parameter names follow the checkpoint keys, so no
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
    // Each file's header is checked as it is mapped, so a truncated or corrupt file is
    // reported by name.
    let backend = Mapped::open(&files)?;
    Ok(VarBuilder::from_backend(Box::new(backend), dtype, device.clone()))
}

/// Memory-mapped safetensors files that hand back each tensor as an owned copy and then
/// drop the copied pages from the process (`madvise(MADV_DONTNEED)`; the file's pages stay
/// in the page cache). With candle's own mapped backend the touched pages stayed resident
/// until the whole component was built, so loading held every weight twice: a 1.3B-shaped
/// transformer peaked at 11.0 GB (5.5 GB mapped + 5.5 GB copied) for 5.8 GB of weights
/// (BENCHMARKS.md, memory).
struct Mapped {
    maps: Vec<memmap2::Mmap>,
    /// Tensor name -> (file, dtype, shape, byte range in that file).
    tensors: std::collections::HashMap<String, (usize, safetensors::Dtype, Vec<usize>, std::ops::Range<usize>)>,
}

impl Mapped {
    fn open(files: &[PathBuf]) -> Result<Self> {
        let mut maps = Vec::new();
        let mut tensors = std::collections::HashMap::new();
        for (i, f) in files.iter().enumerate() {
            let file = std::fs::File::open(f).map_err(|source| Error::Io { path: f.clone(), source })?;
            // SAFETY: the mapping is read-only and the file is not modified while mapped.
            let mmap = unsafe { memmap_file(&file) }.map_err(|source| Error::Io { path: f.clone(), source })?;
            let st = safetensors::SafeTensors::deserialize(&mmap).map_err(|e| Error::BadWeights {
                path: f.clone(),
                message: format!("not a valid safetensors file ({e})"),
            })?;
            for (name, view) in st.tensors() {
                let start = view.data().as_ptr() as usize - mmap.as_ptr() as usize;
                let range = start..start + view.data().len();
                tensors.insert(name, (i, view.dtype(), view.shape().to_vec(), range));
            }
            maps.push(mmap);
        }
        Ok(Self { maps, tensors })
    }

    fn load(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<candle_core::Tensor> {
        use safetensors::Dtype as S;
        let Some((file, st_dtype, shape, range)) = self.tensors.get(name) else {
            return Err(candle_core::Error::CannotFindTensor { path: name.to_string() }.bt());
        };
        let stored = match st_dtype {
            S::F32 => DType::F32,
            S::F16 => DType::F16,
            S::BF16 => DType::BF16,
            S::F64 => DType::F64,
            S::U8 => DType::U8,
            S::U32 => DType::U32,
            S::I16 => DType::I16,
            S::I32 => DType::I32,
            S::I64 => DType::I64,
            other => candle_core::bail!("{name} is stored as {other:?}, which tessera does not read"),
        };
        let map = &self.maps[*file];
        // Copies the bytes (aligning them where the file does not).
        let t = candle_core::Tensor::from_raw_buffer(&map[range.clone()], stored, shape, dev)?.to_dtype(dtype)?;
        // The tensor owns its data now; give the mapped pages back (a page shared with the
        // next tensor is simply read from the page cache again).
        // SAFETY: DONTNEED on a read-only file mapping only drops this process's copies of
        // the pages; later reads fault them in from the file again.
        let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, range.start, range.len()) };
        Ok(t)
    }
}

impl candle_nn::var_builder::SimpleBackend for Mapped {
    fn get(
        &self,
        s: candle_core::Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<candle_core::Tensor> {
        let t = self.load(name, dtype, dev)?;
        if t.shape() != &s {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: s,
                got: t.shape().clone(),
            }
            .bt());
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<candle_core::Tensor> {
        self.load(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
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
