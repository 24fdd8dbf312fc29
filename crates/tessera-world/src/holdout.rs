//! What training never shows, so the benchmark can test generalisation (issue 27's
//! continuation test): colour-shape pairs and size-shape pairs that training clips never
//! combine, and launch speeds above any training clip's. A suite line marks its clip with
//! `"split": "held_out"` (and `"held_out": [...]`, which of these it has) or
//! `"split": "in_distribution"`; [`held_out`] recomputes it from a spec.
//!
//! Training draws with [`crate::scene::SceneOptions::hold_out`] set, which redraws any
//! description that combines a held-out pair; speeds need no exclusion, since training's
//! scenes never launch anything as fast.

use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use crate::spec::*;

/// Colour-shape pairs no training clip combines.
pub const COLOR_SHAPE: [(Color, Shape); 3] =
    [(Color::Purple, Shape::Triangle), (Color::Yellow, Shape::Box), (Color::Green, Shape::Ball)];
/// Size-shape pairs no training clip combines.
pub const SIZE_SHAPE: [(Size, Shape); 2] = [(Size::Small, Shape::Triangle), (Size::Large, Shape::Box)];
/// No training clip launches an object faster than this horizontally (m/s): rolls start at
/// 1.8-2.8, slides at 3.2-4.2 (up to 5.0 set up to collide), throws at 1.0-4.5.
pub const MAX_TRAINING_SPEED: f64 = 5.0;
/// Held-out clips launch their mover this much faster than a training clip would.
const SPEED_FACTOR: f64 = 1.6;

/// A property of a clip that training never shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldOut {
    ColorShape,
    SizeShape,
    Speed,
}

impl HeldOut {
    pub const ALL: [HeldOut; 3] = [HeldOut::ColorShape, HeldOut::SizeShape, HeldOut::Speed];

    pub fn word(self) -> &'static str {
        match self {
            HeldOut::ColorShape => "color_shape",
            HeldOut::SizeShape => "size_shape",
            HeldOut::Speed => "speed",
        }
    }
}

fn pair_held_out(color: Option<Color>, size: Option<Size>, shape: Option<Shape>) -> Vec<HeldOut> {
    let mut out = Vec::new();
    if COLOR_SHAPE.iter().any(|&(c, s)| color == Some(c) && shape == Some(s)) {
        out.push(HeldOut::ColorShape);
    }
    if SIZE_SHAPE.iter().any(|&(z, s)| size == Some(z) && shape == Some(s)) {
        out.push(HeldOut::SizeShape);
    }
    out
}

/// Whether a description combines a held-out pair (what training redraws).
pub fn description_held_out(desc: &Description) -> bool {
    desc.objects.iter().any(|o| !pair_held_out(o.color, o.size, o.shape).is_empty())
}

/// The held-out properties of a clip (empty: in distribution).
pub fn held_out(spec: &Spec) -> Vec<HeldOut> {
    let mut out: Vec<HeldOut> = Vec::new();
    for o in &spec.objects {
        for h in pair_held_out(Some(o.color), Some(o.size), Some(o.shape)) {
            if !out.contains(&h) {
                out.push(h);
            }
        }
        if o.vx.abs() > MAX_TRAINING_SPEED + 1e-9 && !out.contains(&HeldOut::Speed) {
            out.push(HeldOut::Speed);
        }
    }
    out.sort_by_key(|h| *h as u8);
    out
}

/// The split word a suite line carries.
pub fn split_of(spec: &Spec) -> &'static str {
    if held_out(spec).is_empty() {
        "in_distribution"
    } else {
        "held_out"
    }
}

/// Makes a drawn description held out in one way (`kind`): its first object becomes a
/// held-out pair, or (speed) a mover that [`speed_up`] then launches too fast to be seen
/// in training.
pub fn make_held_out(desc: &mut Description, kind: HeldOut, rng: &mut Rng) {
    let o = &mut desc.objects[0];
    match kind {
        HeldOut::ColorShape => {
            let (c, s) = *rng.pick(&COLOR_SHAPE);
            o.shape = Some(s);
            // The colour may be another object's: give that one the first's.
            let old = o.color;
            o.color = Some(c);
            for other in desc.objects.iter_mut().skip(1) {
                if other.color == Some(c) {
                    other.color = old;
                }
            }
        }
        HeldOut::SizeShape => {
            let (z, s) = *rng.pick(&SIZE_SHAPE);
            o.shape = Some(s);
            o.size = Some(z);
        }
        HeldOut::Speed => {
            if !matches!(o.action, Some(Action::Roll | Action::Slide | Action::Throw)) {
                o.action = Some(if o.shape == Some(Shape::Ball) { Action::Roll } else { Action::Slide });
                o.direction = Some(*rng.pick(Direction::ALL));
            }
            desc.collide = false;
            desc.ramp = false;
        }
    }
    let o = &mut desc.objects[0];
    if o.shape != Some(Shape::Ball) && o.action == Some(Action::Roll) {
        o.action = Some(Action::Slide);
    }
    if o.shape == Some(Shape::Ball) && o.action == Some(Action::Slide) {
        o.action = Some(Action::Roll);
    }
}

/// Launches the first object of a spec faster than any training clip (x `SPEED_FACTOR`,
/// at least just above [`MAX_TRAINING_SPEED`]), its spin kept rolling for a ball.
pub fn speed_up(spec: &mut Spec) {
    let o = &mut spec.objects[0];
    let sign = if o.vx < 0.0 { -1.0 } else { 1.0 };
    o.vx = sign * (o.vx.abs() * SPEED_FACTOR).max(MAX_TRAINING_SPEED + 0.2);
    if o.shape == Shape::Ball && o.action != Action::Throw {
        o.spin = -o.vx / o.size.radius();
    }
}
