//! Whole-pipeline parity with diffusers' WanPipeline on tiny random-weight folders
//! (tools/make_fixtures.py): the same initial latents must give the same final latents
//! and the same frames (`output_type="np"`) at relative L2 <= 1e-4 in f32.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use tessera_pipeline::{GenerateParams, WanPipeline};

const TOL: f64 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tessera-models/tests/fixtures")
}

fn run_case(name: &str) {
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("pipelines.json")).unwrap()).unwrap();
    let case = cases.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no case {name}"));
    let refs = candle_core::safetensors::load(fixtures().join(case["file"].as_str().unwrap()), &Device::Cpu).unwrap();
    let pipe = WanPipeline::open(&models().join(case["model"].as_str().unwrap()), &Device::Cpu, DType::F32).unwrap();
    let params = GenerateParams {
        prompt: case["prompt"].as_str().unwrap().into(),
        negative_prompt: case["negative_prompt"].as_str().unwrap().into(),
        width: case["width"].as_u64().unwrap() as usize,
        height: case["height"].as_u64().unwrap() as usize,
        frames: case["frames"].as_u64().unwrap() as usize,
        steps: case["steps"].as_u64().unwrap() as usize,
        guidance: case["guidance"].as_f64().unwrap(),
        guidance_2: case.get("guidance_2").and_then(|g| g.as_f64()),
        max_sequence_length: case["max_sequence_length"].as_u64().unwrap() as usize,
        seed: 0,
        latents: Some(refs["latents"].clone()),
        flow_shift: None,
        given: None,
        edit: None,
        cache: None,
        calibrate_cache: false,
        quantize: None,
        gguf: Vec::new(),
    };
    pipe.validate(&params).unwrap();
    let mut stages = Vec::new();
    let mut progress = |p: tessera_pipeline::Progress| {
        if let tessera_pipeline::Progress::Stage(s) = p {
            stages.push(s.to_string())
        }
    };
    let (cond, uncond) = pipe.encode_text(&params, &mut progress).unwrap();
    let latents = pipe.denoise(&params, &cond, uncond.as_ref(), &mut progress).unwrap();
    let e_lat = rel_l2(&latents, &refs["final_latents"]);
    let frames = pipe.decode(&latents, &mut progress).unwrap();
    let e_frames = rel_l2(&frames, &refs["frames"]);
    println!("{name}: final latents rel L2 {e_lat:.2e}, frames rel L2 {e_frames:.2e}");
    assert!(e_lat <= TOL, "{name}: final latents rel L2 {e_lat:.3e} > {TOL:e}");
    assert!(e_frames <= TOL, "{name}: frames rel L2 {e_frames:.3e} > {TOL:e}");
    if case.get("guidance_2").is_some() {
        assert!(stages.iter().any(|s| s == "load transformer_2"), "second expert never ran: {stages:?}");
    }
}

#[test]
fn wan21_unipc_matches_diffusers() {
    run_case("wan21_unipc");
}

#[test]
fn wan21_euler_matches_diffusers() {
    run_case("wan21_euler");
}

#[test]
fn wan21_one_frame_image_matches_diffusers() {
    run_case("wan21_image");
}

#[test]
fn wan21_without_guidance_matches_diffusers() {
    run_case("wan21_noguidance");
}

#[test]
fn wan22_ti2v_matches_diffusers() {
    run_case("wan22_ti2v");
}

#[test]
fn wan22_two_experts_match_diffusers() {
    run_case("wan22_a14b");
}

#[test]
fn rejects_bad_sizes_and_frame_counts() {
    let pipe = WanPipeline::open(&models().join("wan21"), &Device::Cpu, DType::F32).unwrap();
    let base = GenerateParams { width: 48, height: 32, frames: 9, ..Default::default() };
    pipe.validate(&base).unwrap();
    let e = pipe.validate(&GenerateParams { frames: 10, ..base.clone() }).unwrap_err().to_string();
    assert!(e.contains("9 and 13"), "{e}");
    let e = pipe.validate(&GenerateParams { width: 50, ..base.clone() }).unwrap_err().to_string();
    assert!(e.contains("multiple of 16") && e.contains("64x32"), "{e}");
    let e = pipe
        .validate(&GenerateParams {
            latents: Some(Tensor::zeros((1, 16, 2, 4, 6), DType::F32, &Device::Cpu).unwrap()),
            ..base.clone()
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("[1, 16, 3, 4, 6]"), "{e}");
    // Wan 2.2 TI2V: VAE stride 16 times patch 2.
    let pipe22 = WanPipeline::open(&models().join("wan22_ti2v"), &Device::Cpu, DType::F32).unwrap();
    let e = pipe22.validate(&base).unwrap_err().to_string();
    assert!(e.contains("multiple of 32"), "{e}");
}

/// Relative L2 error, see tessera_models::testing.
fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    tessera_models::testing::rel_l2(a, b).expect("comparable tensors")
}
