//! The evaluator is itself tested: ground-truth renders score high, and deliberately broken
//! videos score low on the dimension they break.

use tessera_media::Frame;
use tessera_world::eval::{evaluate, Evaluation, Scores, VideoRef};
use tessera_world::rng::Rng;
use tessera_world::scene::{random_description, realize, Scene, SceneOptions};
use tessera_world::spec::*;

const W: usize = 128;
const H: usize = 128;
const FPS: f64 = 12.0;

fn render(spec: &Spec) -> (Scene, Vec<Frame>) {
    let scene = Scene::new(spec.clone());
    let mut r = scene.renderer(W, H, FPS);
    let frames = (0..r.frame_count()).map(|i| r.frame(i)).collect();
    (scene, frames)
}

fn score(frames: &[Frame], spec: &Spec) -> Evaluation {
    evaluate(&VideoRef::of(frames, FPS), &spec.describe(), Some(spec))
}

fn clip(seed: u64, i: u64) -> Spec {
    let mut rng = Rng::derive(seed, i);
    let desc = random_description(&mut rng);
    Scene::new(realize(&desc, &mut rng, &SceneOptions::default())).spec
}

/// A one-object drop: a ball falls from high up and bounces, static camera, one shot.
fn drop_spec(color: Color) -> Spec {
    let desc = Description {
        objects: vec![ObjectDescription {
            shape: Some(Shape::Ball),
            color: Some(color),
            size: Some(Size::Medium),
            action: Some(Action::Drop),
            direction: None,
        }],
        background: Some(Background::Day),
        floor: Some(Floor::Wood),
        lighting: Some(Lighting::Bright),
        camera: Some(CameraMotion::Static),
        shots: Some(1),
        ..Default::default()
    };
    Scene::new(realize(&desc, &mut Rng::new(3), &SceneOptions::default())).spec
}

/// A ball rolling across the floor, static camera, one shot.
fn roll_spec() -> Spec {
    let desc = Description {
        objects: vec![ObjectDescription {
            shape: Some(Shape::Ball),
            color: Some(Color::Red),
            size: Some(Size::Large),
            action: Some(Action::Roll),
            direction: Some(Direction::Right),
        }],
        background: Some(Background::Sunset),
        floor: Some(Floor::Stone),
        lighting: Some(Lighting::Normal),
        camera: Some(CameraMotion::Static),
        shots: Some(1),
        ..Default::default()
    };
    Scene::new(realize(&desc, &mut Rng::new(5), &SceneOptions::default())).spec
}

#[test]
fn ground_truth_renders_score_high() {
    let scores: Vec<Scores> = (0..24)
        .map(|i| {
            let spec = clip(2026, i);
            let (_, frames) = render(&spec);
            score(&frames, &spec).scores
        })
        .collect();
    let mean = Scores::mean(&scores);
    let worst = scores.iter().map(|s| s.overall).fold(1.0, f64::min);
    eprintln!("mean {mean:?}, worst overall {worst:.3}");
    assert!(mean.overall >= 0.95, "ground truth scores {mean:?}");
    assert!(worst >= 0.75, "a ground-truth clip scores {worst}");
}

#[test]
fn swapped_colours_break_adherence() {
    let spec = drop_spec(Color::Red);
    let (_, frames) = render(&drop_spec(Color::Blue));
    let good = score(&render(&spec).1, &spec).scores;
    let bad = score(&frames, &spec).scores;
    eprintln!("good {good:?}\nbad {bad:?}");
    assert!(good.adherence >= 0.95);
    assert!(bad.adherence <= 0.5, "{bad:?}");
}

#[test]
fn shuffled_frames_break_physics_and_consistency() {
    let spec = drop_spec(Color::Orange);
    let (_, mut frames) = render(&spec);
    let good = score(&frames, &spec).scores;
    // A seeded Fisher-Yates shuffle.
    let mut rng = Rng::new(9);
    for i in (1..frames.len()).rev() {
        frames.swap(i, rng.below(i + 1));
    }
    let bad = score(&frames, &spec).scores;
    eprintln!("good {good:?}\nbad {bad:?}");
    assert!(good.physics >= 0.95 && good.consistency >= 0.95);
    assert!(bad.physics <= 0.6, "{bad:?}");
    assert!(bad.consistency <= 0.6, "{bad:?}");
}

#[test]
fn a_frozen_frame_breaks_consistency_and_physics() {
    let spec = roll_spec();
    let (_, mut frames) = render(&spec);
    let good = score(&frames, &spec).scores;
    let half = frames.len() / 3;
    for i in half..frames.len() {
        frames[i] = frames[half].clone();
    }
    let bad = score(&frames, &spec).scores;
    eprintln!("good {good:?}\nbad {bad:?}");
    assert!(good.consistency >= 0.95 && good.physics >= 0.95);
    // The video stutters, and a rolling ball stops dead.
    assert!(bad.consistency <= 0.6, "{bad:?}");
    assert!(bad.physics <= 0.6, "{bad:?}");
}

#[test]
fn an_object_removed_halfway_breaks_permanence() {
    let spec = roll_spec();
    let (_, frames) = render(&spec);
    let mut empty = spec.clone();
    empty.objects.clear();
    let (_, without) = render(&empty);
    let half = frames.len() / 2;
    let broken: Vec<Frame> = frames[..half].iter().chain(&without[half..]).cloned().collect();
    let good = score(&frames, &spec).scores;
    let bad = score(&broken, &spec).scores;
    eprintln!("good {good:?}\nbad {bad:?}");
    assert!(good.permanence >= 0.95);
    assert!(bad.permanence <= 0.3, "{bad:?}");
}

#[test]
fn time_reversed_fall_breaks_physics() {
    let spec = drop_spec(Color::Purple);
    let (_, mut frames) = render(&spec);
    let good = score(&frames, &spec).scores;
    frames.reverse();
    let bad = score(&frames, &spec).scores;
    eprintln!("good {good:?}\nbad {bad:?}");
    assert!(good.physics >= 0.95 && good.motion >= 0.95);
    // Bounces that grow: energy from nowhere.
    assert!(bad.physics <= 0.3, "{bad:?}");
    assert!(bad.motion < good.motion, "{bad:?}");
}

#[test]
fn a_video_without_the_objects_earns_no_free_points() {
    // Regression: with nothing to track, physics and permanence used to score 1.
    let spec = roll_spec();
    let mut empty = spec.clone();
    empty.objects.clear();
    let (_, frames) = render(&empty);
    let s = score(&frames, &spec).scores;
    assert!(s.physics <= 0.1 && s.permanence <= 0.1 && s.motion <= 0.1, "{s:?}");
    assert!(s.overall <= 0.35, "{s:?}");
}

#[test]
fn motion_in_bursts_breaks_consistency() {
    // What a decoder with 4x temporal compression can do: each group of four frames shows
    // its first frame's objects (the frames not exactly repeated, so it is not a freeze).
    let spec = roll_spec();
    let (_, frames) = render(&spec);
    let good = score(&frames, &spec).scores;
    let bursts: Vec<Frame> = frames
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let mut f = frames[i - i % 4].clone();
            f.data[0] = f.data[0].wrapping_add(3 * (i % 4) as u8);
            f
        })
        .collect();
    let bad = score(&bursts, &spec).scores;
    eprintln!("good {good:?}\nbad {bad:?}");
    assert!(good.consistency >= 0.95);
    assert!(bad.consistency <= 0.6, "{bad:?}");
}
