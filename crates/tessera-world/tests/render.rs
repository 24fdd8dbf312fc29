//! The renderer: any size, deterministic bytes, anti-aliased edges, camera motion visible.

use tessera_world::rng::Rng;
use tessera_world::scene::{random_description, realize, Scene, SceneOptions};
use tessera_world::spec::*;

fn scene(seed: u64, i: u64, seconds: f64) -> Scene {
    let mut rng = Rng::derive(seed, i);
    let desc = random_description(&mut rng);
    Scene::new(realize(&desc, &mut rng, &SceneOptions { seconds, cut_probability: 0.3, hold_out: false }))
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let render = |seed| {
        let s = scene(seed, 3, 1.0);
        let mut r = s.renderer(96, 64, 12.0);
        (0..r.frame_count()).flat_map(|k| r.frame(k).data).collect::<Vec<u8>>()
    };
    assert_eq!(render(11), render(11));
    assert_ne!(render(11), render(12));
}

#[test]
fn any_size_and_a_single_image() {
    for (w, h) in [(1, 1), (7, 3), (64, 64), (160, 90), (90, 160), (33, 250)] {
        let s = scene(5, 0, 0.5);
        let mut r = s.renderer(w, h, 8.0);
        assert_eq!(r.frame_count(), 4);
        let f = r.frame(3);
        assert_eq!((f.width, f.height, f.data.len()), (w, h, w * h * 3));
    }
    let s = scene(5, 1, 0.0);
    assert_eq!(s.renderer(64, 64, 24.0).frame_count(), 1, "zero seconds is one image");
}

#[test]
fn edges_are_anti_aliased() {
    // A ball resting in front of the sky: its outline has pixels between ball and sky.
    let desc = Description {
        objects: vec![ObjectDescription {
            shape: Some(Shape::Ball),
            color: Some(Color::Red),
            size: Some(Size::Large),
            action: Some(Action::Drop),
            direction: None,
        }],
        background: Some(Background::Indoor),
        floor: Some(Floor::Stone),
        lighting: Some(Lighting::Bright),
        camera: Some(CameraMotion::Static),
        shots: Some(1),
        ..Default::default()
    };
    let s = Scene::new(realize(&desc, &mut Rng::new(1), &SceneOptions::default()));
    let f = s.renderer(128, 128, 12.0).frame(0);
    let red = Color::Red.rgb().map(|c| c as f32);
    let (mut inside, mut between) = (0, 0);
    let d = |a: [f32; 3], b: [f32; 3]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
    for (k, p) in f.data.chunks_exact(3).enumerate() {
        let p = [p[0] as f32, p[1] as f32, p[2] as f32];
        if d(p, red) < 30.0 {
            inside += 1;
            continue;
        }
        // Partly covered: a mix of red and the wall pixel beside it.
        let (x, y) = (k % 128, k / 128);
        if !(2..=125).contains(&x) {
            continue;
        }
        for nb in [k - 2, k + 2] {
            let q = &f.data[nb * 3..nb * 3 + 3];
            let q = [q[0] as f32, q[1] as f32, q[2] as f32];
            if d(q, red) < 30.0 || d(q, p) < 30.0 {
                continue;
            }
            // p lies on the segment between q (the wall) and red, away from both ends.
            let t =
                ((p[0] - q[0]) * (red[0] - q[0]) + (p[1] - q[1]) * (red[1] - q[1]) + (p[2] - q[2]) * (red[2] - q[2]))
                    / d(red, q).powi(2);
            let on = [q[0] + t * (red[0] - q[0]), q[1] + t * (red[1] - q[1]), q[2] + t * (red[2] - q[2])];
            if (0.15..0.85).contains(&t) && d(on, p) < 12.0 && y < 100 {
                between += 1;
                break;
            }
        }
    }
    assert!(inside > 100, "the ball is drawn: {inside}");
    assert!(between > 10, "partly covered pixels on its outline: {between}");
}

#[test]
fn panning_moves_the_floor_texture() {
    let desc = Description { camera: Some(CameraMotion::PanRight), floor: Some(Floor::Checker), ..Default::default() };
    let s = Scene::new(realize(&desc, &mut Rng::new(2), &SceneOptions::default()));
    let mut r = s.renderer(64, 64, 12.0);
    let (a, b) = (r.frame(10), r.frame(11));
    let floor_rows = 52 * 64 * 3..64 * 64 * 3;
    assert_ne!(a.data[floor_rows.clone()], b.data[floor_rows], "the floor moves under a pan");
}
