//! Spread (the evaluator's shape feature) of ground-truth objects by shape and size, raw
//! and through H.264: `cargo run --release -p tessera-world --example shape_stats`.
use tessera_world::eval::analysis::{analyse, median};
use tessera_world::rng::Rng;
use tessera_world::scene::{random_description, realize, Scene, SceneOptions};

fn main() {
    let (w, h, fps) = (128usize, 128usize, 12.0);
    let mut rows: Vec<(String, String, f32, f32)> = Vec::new();
    for i in 0..60u64 {
        let mut rng = Rng::derive(1, i);
        let desc = random_description(&mut rng);
        let scene = Scene::new(realize(&desc, &mut rng, &SceneOptions::default()));
        let mut r = scene.renderer(w, h, fps);
        let frames: Vec<_> = (0..r.frame_count()).map(|k| r.frame(k)).collect();
        let path = std::env::temp_dir().join("shape_stats.mp4");
        tessera_media::write_video(&path, &frames, fps, &Default::default()).unwrap();
        let (coded, _) = tessera_media::read_video(&path).unwrap();
        for (tag, fr) in [("raw", &frames), ("h264", &coded)] {
            let v: Vec<(usize, usize, &[u8])> = fr.iter().map(|f| (w, h, f.data.as_slice())).collect();
            let a = analyse(&v, fps);
            for o in &scene.spec.objects {
                let spreads: Vec<f32> = a
                    .tracks
                    .iter()
                    .filter(|t| t.color == o.color)
                    .flat_map(|t| t.clean().map(|q| q.blob.spread).collect::<Vec<_>>())
                    .collect();
                if let Some(m) = median(spreads) {
                    rows.push((tag.into(), format!("{} {}", o.size, o.shape), m, 0.0));
                }
            }
        }
    }
    rows.sort_by_key(|a| (a.0.clone(), a.1.clone()));
    let mut k = 0;
    while k < rows.len() {
        let key = (rows[k].0.clone(), rows[k].1.clone());
        let v: Vec<f32> = rows.iter().filter(|r| (r.0.clone(), r.1.clone()) == key).map(|r| r.2).collect();
        let (lo, hi) = (v.iter().cloned().fold(f32::MAX, f32::min), v.iter().cloned().fold(f32::MIN, f32::max));
        println!(
            "{:5} {:16} n {:3} min {:.3} median {:.3} max {:.3}",
            key.0,
            key.1,
            v.len(),
            lo,
            median(v.clone()).unwrap(),
            hi
        );
        k += v.len();
    }
}
