//! The built-in model (models/tessera-world, in the repository): `tessera generate` and
//! `tessera image` use it when no --model is given, it fits the 40 MB, and it
//! loads in the diffusers layout with its tessera.json defaults (12 fps, 128x128, 25
//! frames).

use std::path::{Path, PathBuf};
use std::process::Command;

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/tessera-world")
}

fn size_of(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                size_of(&e.path())
            } else {
                e.metadata().unwrap().len()
            }
        })
        .sum()
}

#[test]
fn builtin_model_is_the_default() {
    let dir = model_dir();
    assert!(dir.join("model_index.json").is_file(), "models/tessera-world is missing");
    let bytes = size_of(&dir);
    assert!(bytes <= 40 * 1024 * 1024, "the built-in model is {bytes} bytes, over 40 MB");
    let defaults: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("tessera.json")).unwrap()).unwrap();
    assert_eq!((defaults["fps"].as_f64(), defaults["frames"].as_u64()), (Some(12.0), Some(25)));

    let out = std::env::temp_dir().join(format!("tessera-builtin-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    // An image with no --model, through the prompt expansion, at the model's size.
    let png = out.join("ball.png");
    let o = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .env("RAYON_NUM_THREADS", "2")
        .env_remove("TESSERA_MODEL")
        .args(["image", "a red ball bounces on a wooden floor", "--steps", "2", "-q", "-o", png.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (frames, _) = tessera_media::read_video(&png).unwrap();
    assert_eq!((frames[0].width, frames[0].height), (128, 128));
    // A short clip with --seconds at the model's 12 fps: 0.4 s -> 5 frames.
    let gif = out.join("ball.gif");
    let o = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .env("RAYON_NUM_THREADS", "2")
        .env_remove("TESSERA_MODEL")
        .args([
            "generate",
            "a red ball bounces on a wooden floor",
            "--seconds",
            "0.4",
            "--steps",
            "2",
            "-q",
            "-o",
            gif.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (frames, _) = tessera_media::read_video(&gif).unwrap();
    assert_eq!(frames.len(), 5);
    let _ = std::fs::remove_dir_all(&out);
}

/// `--quantize` on the built-in model (its widths, 256 and 1024, take both formats): the
/// image stays close to the f32 one, closer at 8 bits than at 4, and not identical.
#[test]
fn quantized_weights_give_nearly_the_same_image() {
    let out = std::env::temp_dir().join(format!("tessera-quantize-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let image = |flags: &[&str], name: &str| {
        let path = out.join(name);
        let o = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .env("RAYON_NUM_THREADS", "2")
            .env_remove("TESSERA_MODEL")
            .args(["image", "a red ball bounces on a wooden floor", "--steps", "3", "--no-provenance", "-q", "-o"])
            .arg(&path)
            .args(flags)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let t = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
        t["frames"].flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    let psnr = |a: &[f32], b: &[f32]| {
        let mse = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / a.len() as f64;
        10.0 * (1.0 / mse).log10()
    };
    let f32_frames = image(&[], "f32.safetensors");
    let q8 = image(&["--quantize", "q8_0"], "q8.safetensors");
    let q4 = image(&["--quantize", "q4_k"], "q4.safetensors");
    let (p8, p4) = (psnr(&q8, &f32_frames), psnr(&q4, &f32_frames));
    assert!(p8.is_finite() && p8 > 40.0, "q8_0: {p8:.1} dB");
    assert!(p4 > 30.0 && p4 < p8, "q4_k: {p4:.1} dB (q8_0 {p8:.1} dB)");
    let o = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["image", "a red ball", "--quantize", "q5_k", "-o"])
        .arg(out.join("never.png"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("q8_0, q4_k"), "{err}");
    std::fs::remove_dir_all(&out).unwrap();
}
