//! Tasks against diffusers on tiny random-weight fixtures (tools/task_fixtures.py):
//! image-to-video (first frame; first and last frame) with WanImageToVideoPipeline on a
//! model with Wan's image-to-video layout, and SDEdit with WanVideoToVideoPipeline on the
//! Wan 2.1 text-to-video fixture. The issue asks for relative L2 <= 1e-3; in f32 the
//! frames agree far closer, and the test holds them to 1e-4.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use tessera_pipeline::{Edit, GenerateParams, Given, WanPipeline};

const TOL: f64 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tessera-models/tests/fixtures")
}

fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_dtype(DType::F64).unwrap();
    let b = b.to_dtype(DType::F64).unwrap();
    let num = (&a - &b).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    let den = b.sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    (num / den).sqrt()
}

fn run_case(name: &str) {
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("tasks.json")).unwrap()).unwrap();
    let case = cases.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no case {name}"));
    let refs = candle_core::safetensors::load(fixtures().join(case["file"].as_str().unwrap()), &Device::Cpu).unwrap();
    let pipe = WanPipeline::open(&models().join(case["model"].as_str().unwrap()), &Device::Cpu, DType::F32).unwrap();
    let n = case["num_frames"].as_u64().unwrap() as usize;
    let (w, h) = (case["width"].as_u64().unwrap() as usize, case["height"].as_u64().unwrap() as usize);
    let mut params = GenerateParams {
        prompt: case["prompt"].as_str().unwrap().into(),
        negative_prompt: case["negative_prompt"].as_str().unwrap().into(),
        width: w,
        height: h,
        frames: n,
        steps: case["num_inference_steps"].as_u64().unwrap() as usize,
        guidance: case["guidance_scale"].as_f64().unwrap(),
        max_sequence_length: case["max_sequence_length"].as_u64().unwrap() as usize,
        latents: Some(refs["latents"].clone()),
        ..Default::default()
    };
    if let Some(image) = refs.get("image") {
        // (3, H, W) in [-1, 1] at frame 0 (and the last image at the last frame).
        let mut frames = vec![Tensor::zeros((3, 1, h, w), DType::F32, &Device::Cpu).unwrap(); n];
        let mut mask = vec![false; n];
        frames[0] = image.unsqueeze(1).unwrap();
        mask[0] = true;
        if let Some(last) = refs.get("last_image") {
            frames[n - 1] = last.unsqueeze(1).unwrap();
            mask[n - 1] = true;
        }
        let video = Tensor::cat(&frames, 1).unwrap().unsqueeze(0).unwrap();
        params.given = Some(Given::new(video, mask).unwrap());
    }
    if let Some(video) = refs.get("video") {
        params.edit = Some(Edit { video: video.unsqueeze(0).unwrap(), strength: case["strength"].as_f64().unwrap() });
    }
    let frames = pipe.generate(&params, &mut |_| {}).unwrap();
    let e = rel_l2(&frames, &refs["frames"]);
    println!("{name}: frames rel L2 {e:.2e}");
    assert!(e <= TOL, "{name}: frames rel L2 {e:.3e} > {TOL:e}");
}

#[test]
fn image_to_video_first_frame_matches_diffusers() {
    run_case("i2v_first");
}

#[test]
fn image_to_video_first_and_last_frame_matches_diffusers() {
    run_case("i2v_first_last");
}

#[test]
fn video_to_video_matches_diffusers() {
    run_case("v2v_60");
    run_case("v2v_100");
}

/// Wan 2.1 image-to-video: the transformer also reads CLIP features of the image
/// (a CLIPVisionModel image encoder, its penultimate hidden states).
#[test]
fn image_to_video_with_clip_image_encoder_matches_diffusers() {
    run_case("i2v_clip");
}

/// Wan 2.2 TI2V (text-to-video weights with per-token timesteps): the image's latents
/// replace latent frame 0 and its tokens run at timestep 0, as diffusers'
/// WanImageToVideoPipeline does with expand_timesteps.
#[test]
fn ti2v_image_to_video_matches_diffusers() {
    run_case("ti2v");
}
