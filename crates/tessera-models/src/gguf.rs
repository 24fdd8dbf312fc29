//! GGUF files: llama.cpp's format, in which the community publishes quantized Wan
//! transformers (city96's ComfyUI-GGUF conversions and others; Q8_0, Q5_K, Q4_K, F16
//! tensors, the original Wan key layout or diffusers'). The header is parsed here rather
//! than by candle's `gguf_file`, which refuses tensors of more than four dimensions: Wan's
//! patch embedding is five (docs/ARCHITECTURE.md, section 2).
//!
//! Layout (GGUF v2 and v3, ggml's docs/gguf.md): `GGUF`, u32 version, u64 tensor count, u64
//! metadata count; the metadata (string key, u32 value type, value); per tensor its name,
//! u32 dimension count, u64 sizes innermost first, u32 ggml type and u64 offset into the
//! data section, which starts at the next multiple of `general.alignment` (32 if absent).
//! Everything is little-endian and every length is checked against the file, so a damaged
//! file is an error naming it, never a panic or a huge allocation.
//!
//! Tensors in block formats are handed out as candle `QTensor`s, to stay quantized in the
//! transformer's linear layers (`linear.rs`); everything else is dequantized on request
//! through a `VarBuilder` backend ([`GgufFile::var_builder`]), under diffusers' names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QTensor};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;

use crate::{Error, Result};

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
}

/// One tensor's place in the file.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// The name as stored (the original Wan layout's, or diffusers').
    pub stored_name: String,
    /// Row-major sizes (the file lists them innermost first).
    pub dims: Vec<usize>,
    pub dtype: GgmlDType,
    /// Byte range in the file.
    start: usize,
    len: usize,
}

/// A memory-mapped GGUF file, its tensors keyed by their diffusers names.
pub struct GgufFile {
    path: PathBuf,
    mmap: memmap2::Mmap,
    tensors: HashMap<String, TensorInfo>,
    metadata: HashMap<String, Value>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile").field("path", &self.path).field("tensors", &self.tensors.len()).finish()
    }
}

/// ggml's type ids (ggml.h `enum ggml_type`), those candle reads and the names of the rest.
fn ggml_type(id: u32) -> std::result::Result<GgmlDType, String> {
    Ok(match id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        _ => {
            let name = match id {
                16 => "IQ2_XXS",
                17 => "IQ2_XS",
                18 => "IQ3_XXS",
                19 => "IQ1_S",
                20 => "IQ4_NL",
                21 => "IQ3_S",
                22 => "IQ2_S",
                23 => "IQ4_XS",
                24 => "I8",
                25 => "I16",
                26 => "I32",
                27 => "I64",
                28 => "F64",
                29 => "IQ1_M",
                34 => "TQ1_0",
                35 => "TQ2_0",
                39 => "MXFP4",
                _ => "an unknown type",
            };
            return Err(format!("{name} (ggml type {id})"));
        }
    })
}

/// The formats tessera reads, for error messages.
pub const SUPPORTED: &str = "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K";

/// Whether `dtype` is a block format (kept quantized) rather than plain floats.
pub fn is_block(dtype: GgmlDType) -> bool {
    !matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
}

/// Bounds-checked little-endian reads over the header.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!("the header is cut off at byte {} (wanted {n} more)", self.pos));
        };
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> std::result::Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    /// A count of items that each take at least `min_bytes`: more than the rest of the
    /// file could hold is damage, not a reason to allocate.
    fn count(&mut self, min_bytes: usize, what: &str) -> std::result::Result<usize, String> {
        let n = self.u64()?;
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left / min_bytes.max(1) as u64 {
            return Err(format!("{what} count {n} is more than the file can hold"));
        }
        Ok(n as usize)
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        let n = self.count(1, "string length")?;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| format!("a string at byte {} is not UTF-8", self.pos - n))
    }
    fn value(&mut self, ty: u32, depth: usize) -> std::result::Result<Value, String> {
        Ok(match ty {
            0 => Value::Int(self.u8()? as i64),
            1 => Value::Int(self.u8()? as i8 as i64),
            2 => Value::Int(self.u16()? as i64),
            3 => Value::Int(self.u16()? as i16 as i64),
            4 => Value::Int(self.u32()? as i64),
            5 => Value::Int(self.u32()? as i32 as i64),
            6 => Value::Float(f32::from_bits(self.u32()?) as f64),
            7 => Value::Bool(self.u8()? != 0),
            8 => Value::Str(self.string()?),
            9 => {
                if depth > 4 {
                    return Err("metadata arrays nest too deeply".into());
                }
                let inner = self.u32()?;
                let n = self.count(1, "array length")?;
                let mut v = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    v.push(self.value(inner, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::Int(self.u64()? as i64),
            11 => Value::Int(self.u64()? as i64),
            12 => Value::Float(f64::from_bits(self.u64()?)),
            _ => return Err(format!("unknown metadata value type {ty}")),
        })
    }
}

impl GgufFile {
    /// Maps and parses `path`; tensor names are translated to diffusers' layout when the
    /// file uses the original Wan one ([`diffusers_name`]).
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        // SAFETY: read-only mapping of a file that is not modified while mapped.
        let mmap = unsafe { memmap2::MmapOptions::new().map(&file) }
            .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let bad = |message: String| Error::BadWeights { path: path.to_path_buf(), message };
        let (tensors, metadata) = Self::parse(&mmap).map_err(bad)?;
        Ok(Self { path: path.to_path_buf(), mmap, tensors, metadata })
    }

    #[allow(clippy::type_complexity)]
    fn parse(bytes: &[u8]) -> std::result::Result<(HashMap<String, TensorInfo>, HashMap<String, Value>), String> {
        let mut r = Reader { bytes, pos: 0 };
        let magic = r.take(4).map_err(|_| "not a GGUF file (too short)".to_string())?;
        if magic != b"GGUF" {
            return Err("not a GGUF file (it does not start with `GGUF`)".into());
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            let hint = if version.swap_bytes() <= 3 { " (a big-endian file?)" } else { "" };
            return Err(format!("GGUF version {version} is not supported (2 and 3 are){hint}"));
        }
        let n_tensors = r.count(24, "tensor")?;
        let n_kv = r.count(12, "metadata")?;
        let mut metadata = HashMap::new();
        for _ in 0..n_kv {
            let key = r.string()?;
            let ty = r.u32()?;
            let v = r.value(ty, 0).map_err(|e| format!("metadata {key:?}: {e}"))?;
            metadata.insert(key, v);
        }
        let alignment = match metadata.get("general.alignment") {
            Some(Value::Int(a)) if *a > 0 && (*a as u64).is_power_of_two() => *a as usize,
            None => 32,
            Some(v) => return Err(format!("general.alignment {v:?} is not a power of two")),
        };
        let mut infos = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = r.string()?;
            let n_dims = r.u32()? as usize;
            if n_dims == 0 || n_dims > 8 {
                return Err(format!("tensor {name:?} has {n_dims} dimensions"));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                dims.push(r.u64()? as usize);
            }
            dims.reverse();
            let id = r.u32()?;
            let dtype = ggml_type(id).map_err(|t| {
                format!("tensor {name:?} is stored as {t}, which tessera cannot read (it reads {SUPPORTED})")
            })?;
            let offset = r.u64()? as usize;
            infos.push((name, dims, dtype, offset));
        }
        let data_start = r.pos.div_ceil(alignment) * alignment;
        // ComfyUI-GGUF stores some tensors flattened, their shape under this key.
        let orig_shape = |name: &str| -> Option<Vec<usize>> {
            match metadata.get(&format!("comfy.gguf.orig_shape.{name}")) {
                Some(Value::Array(a)) => {
                    a.iter().map(|v| if let Value::Int(i) = v { usize::try_from(*i).ok() } else { None }).collect()
                }
                _ => None,
            }
        };
        let original = infos.iter().any(|(n, ..)| is_original_layout(strip_prefix(n)));
        let mut tensors = HashMap::with_capacity(infos.len());
        for (name, dims, dtype, offset) in infos {
            let elems = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            let Some(elems) = elems.filter(|e| e % dtype.block_size() == 0) else {
                return Err(format!("tensor {name:?}: sizes {dims:?} do not fit {dtype:?} blocks"));
            };
            let len = elems / dtype.block_size() * dtype.type_size();
            let start = data_start.checked_add(offset);
            let Some(start) = start.filter(|s| s.checked_add(len).is_some_and(|e| e <= bytes.len())) else {
                return Err(format!(
                    "tensor {name:?} ({dims:?}, {dtype:?}) runs past the end of the file: the file is cut off"
                ));
            };
            let dims = match orig_shape(&name) {
                Some(s) if s.iter().product::<usize>() == elems => s,
                Some(s) => {
                    return Err(format!("tensor {name:?}: stored shape {s:?} does not match its {elems} values"))
                }
                None => dims,
            };
            let stripped = strip_prefix(&name);
            let key = if original { diffusers_name(stripped) } else { stripped.to_string() };
            let info = TensorInfo { stored_name: name.clone(), dims, dtype, start, len };
            if tensors.insert(key.clone(), info).is_some() {
                return Err(format!("tensor {key:?} appears twice"));
            }
        }
        Ok((tensors, metadata))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.metadata
    }

    /// The tensors under their diffusers names.
    pub fn tensors(&self) -> &HashMap<String, TensorInfo> {
        &self.tensors
    }

    fn bytes(&self, info: &TensorInfo) -> &[u8] {
        &self.mmap[info.start..info.start + info.len]
    }

    fn candle_err(&self, name: &str, e: impl std::fmt::Display) -> candle_core::Error {
        candle_core::Error::Msg(format!("tensor {name}: {e}"))
    }

    /// Checks that `name` holds `expected` values in the layout the model reads
    /// (`Err` names the tensor, the file's shape and the config's).
    pub fn check_shape(&self, name: &str, expected: &[usize]) -> Result<()> {
        let bad = |message: String| Err(Error::BadWeights { path: self.path.clone(), message });
        match self.tensors.get(name) {
            None => bad(format!("has no tensor {name} (is it a Wan transformer?)")),
            Some(t) if t.dims.iter().product::<usize>() != expected.iter().product::<usize>() => bad(format!(
                "{name} has shape {:?} in this file but the model's config.json wants {expected:?}: the file is another model's",
                t.dims
            )),
            Some(_) => Ok(()),
        }
    }

    /// `name` (diffusers' layout) as a quantized tensor, if it is stored in a block format.
    pub fn qtensor(&self, name: &str, device: &Device) -> candle_core::Result<Option<QTensor>> {
        match self.tensors.get(name) {
            Some(info) if is_block(info.dtype) => {
                let q = qtensor_from_ggml(info.dtype, self.bytes(info), info.dims.clone(), device)
                    .map_err(|e| self.candle_err(name, e))?;
                Ok(Some(q))
            }
            _ => Ok(None),
        }
    }

    /// `name` (diffusers' layout) as a dense tensor of `dtype`, dequantized if need be.
    pub fn dense(&self, name: &str, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        let Some(info) = self.tensors.get(name) else {
            return Err(candle_core::Error::CannotFindTensor { path: name.to_string() });
        };
        let b = self.bytes(info);
        let t = match info.dtype {
            GgmlDType::F32 => {
                let v: Vec<f32> = b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4"))).collect();
                Tensor::from_vec(v, info.dims.clone(), device)?
            }
            GgmlDType::F16 => {
                let v: Vec<half::f16> =
                    b.chunks_exact(2).map(|c| half::f16::from_le_bytes(c.try_into().expect("2"))).collect();
                Tensor::from_vec(v, info.dims.clone(), device)?
            }
            GgmlDType::BF16 => {
                let v: Vec<half::bf16> =
                    b.chunks_exact(2).map(|c| half::bf16::from_le_bytes(c.try_into().expect("2"))).collect();
                Tensor::from_vec(v, info.dims.clone(), device)?
            }
            _ => self.qtensor(name, device)?.expect("a block format").dequantize(device)?,
        };
        t.to_dtype(dtype)
    }

    /// A VarBuilder over this file's tensors under diffusers' names, each converted to
    /// `dtype` (dequantized from a block format) when fetched. A tensor whose values fit
    /// the requested shape in another arrangement of dimensions (older files store the
    /// modulation as 2-D) is reshaped.
    pub fn var_builder(self: &Arc<Self>, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(Backend(self.clone())), dtype, device.clone())
    }
}

struct Backend(Arc<GgufFile>);

impl candle_nn::var_builder::SimpleBackend for Backend {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let t = self.0.dense(name, dtype, dev)?;
        if t.shape() == &s {
            return Ok(t);
        }
        if t.elem_count() == s.elem_count() {
            return t.reshape(s);
        }
        Err(candle_core::Error::Msg(format!(
            "{name} has shape {:?} in this file but the model's config.json wants {:?}",
            t.dims(),
            s.dims()
        )))
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.0.dense(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.tensors.contains_key(name)
    }
}

/// ComfyUI and the original checkpoints prefix some state dicts.
fn strip_prefix(name: &str) -> &str {
    name.strip_prefix("model.diffusion_model.").unwrap_or(name)
}

/// Whether a key belongs to the original Wan layout (Wan-Video/Wan2.1 `wan/modules/model.py`).
fn is_original_layout(name: &str) -> bool {
    name.starts_with("head.head.") || name.contains(".self_attn.") || name.starts_with("text_embedding.")
}

/// A key of the original Wan layout under diffusers' name: the table of diffusers'
/// `convert_wan_transformer_to_diffusers` (scripts/convert_wan_to_diffusers.py), written
/// as a match over the key's parts. Keys it does not know are kept as they are.
pub fn diffusers_name(name: &str) -> String {
    let parts: Vec<&str> = name.split('.').collect();
    let attn = |rest: &[&str]| -> Option<String> {
        let (layer, tail) = rest.split_first()?;
        let layer = match *layer {
            "q" => "to_q",
            "k" => "to_k",
            "v" => "to_v",
            "o" => "to_out.0",
            "k_img" => "add_k_proj",
            "v_img" => "add_v_proj",
            "norm_k_img" => "norm_added_k",
            other => other,
        };
        Some(std::iter::once(layer).chain(tail.iter().copied()).collect::<Vec<_>>().join("."))
    };
    let mapped = match parts.as_slice() {
        ["blocks", i, "self_attn", rest @ ..] => attn(rest).map(|r| format!("blocks.{i}.attn1.{r}")),
        ["blocks", i, "cross_attn", rest @ ..] => attn(rest).map(|r| format!("blocks.{i}.attn2.{r}")),
        // The original's norm3 is the cross-attention's norm, diffusers' norm2.
        ["blocks", i, "norm3", p] => Some(format!("blocks.{i}.norm2.{p}")),
        ["blocks", i, "ffn", "0", p] => Some(format!("blocks.{i}.ffn.net.0.proj.{p}")),
        ["blocks", i, "ffn", "2", p] => Some(format!("blocks.{i}.ffn.net.2.{p}")),
        ["blocks", i, "modulation"] => Some(format!("blocks.{i}.scale_shift_table")),
        ["head", "head", p] => Some(format!("proj_out.{p}")),
        ["head", "modulation"] => Some("scale_shift_table".into()),
        ["text_embedding", n @ ("0" | "2"), p] => {
            Some(format!("condition_embedder.text_embedder.linear_{}.{p}", if *n == "0" { 1 } else { 2 }))
        }
        ["time_embedding", n @ ("0" | "2"), p] => {
            Some(format!("condition_embedder.time_embedder.linear_{}.{p}", if *n == "0" { 1 } else { 2 }))
        }
        ["time_projection", "1", p] => Some(format!("condition_embedder.time_proj.{p}")),
        ["img_emb", "proj", n, p] => {
            let layer = match *n {
                "0" => "norm1",
                "1" => "ff.net.0.proj",
                "3" => "ff.net.2",
                "4" => "norm2",
                _ => return name.to_string(),
            };
            Some(format!("condition_embedder.image_embedder.{layer}.{p}"))
        }
        ["img_emb", "emb_pos"] => Some("condition_embedder.image_embedder.pos_embed".into()),
        _ => None,
    };
    mapped.unwrap_or_else(|| name.to_string())
}

/// The one `.gguf` file of a component folder, if its weights are given that way.
pub fn find_in(dir: &Path) -> Result<Option<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")))
        .collect();
    found.sort();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(Error::BadWeights {
            path: dir.to_path_buf(),
            message: format!(
                "holds {} .gguf files ({}); keep one, or name it with --gguf",
                found.len(),
                found.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy()).collect::<Vec<_>>().join(", ")
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_keys_map_to_diffusers() {
        for (orig, diff) in [
            ("blocks.3.self_attn.q.weight", "blocks.3.attn1.to_q.weight"),
            ("blocks.3.self_attn.o.bias", "blocks.3.attn1.to_out.0.bias"),
            ("blocks.3.self_attn.norm_k.weight", "blocks.3.attn1.norm_k.weight"),
            ("blocks.0.cross_attn.v.weight", "blocks.0.attn2.to_v.weight"),
            ("blocks.0.cross_attn.k_img.weight", "blocks.0.attn2.add_k_proj.weight"),
            ("blocks.0.cross_attn.norm_k_img.weight", "blocks.0.attn2.norm_added_k.weight"),
            ("blocks.1.norm3.weight", "blocks.1.norm2.weight"),
            ("blocks.1.ffn.0.weight", "blocks.1.ffn.net.0.proj.weight"),
            ("blocks.1.ffn.2.bias", "blocks.1.ffn.net.2.bias"),
            ("blocks.1.modulation", "blocks.1.scale_shift_table"),
            ("head.head.weight", "proj_out.weight"),
            ("head.modulation", "scale_shift_table"),
            ("text_embedding.2.weight", "condition_embedder.text_embedder.linear_2.weight"),
            ("time_embedding.0.bias", "condition_embedder.time_embedder.linear_1.bias"),
            ("time_projection.1.weight", "condition_embedder.time_proj.weight"),
            ("img_emb.proj.1.weight", "condition_embedder.image_embedder.ff.net.0.proj.weight"),
            ("img_emb.proj.4.bias", "condition_embedder.image_embedder.norm2.bias"),
            ("patch_embedding.weight", "patch_embedding.weight"),
        ] {
            assert_eq!(diffusers_name(orig), diff, "{orig}");
        }
    }

    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(version.to_le_bytes());
        b.extend(n_tensors.to_le_bytes());
        b.extend(n_kv.to_le_bytes());
        b
    }

    #[test]
    fn damaged_headers_are_errors() {
        assert!(GgufFile::parse(b"GGML").unwrap_err().contains("not a GGUF"));
        assert!(GgufFile::parse(&header(1, 0, 0)).unwrap_err().contains("version 1"));
        // A count the file cannot hold is refused before anything is allocated.
        assert!(GgufFile::parse(&header(3, u64::MAX, 0)).unwrap_err().contains("more than the file can hold"));
        // One tensor whose data lies beyond the end.
        let mut b = header(3, 1, 0);
        let name = b"w";
        b.extend((name.len() as u64).to_le_bytes());
        b.extend(name);
        b.extend(1u32.to_le_bytes());
        b.extend(64u64.to_le_bytes());
        b.extend(0u32.to_le_bytes()); // F32
        b.extend(0u64.to_le_bytes());
        b.extend([0u8; 40]);
        let e = GgufFile::parse(&b).unwrap_err();
        assert!(e.contains("runs past the end"), "{e}");
        // An unsupported type is named.
        let n = b.len();
        b[n - 40 - 12..n - 40 - 8].copy_from_slice(&23u32.to_le_bytes());
        let e = GgufFile::parse(&b).unwrap_err();
        assert!(e.contains("IQ4_XS"), "{e}");
    }
}
