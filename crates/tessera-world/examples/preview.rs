//! Renders a contact sheet of sampled clips (rows: clips; columns: frames) to a PNG, for
//! looking at the world: `cargo run -p tessera-world --example preview -- out.png [seed] [count] [WxH]`.
use tessera_media::{write_video, Frame, WriteOptions};
use tessera_world::rng::Rng;
use tessera_world::scene::{random_description, realize, Scene, SceneOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = args.get(1).map(String::as_str).unwrap_or("preview.png");
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let count: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(6);
    let (w, h) = args
        .get(4)
        .and_then(|s| s.split_once('x'))
        .map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap()))
        .unwrap_or((160usize, 90usize));
    let cols = 8;
    let mut sheet = vec![0u8; w * cols * h * count * 3];
    for c in 0..count {
        let mut rng = Rng::derive(seed, c as u64);
        let desc = random_description(&mut rng);
        let spec = realize(&desc, &mut rng, &SceneOptions::default());
        let scene = Scene::new(spec);
        eprintln!("{c}: {}", serde_json::to_string(&scene.spec).unwrap());
        let mut r = scene.renderer(w, h, 12.0);
        let n = r.frame_count();
        for k in 0..cols {
            let f = r.frame(k * (n - 1) / (cols - 1));
            for row in 0..h {
                let dst = ((c * h + row) * w * cols + k * w) * 3;
                sheet[dst..dst + w * 3].copy_from_slice(&f.data[row * w * 3..(row + 1) * w * 3]);
            }
        }
    }
    let f = Frame::new(w * cols, h * count, sheet).unwrap();
    write_video(out.as_ref(), &[f], 1.0, &WriteOptions::default()).unwrap();
}
