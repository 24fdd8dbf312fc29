//! `tessera world render/prompts/expand` and `tessera eval`, run as a user runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
    c.env("RAYON_NUM_THREADS", "2");
    c
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-world-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> Output {
    let o = bin().args(args).output().unwrap();
    assert!(o.status.success(), "tessera {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    o
}

/// `tessera eval --suite SUITE --videos VIDEOS --out OUT`, then `extra`, quiet.
fn eval_args(suite: &Path, videos: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["eval", "--suite"].map(String::from).to_vec();
    v.push(suite.display().to_string());
    v.push("--videos".into());
    v.push(videos.display().to_string());
    v.push("--out".into());
    v.push(out.display().to_string());
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn run_eval(suite: &Path, videos: &Path, out: &Path, extra: &[&str]) -> Output {
    let args = eval_args(suite, videos, out, &[extra, &["-q"]].concat());
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn fails(args: &[&str]) -> String {
    let o = bin().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "tessera {args:?} should fail");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

fn render(out: &Path, count: &str, seed: &str) {
    run(&[
        "world",
        "render",
        "--count",
        count,
        "--seed",
        seed,
        "--size",
        "96x64",
        "--seconds",
        "1.5",
        "--fps",
        "12",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
}

#[test]
fn render_writes_mp4_and_json_per_clip_deterministically() {
    let (a, b) = (scratch("render-a"), scratch("render-b"));
    render(&a, "2", "5");
    render(&b, "2", "5");
    for stem in ["000000", "000001"] {
        let mp4 = a.join(format!("{stem}.mp4"));
        assert_eq!(tessera_media::mp4_top_level_boxes(&mp4).unwrap()[..3], ["ftyp", "moov", "mdat"]);
        let (frames, fps) = tessera_media::read_video(&mp4).unwrap();
        assert_eq!((frames.len(), frames[0].width, frames[0].height, fps), (18, 96, 64, 12.0));
        assert_eq!(
            std::fs::read(&mp4).unwrap(),
            std::fs::read(b.join(format!("{stem}.mp4"))).unwrap(),
            "same seed, same bytes"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(a.join(format!("{stem}.json"))).unwrap()).unwrap();
        for key in ["prompt", "caption", "spec"] {
            assert!(json.get(key).is_some(), "{stem}.json lacks {key}");
        }
        assert_eq!(json["spec"]["seconds"], 1.5);
    }
    let c = scratch("render-c");
    render(&c, "1", "6");
    assert_ne!(std::fs::read(a.join("000000.mp4")).unwrap(), std::fs::read(c.join("000000.mp4")).unwrap());
}

#[test]
fn prompts_are_json_lines_matching_the_rendered_clips() {
    let o = run(&["world", "prompts", "--count", "3", "--seed", "5", "--seconds", "1.5"]);
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    let dir = scratch("prompts");
    render(&dir, "3", "5");
    for (i, l) in lines.iter().enumerate() {
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{i:06}.json"))).unwrap()).unwrap();
        assert_eq!(l, &json, "line {i} is clip {i}");
    }
}

#[test]
fn expand_fills_in_a_short_prompt() {
    let o = run(&["world", "expand", "red ball bouncing", "--seed", "2"]);
    let caption = String::from_utf8(o.stdout).unwrap();
    assert!(caption.contains("red ball") && caption.len() > 80, "{caption}");
    let o = run(&["world", "expand", "red ball bouncing", "--seed", "2", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["spec"]["objects"][0]["color"], "red");
    assert_eq!(v["spec"]["objects"][0]["action"], "drop");
    let other = run(&["world", "expand", "red ball bouncing", "--seed", "3"]);
    assert_ne!(String::from_utf8(other.stdout).unwrap(), caption, "another seed, other details");
    // Words outside the world's vocabulary are skipped with a warning (issue 28).
    let o = run(&["world", "expand", "a red ball dances with a giraffe", "--seed", "2"]);
    let (caption, err) = (String::from_utf8(o.stdout).unwrap(), String::from_utf8(o.stderr).unwrap());
    assert!(caption.contains("red ball"), "{caption}");
    assert!(err.contains("warning: ignored words outside the world's vocabulary: dances, giraffe"), "{err}");
    let o = run(&["world", "expand", "a giraffe on the grass"]);
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("giraffe") && err.contains("names no object"), "{err}");
}

#[test]
fn understand_reports_ignored_words_and_the_share_understood() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tessera-world/tests/fixtures/handwritten_prompts.txt");
    let o = run(&["world", "understand", fixture.to_str().unwrap(), "--min", "95"]);
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 101, "a line per prompt and the total: {out}");
    assert!(out.contains("a shiny red sphere rolls slowly toward the left  [ignored: shiny]"), "{out}");
    assert!(out.lines().last().unwrap().contains("words understood") && out.contains("in 100 prompts"), "{out}");
    let dir = scratch("understand");
    let file = dir.join("prompts.txt");
    std::fs::write(&file, "# a comment\na red ball dances\n\nthe giraffe sleeps\n").unwrap();
    let o = run(&["world", "understand", file.to_str().unwrap()]);
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("   2  75.0%  a red ball dances  [ignored: dances]"), "{out}");
    assert!(out.contains("the giraffe sleeps  [ignored: giraffe, sleeps; no object]"), "{out}");
    assert!(out.contains("4 of 7 words understood (57.1%) in 2 prompts; 2 with ignored words"), "{out}");
    let err = fails(&["world", "understand", file.to_str().unwrap(), "--min", "90"]);
    assert!(err.contains("57.1% of the words understood, less than --min 90%"), "{err}");
}

#[test]
fn eval_scores_ground_truth_high_and_writes_reports() {
    let dir = scratch("eval");
    let videos = dir.join("videos");
    run(&[
        "world",
        "render",
        "--count",
        "4",
        "--seed",
        "9",
        "--size",
        "128x128",
        "--seconds",
        "3",
        "--fps",
        "12",
        "--out",
        videos.to_str().unwrap(),
        "-q",
    ]);
    let suite = dir.join("suite.jsonl");
    let o = run(&["world", "prompts", "--count", "4", "--seed", "9", "--seconds", "3"]);
    std::fs::write(&suite, &o.stdout).unwrap();
    let report = dir.join("report.json");
    let html = dir.join("html");
    let o = run_eval(&suite, &videos, &report, &["--html", html.to_str().unwrap()]);
    let summary = String::from_utf8(o.stdout).unwrap();
    assert!(summary.contains("mean") && summary.contains("000003.mp4"), "{summary}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let vids = r["videos"].as_array().unwrap();
    assert_eq!(vids.len(), 4);
    for v in vids {
        for k in ["adherence", "motion", "physics", "permanence", "consistency", "overall"] {
            let x = v[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&x), "{k} = {x}");
        }
        assert!(v["file"].as_str().unwrap().ends_with(".mp4"));
    }
    let mean = r["mean"]["overall"].as_f64().unwrap();
    assert!(mean >= 0.9, "ground truth through H.264 scores {mean}");
    let page = std::fs::read_to_string(html.join("index.html")).unwrap();
    assert!(page.contains("<svg") && page.contains("thumbs/000000.png"));
    assert!(html.join("thumbs/000003.png").exists());

    // A suite line may carry only a prompt; the parser supplies the description. PNG
    // folders are videos too.
    let frames_dir = dir.join("pngs");
    let one = frames_dir.join("clip");
    std::fs::create_dir_all(&one).unwrap();
    let (frames, _) = tessera_media::read_video(&videos.join("000000.mp4")).unwrap();
    for (i, f) in frames.iter().enumerate() {
        tessera_media::write_video(
            &one.join(format!("{i:04}.png")),
            std::slice::from_ref(f),
            12.0,
            &Default::default(),
        )
        .unwrap();
    }
    let prompt_only = dir.join("prompt.jsonl");
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&suite).unwrap().lines().next().unwrap()).unwrap();
    std::fs::write(&prompt_only, format!("{}\n", serde_json::json!({ "prompt": line["prompt"] }))).unwrap();
    let out2 = dir.join("report2.json");
    run_eval(&prompt_only, &frames_dir, &out2, &[]);
    let r2: serde_json::Value = serde_json::from_slice(&std::fs::read(&out2).unwrap()).unwrap();
    assert_eq!(r2["videos"][0]["file"], "clip");
    assert!(r2["mean"]["overall"].as_f64().unwrap() >= 0.8, "{r2}");
}

/// The VAE gate's command (`tools/eval_vae.sh`): clips scored through decode(encode(clip)) of
/// a VAE, here the built-in model's, and the round trips written to look at.
#[test]
fn eval_vae_scores_round_trips_and_writes_them() {
    let dir = scratch("eval-vae");
    let videos = dir.join("videos");
    render(&videos, "2", "4");
    // The suite as the other eval tests make it: `world prompts` prints the rendered clips' lines.
    let suite = dir.join("suite.jsonl");
    let o = run(&["world", "prompts", "--count", "2", "--seed", "4", "--seconds", "1.5"]);
    std::fs::write(&suite, &o.stdout).unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/tessera-world");
    let (truth, trips, rt) = (dir.join("truth.json"), dir.join("trips.json"), dir.join("rt"));
    run_eval(&suite, &videos, &truth, &[]);
    run_eval(&suite, &videos, &trips, &["--vae", model.to_str().unwrap(), "--write-round-trips", rt.to_str().unwrap()]);
    let read = |p: &Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let (t, r) = (read(&truth), read(&trips));
    assert_eq!(r["videos"].as_array().unwrap().len(), 2);
    // The round trips are the VAE's drawing, not the clips: some check differs.
    assert_ne!(t["videos"], r["videos"], "round trips scored exactly as the clips");
    // A VAE compressing time tf-fold gives back tf k + 1 of the clip's frames.
    let tf = read(&model.join("vae/config.json"))["scale_factor_temporal"].as_u64().unwrap() as usize;
    for i in 0..2 {
        let (clip, _) = tessera_media::read_video(&videos.join(format!("00000{i}.mp4"))).unwrap();
        let (trip, _) = tessera_media::read_video(&rt.join(format!("00000{i}.mp4"))).unwrap();
        assert_eq!(trip.len(), (clip.len() - 1) / tf * tf + 1);
        assert_eq!((trip[0].width, trip[0].height), (clip[0].width, clip[0].height));
    }
    let args = eval_args(&suite, &videos, &trips, &["--write-round-trips", rt.to_str().unwrap()]);
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("--vae"), "{err}");
}

#[test]
fn eval_bad_input_is_a_clear_error() {
    let dir = scratch("eval-bad");
    let videos = dir.join("videos");
    render(&videos, "2", "1");
    let suite = dir.join("suite.jsonl");
    std::fs::write(&suite, "{\"prompt\": \"a red ball bounces\"}\n").unwrap();
    let out = dir.join("r.json");
    let (s, v, o) = (suite.to_str().unwrap(), videos.to_str().unwrap(), out.to_str().unwrap());
    let err = fails(&["eval", "--suite", s, "--videos", v, "--out", o, "-q"]);
    assert!(err.contains("1 prompts") && err.contains("2 videos"), "{err}");
    // Hand-written prompts are read leniently: an unknown word is reported, not refused
    // (issue 28); a prompt that names nothing to score is an error.
    std::fs::write(&suite, "{\"prompt\": \"a red ball juggles\"}\n{\"prompt\": \"a box\"}\n").unwrap();
    let warned = run(&["eval", "--suite", s, "--videos", v, "--out", o, "-q"]);
    let err = String::from_utf8(warned.stderr).unwrap();
    assert!(err.contains("line 1: ignored words outside the world's vocabulary: juggles"), "{err}");
    std::fs::remove_file(&out).unwrap();
    std::fs::write(&suite, "{\"prompt\": \"a red ball\"}\n{\"prompt\": \"a sunny day\"}\n").unwrap();
    let err = fails(&["eval", "--suite", s, "--videos", v, "--out", o, "-q"]);
    assert!(err.contains("line 2") && err.contains("names no object"), "{err}");
    std::fs::write(&suite, "{\"prompt\": \"a red ball\"}\n{\"prompt\": \"a box\"}\n").unwrap();
    std::fs::write(videos.join("000001.mp4"), b"not a video").unwrap();
    let err = fails(&["eval", "--suite", s, "--videos", v, "--out", o, "-q"]);
    assert!(err.contains("000001.mp4"), "{err}");
    assert!(!out.exists(), "no report on failure");
    let err = fails(&["world", "render", "--size", "97x64", "--out", v]);
    assert!(err.contains("even"), "{err}");
}

#[test]
fn eval_corrupt_all_prints_the_calibration_table() {
    let dir = scratch("corrupt");
    let videos = dir.join("videos");
    render(&videos, "2", "4");
    let suite = dir.join("suite.jsonl");
    let o = run(&["world", "prompts", "--count", "2", "--seed", "4", "--seconds", "3"]);
    std::fs::write(&suite, &o.stdout).unwrap();
    let report = dir.join("report.json");
    let bad = dir.join("corrupted");
    let (s, v, r) = (suite.to_str().unwrap(), videos.to_str().unwrap(), report.to_str().unwrap());
    let o = run(&["eval", "--suite", s, "--videos", v, "--out", r, "--corrupt", "all", "-q"]);
    let table = String::from_utf8(o.stdout).unwrap();
    for k in ["as given", "flood", "blank", "static", "shuffle", "reverse", "hue", "fragments"] {
        assert!(table.contains(k), "{k} missing from\n{table}");
    }
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let truth = j["as_given"]["mean"]["overall"].as_f64().unwrap();
    let flood = j["flood"]["mean"]["overall"].as_f64().unwrap();
    assert!(truth >= 0.9 && flood <= 0.3, "truth {truth}, flood {flood}");
    // Flooded objects are reported as what they are.
    let checks = j["flood"]["videos"][0]["checks"].as_array().unwrap();
    assert!(checks.iter().any(|c| c["what"].as_str().unwrap().contains("band")), "{checks:?}");
    run_eval(
        Path::new(s),
        Path::new(v),
        Path::new(r),
        &["--corrupt", "blank", "--write-corrupted", bad.to_str().unwrap()],
    );
    assert!(bad.join("000000.blank.mp4").exists());
    let err = fails(&["eval", "--suite", s, "--videos", v, "--out", r, "--corrupt", "melt"]);
    assert!(err.contains("melt") && err.contains("fragments"), "{err}");
    // Without specs, blank cannot render the background.
    let prompts = dir.join("prompts.jsonl");
    std::fs::write(&prompts, "{\"prompt\": \"a red ball\"}\n{\"prompt\": \"a box\"}\n").unwrap();
    let err = fails(&["eval", "--suite", prompts.to_str().unwrap(), "--videos", v, "--out", r, "--corrupt", "blank"]);
    assert!(err.contains("spec"), "{err}");
}

#[test]
fn eval_continuation_scores_the_truth_and_splits_held_out_clips() {
    let dir = scratch("continuation");
    let truth = dir.join("truth");
    let given = dir.join("given");
    for (split, out) in [("in-distribution", truth.join("a")), ("held-out", truth.join("b"))] {
        run(&[
            "world",
            "render",
            "--count",
            "2",
            "--seed",
            "5",
            "--seconds",
            "2",
            "--fps",
            "12",
            "--split",
            split,
            "--given",
            "1",
            "--given-out",
            given.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ]);
    }
    // Given clips hold the first second.
    let (g, _) = tessera_media::read_video(&given.join("000000.mp4")).unwrap();
    assert_eq!(g.len(), 12);
    // One suite, one videos folder: the truth itself as the "generated" continuation.
    let videos = dir.join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    let mut suite = String::new();
    for (k, sub) in ["a", "b"].iter().enumerate() {
        for i in 0..2 {
            let stem = format!("{i:06}");
            let j: serde_json::Value =
                serde_json::from_slice(&std::fs::read(truth.join(sub).join(format!("{stem}.json"))).unwrap()).unwrap();
            let want = if k == 0 { "in_distribution" } else { "held_out" };
            assert_eq!(j["split"], want, "{j}");
            assert_eq!(j["held_out"].as_array().unwrap().is_empty(), k == 0, "{j}");
            suite += &format!("{}\n", serde_json::to_string(&j).unwrap());
            std::fs::copy(truth.join(sub).join(format!("{stem}.mp4")), videos.join(format!("{k}{stem}.mp4"))).unwrap();
        }
    }
    let suite_path = dir.join("suite.jsonl");
    std::fs::write(&suite_path, suite).unwrap();
    let report = dir.join("continuation.json");
    let o = run_eval(&suite_path, &videos, &report, &["--continuation", "--given", "1"]);
    let table = String::from_utf8(o.stdout).unwrap();
    assert!(table.contains("held_out") && table.contains("in_distribution"), "{table}");
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(j["in_distribution"]["clips"], 2);
    assert_eq!(j["held_out"]["clips"], 2);
    // Through H.264 the truth still matches itself closely (compression moves the edges
    // of small objects: 0.83 on these clips, the ceiling for any MP4 output).
    let iou = j["all"]["iou"].as_f64().unwrap();
    assert!(iou >= 0.75, "{iou}");
    let pos = j["all"]["position_error"].as_f64().unwrap();
    assert!(pos <= 0.05, "{pos} m");
    let err = fails(&["world", "render", "--given", "1", "--out", dir.join("x").to_str().unwrap()]);
    assert!(err.contains("given-out"), "{err}");
}
