//! Rendering rate on one core: frames per second at a size, over clips of the suite, with
//! the camera static and moving (pans and zooms redraw the background every frame).
//! `cargo run --release -p tessera-world --example render_rate -- [WxH] [clips]`
use std::time::Instant;

use tessera_world::scene::SceneOptions;
use tessera_world::spec::CameraMotion;

struct Clip {
    scene: tessera_world::scene::Scene,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (w, h) = args
        .get(1)
        .and_then(|s| s.split_once('x'))
        .map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap()))
        .unwrap_or((128usize, 128usize));
    let clips: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let opts = SceneOptions { seconds: 3.0, cut_probability: 0.12, hold_out: false };
    let (mut sim_time, mut frames) = (0f64, [0usize; 2]);
    let mut times = [0f64; 2];
    for i in 0..clips {
        let t0 = Instant::now();
        let mut rng = tessera_world::rng::Rng::derive(7, i);
        let desc = tessera_world::scene::random_description(&mut rng);
        let scene = tessera_world::scene::Scene::new(tessera_world::scene::realize(&desc, &mut rng, &opts));
        let clip = Clip { scene };
        sim_time += t0.elapsed().as_secs_f64();
        let moving = (clip.scene.spec.camera != CameraMotion::Static) as usize;
        let mut r = clip.scene.renderer(w, h, 24.0);
        let t1 = Instant::now();
        let mut checksum = 0u64;
        for k in 0..r.frame_count() {
            let f = r.frame(k);
            checksum = checksum.wrapping_add(f.data[f.data.len() / 2] as u64);
        }
        times[moving] += t1.elapsed().as_secs_f64();
        frames[moving] += r.frame_count();
        std::hint::black_box(checksum);
    }
    let total: usize = frames.iter().sum();
    let time: f64 = times.iter().sum();
    println!("{w}x{h}, {clips} clips of 3 s at 24 fps, one thread");
    println!("  static camera: {:>6} frames, {:>8.0} frames/s", frames[0], frames[0] as f64 / times[0]);
    println!("  moving camera: {:>6} frames, {:>8.0} frames/s", frames[1], frames[1] as f64 / times[1]);
    println!("  all:           {:>6} frames, {:>8.0} frames/s", total, total as f64 / time);
    println!("  scene sampling and simulation: {:.2} ms per clip", sim_time * 1e3 / clips as f64);
}
