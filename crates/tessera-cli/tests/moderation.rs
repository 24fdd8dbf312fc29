//! Prompt moderation at the CLI: a refused prompt is one clear line, a nonzero exit, no
//! output, and an entry in the audit log; `--policy FILE` replaces the default policy.

use std::path::Path;
use std::process::Command;

fn model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tessera-models/tests/fixtures/wan21").to_str().unwrap().to_string()
}

#[test]
fn refused_prompts_stop_before_any_work() {
    let dir = std::env::temp_dir().join(format!("tessera-moderation-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("audit.jsonl");
    let out = dir.join("out.mp4");
    let run = |prompt: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .env("TESSERA_AUDIT_LOG", &log)
            .args([
                "generate",
                prompt,
                "--model",
                &model(),
                "--size",
                "48x32",
                "--frames",
                "1",
                "--steps",
                "1",
                "--max-sequence-length",
                "16",
                "-q",
                "-o",
                out.to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run("a gruesome scene, graphic gore", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.starts_with("error: the prompt was refused") && err.contains("graphic-violence"),
        "{err}"
    );
    assert!(!out.exists());
    let entry: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&log).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(entry["category"], "graphic-violence");
    assert_eq!(entry["who"], "cli");

    // A policy of one's own replaces the default: "red" is now refused, gore is not.
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "[[category]]\nname = \"no-red\"\nmessage = \"Red is not allowed here.\"\nterms = [\"red\"]\n",
    )
    .unwrap();
    let o = run("a red ball", &["--policy", policy.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("Red is not allowed here."), "{err}");
    let o = run("a blue ball", &["--policy", policy.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.exists());
    std::fs::write(&policy, "[[category]]\nname = \"x\"\n").unwrap();
    let o = run("a blue ball", &["--policy", policy.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("policy.toml"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
