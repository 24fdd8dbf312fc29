//! `tessera train` then `tessera generate` with what it exported: the trainer's output is a
//! model the engine runs.

use std::path::Path;
use std::process::Command;

#[test]
fn train_then_generate() {
    let dir = std::env::temp_dir().join(format!("tessera-cli-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let vae = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tessera-models/tests/fixtures/wan21/vae");
    let config = format!(
        "out = \"run\"\nvae = \"{}\"\nsteps = 3\nbatch = 1\ncheckpoint_every = 3\n[data]\nbuckets = [\"32x32x5\"]\n[transformer]\nlayers = 1\nheads = 2\nhead_dim = 8\nffn = 32\n[text]\ndim = 16\nlayers = 1\nheads = 2\nmax_tokens = 24\n",
        vae.display()
    );
    std::fs::write(dir.join("run.toml"), config).unwrap();
    let bin = env!("CARGO_BIN_EXE_tessera");
    let o =
        Command::new(bin).args(["train", "--config", dir.join("run.toml").to_str().unwrap(), "-q"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = dir.join("run/model");
    assert!(dir.join("run/log.csv").exists() && dir.join("run/curves.png").exists());
    let out = dir.join("clip.mp4");
    let o = Command::new(bin)
        .args([
            "generate",
            "a red ball bounces on a wooden floor",
            "--model",
            model.to_str().unwrap(),
            "--size",
            "32x32",
            "--frames",
            "5",
            "--steps",
            "3",
            "--max-sequence-length",
            "24",
            "-q",
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (frames, _) = tessera_media::read_video(&out).unwrap();
    assert_eq!((frames.len(), frames[0].width), (5, 32));
    // The model's own defaults (tessera.json): size, frame rate, and prompt expansion;
    // --seconds counts frames at the model's 12 fps: 0.4 s -> 4.8 -> 5 frames.
    let gif = dir.join("clip.gif");
    let o = Command::new(bin)
        .args([
            "generate",
            "red ball bouncing",
            "--model",
            model.to_str().unwrap(),
            "--seconds",
            "0.4",
            "--steps",
            "2",
            "-o",
            gif.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("prompt expanded: ") && err.contains("red ball"), "{err}");
    let (frames, fps) = tessera_media::read_video(&gif).unwrap();
    assert_eq!((frames.len(), frames[0].width, frames[0].height), (5, 32, 32));
    assert!((fps - 12.0).abs() < 0.5, "{fps}");
    // Words outside the world's vocabulary are skipped with a warning that names them and
    // the way to give the model the prompt as it is (issue 28); a prompt that names no
    // object still yields a video.
    let o = Command::new(bin)
        .args([
            "generate",
            "a giraffe dances",
            "--model",
            model.to_str().unwrap(),
            "--steps",
            "1",
            "-q",
            "-o",
            gif.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("warning: ignored words outside the world's vocabulary: giraffe, dances"), "{err}");
    assert!(err.contains("--no-expand") && err.contains("names no object"), "{err}");
    assert!(tessera_media::read_video(&gif).is_ok());
    let o = Command::new(bin)
        .args([
            "generate",
            "a giraffe dances",
            "--no-expand",
            "--model",
            model.to_str().unwrap(),
            "--frames",
            "1",
            "--steps",
            "1",
            "-q",
            "-o",
            dir.join("img.png").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(bin).args(["train", "--config", dir.join("missing.toml").to_str().unwrap()]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).starts_with("error: "));
}
