//! The evaluator's calibration table (issue 27): world clips scored as rendered, through
//! H.264, and under each corruption, every dimension's mean, and the time per clip:
//! `cargo run -p tessera-world --release --example calibrate -- [seed] [count] [seconds]`.
use std::time::Instant;

use tessera_media::{read_video, write_video, Frame, WriteOptions};
use tessera_world::eval::corrupt::{corrupt, Corruption};
use tessera_world::eval::{evaluate, Scores, VideoRef};
use tessera_world::scene::SceneOptions;

fn score(frames: &[Frame], spec: &tessera_world::Spec, fps: f64) -> (Scores, Vec<tessera_world::eval::Check>) {
    let e = evaluate(&VideoRef::of(frames, fps), &spec.describe(), Some(spec));
    (e.scores, e.checks)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(27);
    let count: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(12);
    let seconds: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let verbose = std::env::var("VERBOSE").is_ok();
    let (w, h, fps) = (128, 128, 12.0);
    let opts = SceneOptions { seconds, ..Default::default() };
    let mut rows: Vec<(String, Vec<Scores>)> = vec![("ground truth".into(), vec![]), ("H.264".into(), vec![])];
    let mut prompt_only = Vec::new();
    for c in Corruption::ALL {
        rows.push((c.word().into(), vec![]));
    }
    let tmp = std::env::temp_dir().join(format!("calibrate-{}.mp4", std::process::id()));
    let mut eval_time = 0f64;
    let mut evals = 0;
    for i in 0..count {
        let clip = tessera_world::sample_clip(seed, i, &opts);
        let spec = &clip.scene.spec;
        let mut r = clip.scene.renderer(w, h, fps);
        let frames: Vec<Frame> = (0..r.frame_count()).map(|k| r.frame(k)).collect();
        let t0 = Instant::now();
        let (gt, checks) = score(&frames, spec, fps);
        eval_time += t0.elapsed().as_secs_f64();
        evals += 1;
        write_video(&tmp, &frames, fps, &WriteOptions::default()).unwrap();
        let (h264, _) = read_video(&tmp).unwrap();
        let (hs, hchecks) = score(&h264, spec, fps);
        println!("clip {i}: {} | gt {:.3} h264 {:.3}", clip.prompt, gt.overall, hs.overall);
        if verbose || gt.overall < 0.9 || hs.overall < 0.9 {
            for c in checks.iter().chain(&hchecks).filter(|c| c.score < 0.99) {
                println!("    {:?} {} {:.2} {}", c.dimension, c.law, c.score, c.what);
            }
        }
        rows[0].1.push(gt);
        // The same clip scored against its prompt alone (no spec), as a model's output is.
        let desc = tessera_world::language::parse(&clip.prompt).unwrap();
        let po = evaluate(&VideoRef::of(&frames, fps), &desc, None);
        if verbose || po.scores.overall < 0.8 {
            println!("  prompt only {:.3}", po.scores.overall);
            for c in po.checks.iter().filter(|c| c.score < 0.99) {
                println!("    {:?} {} {:.2} {}", c.dimension, c.law, c.score, c.what);
            }
        }
        prompt_only.push(po.scores);
        rows[1].1.push(hs);
        for (k, c) in Corruption::ALL.into_iter().enumerate() {
            let bad = corrupt(c, &frames, Some(spec), fps, i).unwrap();
            let (s, checks) = score(&bad, spec, fps);
            if verbose {
                println!(
                    "  {:>10}: {:.3} {:.3} {:.3} {:.3} {:.3} | {:.3}",
                    c.word(),
                    s.adherence,
                    s.motion,
                    s.physics,
                    s.permanence,
                    s.consistency,
                    s.overall
                );
                if std::env::var("CHECKS").is_ok_and(|v| v == c.word()) {
                    for c in checks.iter().filter(|c| c.score < 0.99) {
                        println!("    {:?} {} {:.2} {}", c.dimension, c.law, c.score, c.what);
                    }
                }
            }
            rows[k + 2].1.push(s);
        }
    }
    let _ = std::fs::remove_file(&tmp);
    rows.insert(1, ("ground truth, prompt only".into(), prompt_only));
    println!("\n| video | adherence | motion | physics | permanence | consistency | overall |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (name, all) in &rows {
        let m = Scores::mean(all);
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            m.adherence, m.motion, m.physics, m.permanence, m.consistency, m.overall
        );
    }
    println!("\nevaluation: {:.1} ms per clip ({evals} clips, {seconds} s each)", 1000.0 * eval_time / evals as f64);
}
