//! The continuation test (issue 27): the simulator's own continuation scores IoU 1 against
//! itself, and a continuation that freezes or runs backwards scores low.

use tessera_media::Frame;
use tessera_world::eval::continuation::{score_continuation, Continuation};
use tessera_world::eval::VideoRef;
use tessera_world::rng::Rng;
use tessera_world::scene::{realize, Scene, SceneOptions};
use tessera_world::spec::*;

const FPS: f64 = 12.0;

fn spec(action: Action, shape: Shape, color: Color, seed: u64) -> Spec {
    let desc = Description {
        objects: vec![ObjectDescription {
            shape: Some(shape),
            color: Some(color),
            size: Some(Size::Medium),
            action: Some(action),
            direction: Some(Direction::Right),
        }],
        camera: Some(CameraMotion::Static),
        shots: Some(1),
        ..Default::default()
    };
    Scene::new(realize(&desc, &mut Rng::new(seed), &SceneOptions::default())).spec
}

fn render(spec: &Spec) -> Vec<Frame> {
    let scene = Scene::new(spec.clone());
    let mut r = scene.renderer(128, 128, FPS);
    (0..r.frame_count()).map(|i| r.frame(i)).collect()
}

fn score(frames: &[Frame], spec: &Spec) -> Continuation {
    score_continuation(&VideoRef::of(frames, FPS), spec, 1.0)
}

fn specs() -> Vec<Spec> {
    vec![
        spec(Action::Roll, Shape::Ball, Color::Red, 1),
        spec(Action::Drop, Shape::Ball, Color::Blue, 2),
        spec(Action::Throw, Shape::Box, Color::Orange, 3),
        spec(Action::Throw, Shape::Ball, Color::Green, 4),
    ]
}

#[test]
fn the_truth_continues_itself_exactly() {
    for s in specs() {
        let c = score(&render(&s), &s);
        assert_eq!(c.given_frames, 12);
        assert_eq!(c.compared_frames, 24);
        assert_eq!(c.iou, 1.0, "{c:?}");
        assert_eq!(c.position_error.unwrap_or(0.0), 0.0);
        assert_eq!(c.velocity_error.unwrap_or(0.0), 0.0);
        assert!(c.events_on_time.is_none_or(|e| e == 1.0), "{:?}", c.events);
    }
}

#[test]
fn a_frozen_or_reversed_continuation_scores_low() {
    let (mut frozen_iou, mut reversed_iou, mut frozen_pos) = (0.0, 0.0, 0.0);
    let n = specs().len() as f64;
    for s in specs() {
        let truth = render(&s);
        // The given second, then its last frame held: a model that stops the world.
        let frozen: Vec<Frame> = (0..truth.len()).map(|i| truth[i.min(11)].clone()).collect();
        let f = score(&frozen, &s);
        let mut reversed = truth.clone();
        reversed.reverse();
        let r = score(&reversed, &s);
        eprintln!(
            "frozen iou {:.3} pos {:?}; reversed iou {:.3} pos {:?}",
            f.iou, f.position_error, r.iou, r.position_error
        );
        frozen_iou += f.iou / n;
        reversed_iou += r.iou / n;
        frozen_pos += f.position_error.unwrap_or(10.0) / n;
    }
    assert!(frozen_iou <= 0.3, "frozen {frozen_iou}");
    assert!(reversed_iou <= 0.3, "reversed {reversed_iou}");
    assert!(frozen_pos >= 0.5, "frozen position error {frozen_pos} m");
}
