//! Scores ground-truth renders against their own specs and prints the weakest checks:
//! `cargo run -p tessera-world --release --example selfcheck -- [seed] [count] [WxH] [fps]`.
use tessera_world::eval::{evaluate, Scores, VideoRef};
use tessera_world::rng::Rng;
use tessera_world::scene::{random_description, realize, Scene, SceneOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let count: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let (w, h) = args
        .get(3)
        .and_then(|s| s.split_once('x'))
        .map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap()))
        .unwrap_or((128usize, 128usize));
    let fps: f64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(12.0);
    let mut all = Vec::new();
    for c in 0..count {
        let mut rng = Rng::derive(seed, c as u64);
        let desc = random_description(&mut rng);
        let spec = realize(&desc, &mut rng, &SceneOptions::default());
        let scene = Scene::new(spec);
        let mut r = scene.renderer(w, h, fps);
        let frames: Vec<_> = (0..r.frame_count()).map(|i| r.frame(i)).collect();
        let video = VideoRef { width: w, height: h, frames: frames.iter().map(|f| f.data.as_slice()).collect(), fps };
        let e = evaluate(&video, &scene.spec.describe(), Some(&scene.spec));
        let s = e.scores;
        if std::env::var("DEBUG").ok().and_then(|v| v.parse::<usize>().ok()) == Some(c) {
            let fr: Vec<(usize, usize, &[u8])> = frames.iter().map(|f| (w, h, f.data.as_slice())).collect();
            let a = tessera_world::eval::analysis::analyse(&fr, fps);
            println!("spec {}", serde_json::to_string(&scene.spec).unwrap());
            println!("floor_row {} ppm {:?} shots {:?} pan {} zoom {}", a.floor_row, a.ppm, a.shots, a.pan, a.zoom);
            println!("change {:?}", a.change.iter().map(|c| format!("{c:.1}")).collect::<Vec<_>>());
            println!("floor_cost {:?}", a.floor_cost.iter().map(|c| format!("{c:.1}")).collect::<Vec<_>>());
            for t in &a.tracks {
                println!("track {:?} shot {} n {}", t.color, t.shot, t.sightings.len());
                for q in
                    t.sightings.iter().step_by(std::env::var("STEP").ok().and_then(|s| s.parse().ok()).unwrap_or(4))
                {
                    println!("   f{} x {:.2} y {:.2} bottom {:.2} r {:.2} area {} spread {:.2} border {} blob_bottom {} cy {:.1}", q.frame, q.x, q.y, q.bottom, q.radius, q.blob.area, q.blob.spread, q.blob.touches_border, q.blob.bottom, q.blob.cy);
                }
            }
            tessera_media::write_video(std::path::Path::new("/tmp/debug.png"), &frames[..1], 1.0, &Default::default())
                .unwrap();
        }
        println!(
            "{c:3} overall {:.3} | adh {:.2} mot {:.2} phy {:.2} per {:.2} con {:.2}",
            s.overall, s.adherence, s.motion, s.physics, s.permanence, s.consistency
        );
        for ch in e.checks.iter().filter(|ch| ch.score < 0.9) {
            println!("      {:?} {:.2} {}", ch.dimension, ch.score, ch.what);
        }
        all.push(s);
    }
    let m = Scores::mean(&all);
    println!(
        "mean overall {:.3} | adh {:.3} mot {:.3} phy {:.3} per {:.3} con {:.3}",
        m.overall, m.adherence, m.motion, m.physics, m.permanence, m.consistency
    );
}
