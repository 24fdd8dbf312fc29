//! The tasks of `tessera generate` (image-to-video, keyframes, extension both ways,
//! connecting, loops, in-betweening, edits, windowed long videos) run as a user runs
//! them, on two tiny models: a model trained here for two steps (the image-to-video
//! layout, with mask channels, as the built-in model) and the random-weight Wan 2.1
//! text-to-video fixture (conditioning by replacement).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tessera_media::Frame;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
    c.env("RAYON_NUM_THREADS", "2");
    c
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tessera-models/tests/fixtures")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-tasks-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn ok(args: &[&str]) {
    let o = run(args);
    assert!(o.status.success(), "{:?}: {}", args, String::from_utf8_lossy(&o.stderr));
}

/// A failure: one `error:` line, a nonzero exit, no output file.
fn fails(args: &[&str], out: &Path) -> String {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{args:?} should fail");
    assert!(err.starts_with("error: ") && !err.contains("panicked"), "{err}");
    assert!(!out.exists(), "a failed run left {}", out.display());
    err
}

/// Frames of an input or output; outputs are .safetensors (f32 [T, H, W, 3], exact).
fn frames(path: &Path) -> Vec<Frame> {
    if path.extension().is_some_and(|e| e == "safetensors") {
        let t = candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap().remove("frames").unwrap();
        let (n, h, w, _) = t.dims4().unwrap();
        let data: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        return tessera_media::frames_from_f32(&data, n, h, w).unwrap();
    }
    tessera_media::read_video(path).unwrap().0
}

fn solid(w: usize, h: usize, rgb: [u8; 3]) -> Frame {
    Frame::new(w, h, rgb.iter().copied().cycle().take(w * h * 3).collect()).unwrap()
}

/// Writes a lossless GIF clip of `n` frames (a square moving across a coloured field).
fn clip(path: &Path, n: usize, w: usize, h: usize, fps: f64, base: [u8; 3]) {
    let frames: Vec<Frame> = (0..n)
        .map(|i| {
            let mut f = solid(w, h, base);
            for y in h / 4..h / 2 {
                for x in (i * 2) % w..((i * 2) % w + 6).min(w) {
                    f.data[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[255, 255, 255]);
                }
            }
            f
        })
        .collect();
    tessera_media::write_video(path, &frames, fps, &Default::default()).unwrap();
}

/// A model with Wan's image-to-video layout, trained for two steps (the weights need not
/// be good: the tests check the mechanics). Its tessera.json says 5-frame clips at 12 fps,
/// 32x32.
fn trained_model(dir: &Path) -> PathBuf {
    let vae = fixtures().join("wan21/vae");
    let config = format!(
        "out = \"run\"\nvae = \"{}\"\nsteps = 2\nbatch = 1\ncheckpoint_every = 2\n[data]\nbuckets = [\"32x32x5\"]\n[transformer]\nlayers = 1\nheads = 2\nhead_dim = 8\nffn = 32\n[text]\ndim = 16\nlayers = 1\nheads = 2\nmax_tokens = 24\n",
        vae.display()
    );
    std::fs::write(dir.join("run.toml"), config).unwrap();
    ok(&["train", "--config", dir.join("run.toml").to_str().unwrap(), "-q"]);
    dir.join("run/model")
}

#[test]
fn every_task_on_a_model_with_mask_channels() {
    let dir = scratch("i2v");
    let model = trained_model(&dir);
    let m = model.to_str().unwrap();
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let base = ["--model", m, "--steps", "2", "--no-expand", "-q"];
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["generate", "a red ball"].iter().map(|s| s.to_string()).collect();
        v.extend(base.iter().map(|s| s.to_string()));
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let go = |extra: &[&str]| {
        let a = with(extra);
        ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    };
    let image = dir.join("image.png");
    tessera_media::write_video(&image, &[solid(64, 48, [200, 30, 40])], 1.0, &Default::default()).unwrap();
    let fitted = tessera_media::fit(&frames(&image)[0], 32, 32, tessera_media::Fit::Crop);

    // Image to video: the image is frame 0 (fitted to 32x32 by cropping).
    go(&["--image", &p("image.png"), "-o", &p("i2v.safetensors")]);
    let v = frames(&dir.join("i2v.safetensors"));
    assert_eq!(v.len(), 5);
    assert!(v[0].psnr(&fitted) >= 30.0, "{}", v[0].psnr(&fitted));

    // Last frame, and first and last.
    go(&["--image", &p("image.png"), "--last-image", &p("image.png"), "--seconds", "0.6", "-o", &p("fl.safetensors")]);
    let v = frames(&dir.join("fl.safetensors"));
    assert_eq!(v.len(), 9);
    assert!(v[0].psnr(&fitted) >= 30.0 && v[8].psnr(&fitted) >= 30.0);

    // A keyframe at 0.25 s = frame 3 of 5 at 12 fps.
    go(&["--keyframe", &format!("{}@0.25", p("image.png")), "-o", &p("kf.safetensors")]);
    let v = frames(&dir.join("kf.safetensors"));
    assert!(v[3].psnr(&fitted) >= 30.0);

    // A loop ends on its first frame.
    go(&["--loop", "--seconds", "0.6", "-o", &p("loop.safetensors")]);
    let v = frames(&dir.join("loop.safetensors"));
    assert!(v[0].psnr(&v[v.len() - 1]) >= 30.0);

    // Extension: the whole video comes back, then (or after) 1 s at 12 fps = 12 frames.
    clip(&dir.join("in.gif"), 10, 32, 32, 12.0, [20, 120, 60]);
    let input = frames(&dir.join("in.gif"));
    go(&["--video", &p("in.gif"), "--extend", "forward", "--seconds", "1", "-o", &p("fwd.safetensors")]);
    let v = frames(&dir.join("fwd.safetensors"));
    assert_eq!(v.len(), 22);
    for i in 0..10 {
        assert!(v[i].psnr(&input[i]) >= 30.0, "frame {i}");
    }
    go(&["--video", &p("in.gif"), "--extend", "backward", "--seconds", "1", "-o", &p("bwd.safetensors")]);
    let v = frames(&dir.join("bwd.safetensors"));
    assert_eq!(v.len(), 22);
    for i in 0..10 {
        assert!(v[12 + i].psnr(&input[i]) >= 30.0, "frame {i}");
    }

    // Connect: A, a transition, B; A and B come back whole.
    clip(&dir.join("b.gif"), 6, 32, 32, 12.0, [140, 40, 160]);
    let b = frames(&dir.join("b.gif"));
    go(&["--connect", &p("in.gif"), &p("b.gif"), "--seconds", "0.5", "-o", &p("conn.safetensors")]);
    let v = frames(&dir.join("conn.safetensors"));
    assert!(v.len() >= 10 + 6 + 6, "{}", v.len());
    assert!(v[0].psnr(&input[0]) >= 30.0 && v[v.len() - 1].psnr(&b[5]) >= 30.0);

    // In-between: 6 fps to 12 fps, every input frame kept at twice its index.
    clip(&dir.join("slow.gif"), 5, 32, 32, 6.0, [90, 90, 20]);
    let slow = frames(&dir.join("slow.gif"));
    go(&["--interpolate", &p("slow.gif"), "--fps", "12", "-o", &p("fast.safetensors")]);
    let v = frames(&dir.join("fast.safetensors"));
    assert_eq!(v.len(), 9);
    for i in 0..5 {
        assert!(v[2 * i].psnr(&slow[i]) >= 30.0, "frame {i}");
    }

    // Edit: as long as its input.
    go(&["--edit", &p("in.gif"), "--strength", "0.5", "-o", &p("edit.safetensors")]);
    assert_eq!(frames(&dir.join("edit.safetensors")).len(), 10);

    // Longer than the model's 5-frame window: windows of forward extension.
    go(&["--seconds", "2", "-o", &p("long.safetensors")]);
    assert_eq!(frames(&dir.join("long.safetensors")).len(), 25);

    // Images of another size.
    ok(&[
        "image",
        "a red ball",
        "--model",
        m,
        "--steps",
        "1",
        "--no-expand",
        "-q",
        "--size",
        "48x32",
        "-o",
        &p("still.png"),
    ]);
    let still = frames(&dir.join("still.png"));
    assert_eq!((still.len(), still[0].width, still[0].height), (1, 48, 32));

    // Bad input: one clear line, no output.
    let out = dir.join("bad.gif");
    let o = p("bad.gif");
    let args = |extra: &[&str]| with(&[extra, &["-o", &o]].concat());
    let e = fails(
        &args(&["--keyframe", &format!("{}@3", p("image.png"))]).iter().map(String::as_str).collect::<Vec<_>>(),
        &out,
    );
    assert!(e.contains("beyond"), "{e}");
    let e = fails(
        &args(&["--edit", &p("in.gif"), "--strength", "1.5"]).iter().map(String::as_str).collect::<Vec<_>>(),
        &out,
    );
    assert!(e.contains("`strength` must be between 0 and 1"), "{e}");
    let e = fails(&args(&["--image", &p("missing.png")]).iter().map(String::as_str).collect::<Vec<_>>(), &out);
    assert!(e.contains("missing.png"), "{e}");
    let e = fails(
        &args(&["--edit", &p("in.gif"), "--interpolate", &p("in.gif")]).iter().map(String::as_str).collect::<Vec<_>>(),
        &out,
    );
    assert!(e.contains("cannot go together"), "{e}");
    let e = fails(
        &args(&["--loop", "--video", &p("in.gif"), "--extend", "forward", "--seconds", "1"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &out,
    );
    assert!(e.contains("--loop"), "{e}");
    std::fs::write(dir.join("notimage.png"), b"hello").unwrap();
    let e = fails(&args(&["--image", &p("notimage.png")]).iter().map(String::as_str).collect::<Vec<_>>(), &out);
    assert!(e.contains("notimage.png"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn text_to_video_weights_take_given_frames_by_replacement() {
    let dir = scratch("t2v");
    let m = fixtures().join("wan21");
    let m = m.to_str().unwrap();
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let common = ["--model", m, "--size", "48x32", "--steps", "2", "--max-sequence-length", "16", "-q"];
    clip(&dir.join("in.gif"), 9, 48, 32, 16.0, [30, 60, 200]);
    let input = frames(&dir.join("in.gif"));
    let mut a = vec!["generate", "a ball"];
    a.extend(common);
    let mut fwd = a.clone();
    let o = p("fwd.safetensors");
    let inp = p("in.gif");
    fwd.extend(["--video", &inp, "--extend", "forward", "--seconds", "0.5", "-o", &o]);
    ok(&fwd);
    let v = frames(&dir.join("fwd.safetensors"));
    assert_eq!(v.len(), 9 + 8);
    assert!(v[0].psnr(&input[0]) >= 30.0);
    let mut i2v = a.clone();
    let img = p("in.gif");
    let o2 = p("i2v.safetensors");
    i2v.extend(["--image", &img, "--frames", "9", "-o", &o2]);
    ok(&i2v);
    let v = frames(&dir.join("i2v.safetensors"));
    assert_eq!(v.len(), 9);
    assert!(v[0].psnr(&input[0]) >= 30.0);
    let _ = std::fs::remove_dir_all(&dir);
}
