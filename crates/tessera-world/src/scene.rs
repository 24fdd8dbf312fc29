//! Scene generation: turning a [`Description`] (what a prompt says, perhaps very little)
//! into a full [`Spec`] the simulator can run, choosing everything unstated at random
//! from a seed, and placing objects so the stated action actually happens in view.

use crate::rng::Rng;
use crate::sim::{simulate, Trajectory, GRAVITY};
use crate::spec::*;

/// Choices for generated clips that a description does not carry.
#[derive(Debug, Clone)]
pub struct SceneOptions {
    /// Duration when the description does not state one.
    pub seconds: f64,
    /// Probability of a multi-shot clip (when the description does not say).
    pub cut_probability: f64,
    /// Draw no clip that combines a held-out pair ([`crate::holdout`]): what training
    /// sets, so the benchmark's held-out split is never seen.
    pub hold_out: bool,
}

impl Default for SceneOptions {
    fn default() -> Self {
        SceneOptions { seconds: 3.0, cut_probability: 0.12, hold_out: false }
    }
}

/// A spec with its simulated trajectory; `spec.events` is filled.
pub struct Scene {
    pub spec: Spec,
    pub trajectory: Trajectory,
}

impl Scene {
    /// Simulates a spec (events are recomputed, cut events added).
    pub fn new(mut spec: Spec) -> Self {
        let (trajectory, mut events) = simulate(&spec);
        events.extend(spec.shots.iter().skip(1).map(|s| Event::Cut { t: s.start }));
        events.sort_by(|a, b| a.time().total_cmp(&b.time()));
        spec.events = events;
        Scene { spec, trajectory }
    }

    /// A renderer of this scene at a size and frame rate.
    pub fn renderer(&self, width: usize, height: usize, fps: f64) -> crate::render::Renderer<'_> {
        crate::render::Renderer::new(&self.spec, &self.trajectory, width, height, fps)
    }
}

/// A random description: what the world's prompt suites are drawn from.
pub fn random_description(rng: &mut Rng) -> Description {
    let count = match rng.unit() {
        u if u < 0.55 => 1,
        u if u < 0.9 => 2,
        _ => 3,
    };
    let mut objects = Vec::new();
    let mut colors: Vec<Color> = Color::ALL.to_vec();
    for _ in 0..count {
        let shape = *rng.pick(&[Shape::Ball, Shape::Ball, Shape::Box, Shape::Triangle]);
        let color = colors.remove(rng.below(colors.len()));
        let actions: &[Action] = if shape == Shape::Ball {
            &[Action::Drop, Action::Drop, Action::Roll, Action::Roll, Action::Throw, Action::Rest]
        } else {
            &[Action::Drop, Action::Drop, Action::Slide, Action::Throw, Action::Rest]
        };
        let action = *rng.pick(actions);
        objects.push(ObjectDescription {
            shape: Some(shape),
            color: Some(color),
            size: Some(*rng.pick(Size::ALL)),
            action: Some(action),
            direction: None,
        });
    }
    let collide = count == 2 && rng.chance(0.3);
    if collide {
        for o in &mut objects {
            o.action = Some(if o.shape == Some(Shape::Ball) { Action::Roll } else { Action::Slide });
        }
        objects[0].direction = Some(Direction::Right);
        objects[1].direction = Some(Direction::Left);
    }
    let ramp = !collide && rng.chance(0.15);
    if ramp {
        objects[0].action = Some(Action::Ramp);
    }
    for o in &mut objects {
        if o.direction.is_none()
            && matches!(o.action, Some(Action::Roll | Action::Slide | Action::Throw | Action::Ramp))
        {
            o.direction = Some(*rng.pick(Direction::ALL));
        }
    }
    let moving = objects.iter().any(|o| matches!(o.action, Some(Action::Roll | Action::Slide)));
    let occluder = (moving && !collide && rng.chance(0.45)).then(|| *rng.pick(OccluderKind::ALL));
    let background = *rng.pick(Background::ALL);
    let camera = match rng.unit() {
        u if u < 0.6 => CameraMotion::Static,
        _ => *rng.pick(&CameraMotion::ALL[1..]),
    };
    Description {
        objects,
        background: Some(background),
        floor: Some(if background == Background::Indoor { *rng.pick(&Floor::ALL[1..]) } else { *rng.pick(Floor::ALL) }),
        lighting: Some(*rng.pick(Lighting::ALL)),
        camera: Some(camera),
        occluder,
        ramp,
        collide,
        shots: None,
        seconds: None,
    }
}

/// Height of a shape's centre when it rests flat on the floor.
pub fn rest_height(shape: Shape, size: Size) -> f64 {
    let r = size.radius();
    match shape {
        Shape::Ball => r,
        Shape::Box => r * std::f64::consts::PI.sqrt() / 2.0,
        // Centroid of an equilateral triangle sits at a third of its height.
        Shape::Triangle => r * (4.0 * std::f64::consts::PI / (3.0 * 3f64.sqrt())).sqrt() / 2.0,
    }
}

/// Fills in everything a description leaves open and lays the scene out so that what it
/// states happens in view. Deterministic for a seed.
pub fn realize(desc: &Description, rng: &mut Rng, opts: &SceneOptions) -> Spec {
    let seconds = desc.seconds.unwrap_or(opts.seconds).max(0.0);
    let camera = desc.camera.unwrap_or_else(|| {
        if rng.chance(0.6) {
            CameraMotion::Static
        } else {
            *rng.pick(&CameraMotion::ALL[1..])
        }
    });
    let shots = desc.shots.unwrap_or_else(|| if seconds >= 2.0 && rng.chance(opts.cut_probability) { 2 } else { 1 });
    let mut objects_desc = desc.objects.clone();
    if objects_desc.is_empty() {
        objects_desc.push(ObjectDescription::default());
    }
    // Objects set to collide move toward each other: a direction the description leaves
    // open opposes its neighbour's ("a ball and a box collide"; drawn suites state both).
    let moves =
        |o: &ObjectDescription| matches!(o.action, Some(Action::Roll | Action::Slide | Action::Throw | Action::Ramp));
    if desc.collide && objects_desc.len() >= 2 && objects_desc.iter().any(|o| moves(o) && o.direction.is_none()) {
        let (k0, d0) = match objects_desc.iter().position(|o| o.direction.is_some()) {
            Some(k) => (k, objects_desc[k].direction.unwrap_or(Direction::Right)),
            None => (0, *rng.pick(Direction::ALL)),
        };
        let other = if d0 == Direction::Left { Direction::Right } else { Direction::Left };
        for (k, o) in objects_desc.iter_mut().enumerate() {
            if moves(o) {
                o.direction.get_or_insert(if k.abs_diff(k0) % 2 == 1 { other } else { d0 });
            }
        }
    }
    let mut used: Vec<Color> = objects_desc.iter().filter_map(|o| o.color).collect();
    let background = desc.background.unwrap_or_else(|| *rng.pick(Background::ALL));
    let mut spec = Spec {
        seconds,
        background,
        floor: desc.floor.unwrap_or_else(|| {
            // Rooms have made floors, not grass.
            let floors: &[Floor] = if background == Background::Indoor { &Floor::ALL[1..] } else { Floor::ALL };
            *rng.pick(floors)
        }),
        lighting: desc.lighting.unwrap_or_else(|| *rng.pick(Lighting::ALL)),
        camera,
        shots: vec![Shot { start: 0.0, framing: Framing::Wide, center: 0.0 }],
        objects: Vec::new(),
        occluders: Vec::new(),
        ramps: Vec::new(),
        events: Vec::new(),
        collide: desc.collide && objects_desc.len() >= 2,
    };
    // The view at t = 0 and the height of sky it shows at 16:9 (the flattest shape we
    // lay out for; taller frames show more sky).
    let view = spec.camera_at(0.0);
    let (left, right) = (view.center_x - view.width / 2.0 + 0.3, view.center_x + view.width / 2.0 - 0.3);
    let sky = view.width * 9.0 / 16.0 * (1.0 - FLOOR_ROW);

    let n = objects_desc.len();
    // Give each object a lane of the view so they start apart.
    let lane = (right - left) / n as f64;
    for (i, od) in objects_desc.iter().enumerate() {
        let shape = od.shape.unwrap_or_else(|| *rng.pick(Shape::ALL));
        let color = od.color.unwrap_or_else(|| {
            let free: Vec<Color> = Color::ALL.iter().copied().filter(|c| !used.contains(c)).collect();
            let c = if free.is_empty() { *rng.pick(Color::ALL) } else { *rng.pick(&free) };
            used.push(c);
            c
        });
        let size = od.size.unwrap_or_else(|| *rng.pick(Size::ALL));
        let mut action = od.action.unwrap_or_else(|| {
            *rng.pick(if shape == Shape::Ball {
                &[Action::Drop, Action::Roll, Action::Throw, Action::Rest][..]
            } else {
                &[Action::Drop, Action::Slide, Action::Throw, Action::Rest][..]
            })
        });
        // Balls roll, the others slide: the words differ, the physics decides.
        if action == Action::Roll && shape != Shape::Ball {
            action = Action::Slide;
        }
        if action == Action::Slide && shape == Shape::Ball {
            action = Action::Roll;
        }
        let r = size.radius();
        let h0 = rest_height(shape, size);
        let mut direction = od.direction;
        if direction.is_none() && matches!(action, Action::Roll | Action::Slide | Action::Throw | Action::Ramp) {
            direction = Some(*rng.pick(Direction::ALL));
        }
        let sign = if direction == Some(Direction::Left) { -1.0 } else { 1.0 };
        let (lane_lo, lane_hi) = (left + lane * i as f64 + r, left + lane * (i + 1) as f64 - r);
        let mid = (lane_lo + lane_hi.max(lane_lo)) / 2.0;
        let jitter = |rng: &mut Rng| rng.range(-0.25, 0.25) * (lane_hi - lane_lo).max(0.0);
        let mut o = ObjectSpec {
            shape,
            color,
            size,
            action,
            direction,
            x: mid,
            y: h0,
            vx: 0.0,
            vy: 0.0,
            angle: 0.0,
            spin: 0.0,
        };
        match action {
            Action::Rest => o.x = mid + jitter(rng),
            Action::Drop => {
                o.x = mid + jitter(rng);
                o.y = rng.range(0.55, 0.85) * sky.max(2.0 * r + 0.5);
                if shape != Shape::Ball {
                    o.angle = rng.range(-0.5, 0.5);
                }
            }
            Action::Roll | Action::Slide => {
                // Start on the side it moves away from, fast enough to cross the view.
                let mid_view = (left + right) / 2.0;
                o.x = if spec.collide {
                    mid_view - sign * rng.range(1.5, 2.1)
                } else if n == 1 {
                    if sign > 0.0 {
                        left + r + rng.range(0.0, 0.6)
                    } else {
                        right - r - rng.range(0.0, 0.6)
                    }
                } else if sign > 0.0 {
                    // Several objects: each starts in its own lane, clear of the others.
                    lane_lo
                } else {
                    lane_hi.max(lane_lo)
                };
                let mut speed = if shape == Shape::Ball { rng.range(1.8, 2.8) } else { rng.range(3.2, 4.2) };
                if spec.collide && shape != Shape::Ball {
                    // Enough to slide past the middle against friction (mu 0.45).
                    speed = (2.0 * 0.45 * GRAVITY * ((o.x - mid_view).abs() + 0.7)).sqrt();
                }
                o.vx = sign * speed;
                if shape == Shape::Ball {
                    o.spin = -o.vx / r;
                }
            }
            Action::Throw => {
                o.x = if n == 1 {
                    if sign > 0.0 {
                        left + r + 0.3
                    } else {
                        right - r - 0.3
                    }
                } else if sign > 0.0 {
                    lane_lo
                } else {
                    lane_hi.max(lane_lo)
                };
                o.y = h0 + rng.range(0.3, 0.8);
                let peak = rng.range(0.45, 0.75) * sky - o.y;
                o.vy = (2.0 * GRAVITY * peak.max(0.3)).sqrt();
                // Land about two thirds of the way across.
                let flight = o.vy / GRAVITY * 2.0;
                o.vx = sign * ((right - left) * rng.range(0.45, 0.65) / flight).clamp(1.0, 4.5);
                o.spin = if shape == Shape::Ball { -o.vx / r } else { -sign * rng.range(1.0, 3.0) };
            }
            Action::Ramp => {
                // The ramp's high end on the side the object starts from.
                let len = 2.4;
                let height = 1.4;
                let x_high = if sign > 0.0 { left + 0.2 } else { right - 0.2 };
                let x_low = x_high + sign * len;
                spec.ramps.push(RampSpec { x_low, x_high, height });
                let u = 0.25;
                let x = x_high + sign * len * u;
                let slope = (height / len).atan();
                let surface = height * (1.0 - u);
                // On the slope, its flat side down: the slope falls toward `sign`, so its
                // outward normal is (sign sin, cos) and the object turns by -sign slope.
                o.x = x + sign * slope.sin() * h0;
                o.y = surface + slope.cos() * h0 + 0.01;
                o.angle = if shape == Shape::Ball { 0.0 } else { -sign * slope };
            }
        }
        spec.objects.push(o);
    }
    // An occluder where the first horizontally moving object will pass.
    let want_occluder =
        desc.occluder.or_else(|| (desc.objects.is_empty() && rng.chance(0.2)).then(|| *rng.pick(OccluderKind::ALL)));
    if let Some(kind) = want_occluder {
        let mover = spec
            .objects
            .iter()
            .find(|o| matches!(o.action, Action::Roll | Action::Slide | Action::Throw | Action::Ramp));
        let x = match mover {
            Some(o) => o.x + o.vx.signum().max(-1.0) * rng.range(1.6, 2.4) + if o.vx == 0.0 { 2.0 } else { 0.0 },
            None => rng.range(left + 1.0, right - 1.0),
        };
        spec.occluders.push(OccluderSpec { kind, x: x.clamp(left + 0.8, right - 0.8) });
    }
    if shots >= 2 && seconds > 0.0 {
        let cut = seconds * rng.range(0.4, 0.6);
        spec.shots.push(Shot { start: cut, framing: *rng.pick(&[Framing::Medium, Framing::Close]), center: 0.0 });
    }
    // Later shots centre on the first object where it is at the cut.
    if spec.shots.len() > 1 {
        let (traj, _) = simulate(&spec);
        for s in spec.shots.iter_mut().skip(1) {
            let p = traj.at(s.start)[0];
            s.center = (p.x as f64).clamp(-WALL_X + 2.0, WALL_X - 2.0);
        }
    }
    spec
}
