//! Step caching against diffusers' own hooks (`FirstBlockCacheConfig`, `MagCacheConfig`)
//! on the tiny wan21 folder (tools/make_fixtures.py, `caches`): the same steps are skipped
//! and the final latents agree at relative L2 <= 1e-4; MagCache's calibration measures the
//! same ratios.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use tessera_pipeline::{CacheKind, GenerateParams, Progress, StepCache, WanPipeline};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tessera-models/tests/fixtures/wan21")
}

struct Case {
    json: serde_json::Value,
    refs: std::collections::HashMap<String, Tensor>,
}

fn case() -> Case {
    let json = serde_json::from_str(&std::fs::read_to_string(fixtures().join("cache.json")).unwrap()).unwrap();
    let refs = candle_core::safetensors::load(fixtures().join("cache.safetensors"), &Device::Cpu).unwrap();
    Case { json, refs }
}

impl Case {
    fn params(&self) -> GenerateParams {
        let c = &self.json;
        let n = |k: &str| c[k].as_u64().unwrap() as usize;
        GenerateParams {
            prompt: c["prompt"].as_str().unwrap().into(),
            negative_prompt: c["negative_prompt"].as_str().unwrap().into(),
            width: n("width"),
            height: n("height"),
            frames: n("frames"),
            steps: n("steps"),
            guidance: c["guidance"].as_f64().unwrap(),
            max_sequence_length: n("max_sequence_length"),
            latents: Some(self.refs["latents"].clone()),
            ..Default::default()
        }
    }
}

/// Final latents, and (computed, skipped, ratios) from the cache report.
fn run(dir: &Path, p: &GenerateParams) -> (Tensor, Option<(usize, usize, Vec<f64>)>) {
    let pipe = WanPipeline::open(dir, &Device::Cpu, DType::F32).unwrap();
    pipe.validate(p).unwrap();
    let (cond, uncond) = pipe.encode_text(p, &mut |_| {}).unwrap();
    let mut report = None;
    let latents = pipe
        .denoise(p, &cond, uncond.as_ref(), &mut |ev| {
            if let Progress::Cached { computed, skipped, ratios } = ev {
                report = Some((computed, skipped, ratios.to_vec()));
            }
        })
        .unwrap();
    (latents, report)
}

fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    tessera_models::testing::rel_l2(a, b).expect("comparable tensors")
}

#[test]
fn first_block_cache_skips_the_steps_diffusers_skips() {
    let c = case();
    let passes = c.json["passes"].as_u64().unwrap() as usize;
    let (plain, report) = run(&model(), &c.params());
    assert!(report.is_none(), "no cache, no report");
    let e = rel_l2(&plain, &c.refs["plain"]);
    assert!(e <= 1e-4, "uncached: rel L2 {e:.2e}");

    let threshold = c.json["first_block_threshold"].as_f64().unwrap();
    let p = GenerateParams {
        cache: Some(StepCache { kind: CacheKind::FirstBlock, threshold: Some(threshold) }),
        ..c.params()
    };
    let (cached, report) = run(&model(), &p);
    let (computed, skipped, _) = report.expect("a cache report");
    assert_eq!(computed, c.json["first_block_computed"].as_u64().unwrap() as usize);
    assert_eq!(computed + skipped, passes);
    assert!(skipped > 0, "the fixture's threshold skips some passes");
    let e = rel_l2(&cached, &c.refs["first_block"]);
    assert!(e <= 1e-4, "first-block: rel L2 {e:.2e} against diffusers");
    assert!(rel_l2(&cached, &plain) > 1e-3, "skipping changed the result");

    // A threshold nothing passes gives the uncached result exactly.
    let p =
        GenerateParams { cache: Some(StepCache { kind: CacheKind::FirstBlock, threshold: Some(1e-12) }), ..c.params() };
    let (same, report) = run(&model(), &p);
    assert_eq!(report.unwrap().1, 0);
    assert_eq!(rel_l2(&same, &plain), 0.0);
}

#[test]
fn magcache_calibrates_and_skips_as_diffusers() {
    let c = case();
    let want: Vec<f64> = c.json["mag_ratios"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();

    // Calibration: the conditional pass's ratios, one per step.
    let p = GenerateParams { calibrate_cache: true, ..c.params() };
    let (calibrated, report) = run(&model(), &p);
    let (_, skipped, ratios) = report.unwrap();
    assert_eq!(skipped, 0);
    assert_eq!(ratios.len(), want.len());
    for (i, (a, b)) in ratios.iter().zip(&want).enumerate() {
        assert!((a - b).abs() < 1e-4, "ratio at step {i}: {a} vs diffusers {b}");
    }
    assert!(rel_l2(&calibrated, &c.refs["plain"]) <= 1e-4, "calibration changes nothing");

    // MagCache reads the ratios from the model's tessera.json.
    let dir = std::env::temp_dir().join(format!("tessera-magcache-{}", std::process::id()));
    copy_dir(&model(), &dir);
    let p = GenerateParams {
        cache: Some(StepCache { kind: CacheKind::MagCache, threshold: c.json["mag_threshold"].as_f64() }),
        ..c.params()
    };
    let pipe = WanPipeline::open(&dir, &Device::Cpu, DType::F32).unwrap();
    let e = pipe.validate(&p).unwrap_err().to_string();
    assert!(e.contains("tessera cache-calibrate"), "{e}");
    std::fs::write(dir.join("tessera.json"), serde_json::json!({ "mag_ratios": want }).to_string()).unwrap();
    let (cached, report) = run(&dir, &p);
    std::fs::remove_dir_all(&dir).unwrap();
    let (computed, skipped, _) = report.unwrap();
    assert_eq!(computed, c.json["mag_computed"].as_u64().unwrap() as usize);
    assert_eq!(computed + skipped, c.json["passes"].as_u64().unwrap() as usize);
    let e = rel_l2(&cached, &c.refs["magcache"]);
    assert!(e <= 1e-4, "magcache: rel L2 {e:.2e} against diffusers");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}
