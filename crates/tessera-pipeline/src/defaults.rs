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
    /// MagCache's magnitude ratios, one per step of the steps they were measured at
    /// (`tessera cache-calibrate`); `--cache magcache` needs them.
    pub mag_ratios: Option<Vec<f64>>,
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

/// A model as `--model` names it: its folder and the name outputs and the server give it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRef {
    pub dir: PathBuf,
    pub name: String,
}

/// What `--model` leads to: a folder, or a Hugging Face name (`owner/name`, optionally
/// `@revision`: a branch, a tag or a commit) found in the local Hugging Face cache, with no
/// network access. The caches are those the `huggingface_hub` library writes:
/// $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
/// ~/.cache/huggingface/hub.
pub fn resolve_model(spec: &str) -> Result<ModelRef> {
    resolve_model_in(spec, &hf_caches())
}

/// The Hugging Face caches to look in, in order.
pub fn hf_caches() -> Vec<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(c) = var("HF_HUB_CACHE") {
        return vec![c];
    }
    if let Some(h) = var("HF_HOME") {
        return vec![h.join("hub")];
    }
    let base = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")));
    base.map(|b| vec![b.join("huggingface/hub")]).unwrap_or_default()
}

/// [`resolve_model`] over the given caches.
pub fn resolve_model_in(spec: &str, caches: &[PathBuf]) -> Result<ModelRef> {
    let dir = Path::new(spec);
    if dir.is_dir() {
        return Ok(ModelRef { dir: dir.to_path_buf(), name: model_name(dir) });
    }
    let (repo, rev) = spec.split_once('@').unwrap_or((spec, "main"));
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    let hf_name = match repo.split_once('/') {
        Some((owner, name)) => plain(owner) && plain(name) && plain(rev) && !owner.starts_with('.'),
        None => false,
    };
    if !hf_name {
        return Err(Error::Invalid(format!(
            "model {spec}: no such folder (give a diffusers folder, or a Hugging Face name such as Wan-AI/Wan2.1-T2V-1.3B-Diffusers that is in the local cache)"
        )));
    }
    let folder = format!("models--{}", repo.replace('/', "--"));
    let mut looked = Vec::new();
    for cache in caches {
        let repo_dir = cache.join(&folder);
        // A branch or tag names a commit in refs/; a commit is its own snapshot.
        let commit = std::fs::read_to_string(repo_dir.join("refs").join(rev))
            .map(|c| c.trim().to_string())
            .unwrap_or_else(|_| rev.to_string());
        let snapshot = repo_dir.join("snapshots").join(&commit);
        if snapshot.join("model_index.json").is_file() {
            return Ok(ModelRef { dir: snapshot, name: repo.to_string() });
        }
        looked.push(snapshot.display().to_string());
    }
    Err(Error::Invalid(format!(
        "model {spec} is not in the local Hugging Face cache (looked for model_index.json in: {}); tessera does not download: on a machine with network run `huggingface-cli download {repo}{}` and copy the cache (or set HF_HUB_CACHE or HF_HOME to where it is), or pass the model's folder",
        if looked.is_empty() { "no cache: set HF_HUB_CACHE or HOME".to_string() } else { looked.join(", ") },
        if rev == "main" { String::new() } else { format!(" --revision {rev}") }
    )))
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
    fn hugging_face_names_resolve_in_the_local_cache() {
        let root = std::env::temp_dir().join(format!("tessera-hf-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (empty, cache) = (root.join("empty"), root.join("hub"));
        let repo = cache.join("models--Wan-AI--Tiny-Diffusers");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(repo.join("snapshots").join(commit)).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::write(repo.join("snapshots").join(commit).join("model_index.json"), "{}").unwrap();
        std::fs::write(repo.join("refs/main"), format!("{commit}\n")).unwrap();
        let caches = [empty.clone(), cache.clone()];
        let want = ModelRef { dir: repo.join("snapshots").join(commit), name: "Wan-AI/Tiny-Diffusers".into() };
        assert_eq!(resolve_model_in("Wan-AI/Tiny-Diffusers", &caches).unwrap(), want);
        assert_eq!(resolve_model_in(&format!("Wan-AI/Tiny-Diffusers@{commit}"), &caches).unwrap(), want);
        // Not there: the error says where it looked and how to put it there.
        let e = resolve_model_in("Wan-AI/Other@v2", &caches).unwrap_err().to_string();
        assert!(
            e.contains("models--Wan-AI--Other") && e.contains("huggingface-cli download Wan-AI/Other --revision v2"),
            "{e}"
        );
        assert!(e.contains(&empty.display().to_string()), "{e}");
        // A folder is a folder; anything else is neither.
        assert_eq!(resolve_model_in(cache.to_str().unwrap(), &caches).unwrap().dir, cache);
        assert!(resolve_model_in("../x/y/z", &caches).unwrap_err().to_string().contains("no such folder"));
        let _ = std::fs::remove_dir_all(&root);
    }

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
