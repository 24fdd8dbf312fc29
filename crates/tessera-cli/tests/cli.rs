//! The `tessera generate` contract, run as a user runs it: the real binary on the tiny
//! fixture models. Errors must be one clear line, a nonzero exit, no panic and no output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{DType, Device, Tensor};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
    c.env("RAYON_NUM_THREADS", "2");
    // candle attaches backtraces to its errors when this is set; users must still see one line.
    c.env("RUST_BACKTRACE", "1");
    c
}

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tessera-models/tests/fixtures")
}

fn pipeline_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tessera-pipeline/tests/fixtures")
}

/// A fresh, empty scratch folder per test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tiny_args(out: &Path) -> Vec<String> {
    [
        "generate",
        "--model",
        models().join("wan21").to_str().unwrap(),
        "--prompt",
        "A red ball bounces on a wooden floor.",
        "--size",
        "48x32",
        "--frames",
        "9",
        "--steps",
        "2",
        "--max-sequence-length",
        "16",
        "--quiet",
        "-o",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a command that must fail cleanly, and returns its error text.
fn fails(args: &[String], out: &Path) -> String {
    let o = bin().args(args).output().unwrap();
    let err = stderr(&o);
    assert!(!o.status.success(), "expected failure, got success: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.starts_with("error: "), "not an error line: {err}");
    assert!(err.lines().count() <= 3, "more than a short error: {err}");
    assert!(!out.exists(), "partial output left at {}", out.display());
    err
}

#[test]
fn safetensors_output_matches_diffusers_frames() {
    let dir = scratch("parity");
    let refs =
        candle_core::safetensors::load(pipeline_fixtures().join("wan21_unipc.safetensors"), &Device::Cpu).unwrap();
    let lat = dir.join("latents.safetensors");
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("latents".to_string(), refs["latents"].clone())]),
        &lat,
    )
    .unwrap();
    let out = dir.join("frames.safetensors");
    let o = bin()
        .args([
            "generate",
            "--model",
            models().join("wan21").to_str().unwrap(),
            "--prompt",
            "A red ball bounces on a wooden floor.",
            "--negative-prompt",
            "blurry, low quality",
            "--size",
            "48x32",
            "--frames",
            "9",
            "--steps",
            "4",
            "--guidance",
            "5",
            "--max-sequence-length",
            "24",
            "--latents",
            lat.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // Not a terminal: plain progress lines with step counts.
    assert!(stderr(&o).contains("step 4/4"), "{}", stderr(&o));
    let frames = candle_core::safetensors::load(&out, &Device::Cpu).unwrap()["frames"].clone();
    assert_eq!(frames.dims(), &[9, 32, 48, 3]);
    let e = rel_l2(&frames, &refs["frames"]);
    assert!(e <= 1e-4, "frames rel L2 {e:.3e}");
}

#[test]
fn writes_mp4_gif_and_png() {
    let dir = scratch("formats");
    for ext in ["mp4", "gif", "png"] {
        let out = dir.join(format!("out.{ext}"));
        let o = bin().args(tiny_args(&out)).output().unwrap();
        assert!(o.status.success(), "{ext}: {}", stderr(&o));
        assert!(o.stderr.is_empty(), "--quiet printed: {}", stderr(&o));
        let (frames, _fps) = tessera_media::read_video(&out).unwrap();
        assert_eq!(frames.len(), if ext == "png" { 1 } else { 9 }, "{ext}");
        assert_eq!((frames[0].width, frames[0].height), (48, 32), "{ext}");
    }
}

#[test]
fn bad_input_is_one_clear_error() {
    let dir = scratch("errors");
    let out = dir.join("out.mp4");
    let with = |f: &dyn Fn(&mut Vec<String>)| {
        let mut a = tiny_args(&out);
        f(&mut a);
        a
    };
    let set = |a: &mut Vec<String>, flag: &str, v: &str| {
        let i = a.iter().position(|x| x == flag).unwrap();
        a[i + 1] = v.to_string();
    };

    let e = fails(&with(&|a| set(a, "--frames", "10")), &out);
    assert!(e.contains("9 and 13"), "{e}");
    let e = fails(&with(&|a| set(a, "--size", "50x32")), &out);
    assert!(e.contains("50x32") && e.contains("multiple of 16"), "{e}");
    let e = fails(&with(&|a| set(a, "--size", "fifty")), &out);
    assert!(e.contains("WIDTHxHEIGHT"), "{e}");
    let e = fails(&with(&|a| set(a, "--model", "/nonexistent/model")), &out);
    assert!(e.contains("/nonexistent/model"), "{e}");
    let bad_out = dir.join("out.avi");
    let e = fails(&with(&|a| set(a, "-o", bad_out.to_str().unwrap())), &bad_out);
    assert!(e.contains(".avi") || e.contains("\"avi\""), "{e}");

    // A latents file without the `latents` tensor, and one with the wrong shape.
    let lat = dir.join("lat.safetensors");
    let zeros = Tensor::zeros((1, 16, 2, 4, 6), DType::F32, &Device::Cpu).unwrap();
    candle_core::safetensors::save(&std::collections::HashMap::from([("noise".to_string(), zeros.clone())]), &lat)
        .unwrap();
    let e = fails(&with(&|a| a.extend(["--latents".into(), lat.to_str().unwrap().into()])), &out);
    assert!(e.contains("latents") && e.contains("noise"), "{e}");
    candle_core::safetensors::save(&std::collections::HashMap::from([("latents".to_string(), zeros)]), &lat).unwrap();
    let e = fails(&with(&|a| a.extend(["--latents".into(), lat.to_str().unwrap().into()])), &out);
    assert!(e.contains("[1, 16, 3, 4, 6]"), "{e}");
    let e = fails(&with(&|a| a.extend(["--latents".into(), "/nonexistent.safetensors".into()])), &out);
    assert!(e.contains("/nonexistent.safetensors"), "{e}");
}

/// Copies a fixture model so a test can break one file of it.
fn copy_model(name: &str, to: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dst = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &dst);
            } else {
                std::fs::copy(e.path(), dst).unwrap();
            }
        }
    }
    let dst = to.join(name);
    copy(&models().join(name), &dst);
    dst
}

#[test]
fn broken_model_folders_name_the_file() {
    let dir = scratch("broken");
    let out = dir.join("out.png");

    // Unknown class in a config.
    let m = copy_model("wan21", &dir.join("a"));
    let cfg = m.join("transformer/config.json");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("WanTransformer3DModel", "FluxTransformer2DModel");
    std::fs::write(&cfg, text).unwrap();
    let mut a = tiny_args(&out);
    a[2] = m.to_str().unwrap().into();
    let e = fails(&a, &out);
    assert!(e.contains("FluxTransformer2DModel") && e.contains("config.json"), "{e}");

    // A tensor missing from the weights.
    let m = copy_model("wan21", &dir.join("b"));
    let w = m.join("transformer/diffusion_pytorch_model.safetensors");
    let mut t = candle_core::safetensors::load(&w, &Device::Cpu).unwrap();
    t.remove("proj_out.weight").unwrap();
    candle_core::safetensors::save(&t, &w).unwrap();
    a[2] = m.to_str().unwrap().into();
    let e = fails(&a, &out);
    assert!(e.contains("proj_out.weight") && e.contains("transformer"), "{e}");

    // A tensor of the wrong shape.
    let m = copy_model("wan21", &dir.join("c"));
    let w = m.join("transformer/diffusion_pytorch_model.safetensors");
    let mut t = candle_core::safetensors::load(&w, &Device::Cpu).unwrap();
    t.insert("proj_out.weight".into(), Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap());
    candle_core::safetensors::save(&t, &w).unwrap();
    a[2] = m.to_str().unwrap().into();
    let e = fails(&a, &out);
    assert!(e.contains("proj_out.weight") && e.contains("shape"), "{e}");

    // A missing weights file.
    let m = copy_model("wan21", &dir.join("d"));
    std::fs::remove_file(m.join("vae/diffusion_pytorch_model.safetensors")).unwrap();
    a[2] = m.to_str().unwrap().into();
    let e = fails(&a, &out);
    assert!(e.contains("vae"), "{e}");
}

/// Relative L2 error, see tessera_models::testing.
fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    tessera_models::testing::rel_l2(a, b).expect("comparable tensors")
}

/// `--model OWNER/NAME[@REVISION]` loads a model from the local Hugging Face cache (its
/// snapshot folder, here a link to the fixture as the hub's blobs are linked), with no
/// network access, to the same frames as the folder itself; a name not in the cache is one
/// clear error that says where it looked.
#[test]
fn hugging_face_names_load_from_the_local_cache() {
    let dir = scratch("hf-cache");
    let hub = dir.join("hub");
    let repo = hub.join("models--tessera-test--tiny-wan21");
    let commit = "89abcdef0123456789abcdef0123456789abcdef";
    std::fs::create_dir_all(repo.join("snapshots")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    let fixture = std::fs::canonicalize(models().join("wan21")).unwrap();
    std::os::unix::fs::symlink(&fixture, repo.join("snapshots").join(commit)).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    let with_model = |model: &str, out: &Path| -> Vec<String> {
        let mut a = tiny_args(out);
        a[2] = model.to_string();
        a
    };
    let frames = |p: &Path| candle_core::safetensors::load(p, &Device::Cpu).unwrap()["frames"].clone();
    let (by_folder, by_name) = (dir.join("folder.safetensors"), dir.join("name.safetensors"));
    for (model, out) in [(fixture.to_str().unwrap(), &by_folder), ("tessera-test/tiny-wan21", &by_name)] {
        let o = bin().args(with_model(model, out)).env("HF_HUB_CACHE", &hub).output().unwrap();
        assert!(o.status.success(), "{model}: {}", stderr(&o));
    }
    assert_eq!(rel_l2(&frames(&by_folder), &frames(&by_name)), 0.0);
    let pinned = dir.join("pinned.safetensors");
    let o = bin()
        .args(with_model(&format!("tessera-test/tiny-wan21@{commit}"), &pinned))
        .env("HF_HUB_CACHE", &hub)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let missing = dir.join("missing.safetensors");
    let mut cmd = bin();
    cmd.args(with_model("tessera-test/not-downloaded", &missing)).env("HF_HUB_CACHE", &hub);
    let o = cmd.output().unwrap();
    let e = stderr(&o);
    assert!(!o.status.success() && e.starts_with("error: "), "{e}");
    assert!(e.contains("models--tessera-test--not-downloaded") && e.contains("huggingface-cli download"), "{e}");
    assert!(!missing.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// GGUF transformers, as a user arranges them: a model folder whose transformer/ holds one
/// .gguf file (config beside it) generates with no flag; `--gguf FILE` takes the weights
/// from a named file instead, to other frames; a file that does not fit the folder's
/// config, one file too many, or a file that is not GGUF is one clear error.
#[test]
fn gguf_transformers_generate() {
    let dir = scratch("gguf");
    let m = copy_model("wan21", &dir.join("m"));
    std::fs::remove_dir_all(m.join("transformer")).unwrap();
    let gguf = models().join("gguf");
    std::fs::create_dir_all(m.join("transformer")).unwrap();
    for f in ["config.json", "wan-tiny-mixed.gguf"] {
        std::fs::copy(gguf.join("transformer").join(f), m.join("transformer").join(f)).unwrap();
    }
    let run = |extra: &[&str], out: &Path| {
        let mut a = tiny_args(out);
        a[2] = m.to_str().unwrap().into();
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push("--no-provenance".into());
        let o = bin().args(&a).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let t = candle_core::safetensors::load(out, &Device::Cpu).unwrap();
        t["frames"].clone()
    };
    let mixed = run(&[], &dir.join("mixed.safetensors"));
    let q8 = gguf.join("wan-tiny-q8_0-diffusers.gguf");
    let named = run(&["--gguf", q8.to_str().unwrap()], &dir.join("q8.safetensors"));
    let d = rel_l2(&mixed, &named);
    assert!(d > 0.0, "the named file was not used");

    let out = dir.join("bad.png");
    let mut a = tiny_args(&out);
    a[2] = m.to_str().unwrap().into();
    a.extend(["--gguf".into(), q8.to_str().unwrap().into(), "--gguf".into(), q8.to_str().unwrap().into()]);
    let e = fails(&a, &out);
    assert!(e.contains("--gguf is given 2 times"), "{e}");

    let mut a = tiny_args(&out);
    a.extend(["--gguf".into(), q8.to_str().unwrap().into()]);
    let e = fails(&a, &out);
    assert!(e.contains("wan-tiny-q8_0-diffusers.gguf") && e.contains("shape"), "{e}");

    let mut a = tiny_args(&out);
    let not_gguf = m.join("transformer/config.json");
    a.extend(["--gguf".into(), not_gguf.to_str().unwrap().into()]);
    let e = fails(&a, &out);
    assert!(e.contains("not a GGUF file"), "{e}");
}

/// `--vae-tiling`: frames larger than a tile (256 pixels) decode in tiles when on, which
/// moves the tiny random VAE's output near the seams; frames within one tile are decoded
/// whole either way; `auto` leaves a 320x256 frame whole.
#[test]
fn vae_tiling_flag() {
    let dir = scratch("tiling");
    let run = |size: &str, tiling: &str| {
        let out = dir.join(format!("{size}-{tiling}.safetensors"));
        let mut a = tiny_args(&out);
        a[6] = size.into();
        a.extend(["--vae-tiling".into(), tiling.into(), "--no-provenance".into()]);
        let o = bin().args(&a).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        candle_core::safetensors::load(&out, &Device::Cpu).unwrap()["frames"].clone()
    };
    let (on, off, auto) = (run("320x256", "on"), run("320x256", "off"), run("320x256", "auto"));
    assert!(rel_l2(&on, &off) > 1e-3, "tiling changed nothing");
    assert_eq!(rel_l2(&auto, &off), 0.0);
    assert_eq!(rel_l2(&run("48x32", "on"), &run("48x32", "off")), 0.0);
    let out = dir.join("x.png");
    let mut a = tiny_args(&out);
    a.extend(["--vae-tiling".into(), "sometimes".into()]);
    let o = bin().args(&a).output().unwrap();
    assert!(!o.status.success() && stderr(&o).contains("auto, on, off"), "{}", stderr(&o));
}
