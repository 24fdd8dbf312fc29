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
    let o = Command::new(bin).args(["train", "--config", dir.join("run.toml").to_str().unwrap(), "-q"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = dir.join("run/model");
    assert!(dir.join("run/log.csv").exists() && dir.join("run/curves.png").exists());
    let out = dir.join("clip.mp4");
    let o = Command::new(bin)
        .args(["generate", "a red ball bounces on a wooden floor", "--model", model.to_str().unwrap(), "--size", "32x32", "--frames", "5", "--steps", "3", "--max-sequence-length", "24", "-q", "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (frames, _) = tessera_media::read_video(&out).unwrap();
    assert_eq!((frames.len(), frames[0].width), (5, 32));
    let o = Command::new(bin).args(["train", "--config", dir.join("missing.toml").to_str().unwrap()]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).starts_with("error: "));
}
