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
