//! Rigid-body physics of the world: gravity, bounces with restitution, friction and
//! rolling, object-object collisions, the floor, side walls and ramps.
//!
//! A fixed time step (1/600 s) with sequential impulses at contacts (Catto, "Iterative
//! Dynamics with Temporal Coherence", GDC 2005), simplified: each contact is a point and a
//! normal, resolved a few times per step with Coulomb friction; positions are corrected by
//! a fraction of the penetration. Objects collide with each other as discs of their
//! nominal radius (all shapes have the same area, pi r^2, so sizes compare by area).
//! Free flight is exactly constant gravity (no drag), which the evaluator checks.

use crate::spec::{Event, ObjectSpec, OccluderKind, OccluderSpec, RampSpec, Shape, Spec, WALL_X};

pub const STEPS_PER_SECOND: f64 = 600.0;
pub const GRAVITY: f64 = 9.81;

/// Where an object is at one instant: centre (metres) and rotation (radians).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pose {
    pub x: f32,
    pub y: f32,
    pub angle: f32,
}

/// The poses of every object at every simulation step.
#[derive(Debug, Clone)]
pub struct Trajectory {
    pub objects: usize,
    /// Step-major: `poses[step * objects + i]`.
    pub poses: Vec<Pose>,
}

impl Trajectory {
    pub fn steps(&self) -> usize {
        self.poses.len() / self.objects.max(1)
    }

    /// Poses at time `t` (the nearest simulation step).
    pub fn at(&self, t: f64) -> &[Pose] {
        let last = self.steps().saturating_sub(1);
        let step = ((t * STEPS_PER_SECOND).round().max(0.0) as usize).min(last);
        &self.poses[step * self.objects..(step + 1) * self.objects]
    }
}

#[derive(Debug, Clone)]
struct Body {
    x: f64,
    y: f64,
    vx: f64,
    vy: f64,
    angle: f64,
    omega: f64,
    inv_mass: f64,
    inv_inertia: f64,
    radius: f64,
    /// Vertices in body coordinates (empty for a ball).
    verts: Vec<(f64, f64)>,
    restitution: f64,
    friction: f64,
    ball: bool,
    still_for: f64,
    asleep: bool,
    last_bounce: f64,
}

/// The vertices of a shape of nominal radius `r`, in body coordinates. Every shape has
/// the area of the disc of radius `r`.
pub fn shape_vertices(shape: Shape, r: f64) -> Vec<(f64, f64)> {
    match shape {
        Shape::Ball => Vec::new(),
        Shape::Box => {
            let h = r * std::f64::consts::PI.sqrt() / 2.0;
            vec![(-h, -h), (h, -h), (h, h), (-h, h)]
        }
        Shape::Triangle => {
            // Equilateral, centroid at the origin, area pi r^2.
            let big_r = r * (4.0 * std::f64::consts::PI / (3.0 * 3f64.sqrt())).sqrt();
            (0..3)
                .map(|k| {
                    let a = std::f64::consts::FRAC_PI_2 + k as f64 * 2.0 * std::f64::consts::PI / 3.0;
                    (big_r * a.cos(), big_r * a.sin())
                })
                .collect()
        }
    }
}

impl Body {
    fn new(o: &ObjectSpec) -> Self {
        let r = o.size.radius();
        let mass = std::f64::consts::PI * r * r;
        let verts = shape_vertices(o.shape, r);
        let inertia = match o.shape {
            Shape::Ball => mass * r * r / 2.0,
            Shape::Box => {
                let side = 2.0 * verts[1].0;
                mass * side * side / 6.0
            }
            Shape::Triangle => {
                let big_r = verts[0].1;
                mass * big_r * big_r / 4.0
            }
        };
        let (restitution, friction) = match o.shape {
            Shape::Ball => (0.72, 0.6),
            Shape::Box => (0.3, 0.45),
            Shape::Triangle => (0.25, 0.45),
        };
        Body {
            x: o.x,
            y: o.y,
            vx: o.vx,
            vy: o.vy,
            angle: o.angle,
            omega: o.spin,
            inv_mass: 1.0 / mass,
            inv_inertia: 1.0 / inertia,
            radius: r,
            verts,
            restitution,
            friction,
            ball: o.shape == Shape::Ball,
            still_for: 0.0,
            asleep: false,
            last_bounce: f64::NEG_INFINITY,
        }
    }

    fn world_verts(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        let (s, c) = self.angle.sin_cos();
        self.verts.iter().map(move |&(vx, vy)| (self.x + c * vx - s * vy, self.y + s * vx + c * vy))
    }

    /// Bounding radius of the shape.
    pub fn extent(&self) -> f64 {
        self.verts.iter().map(|&(x, y)| x.hypot(y)).fold(self.radius, f64::max)
    }
}

/// A static surface: a segment whose solid side is to the left of a -> b... expressed as
/// a point test returning (penetration depth, outward normal) for a point.
#[derive(Debug, Clone, Copy)]
enum Surface {
    Floor,
    WallLeft,
    WallRight,
    Ramp { x_low: f64, x_high: f64, height: f64 },
}

/// A contact: (depth, normal, point).
type Contact = (f64, (f64, f64), (f64, f64));
/// A body's contact with a surface: (depth, normal, point, the surface is ground, friction).
type Touch = (f64, (f64, f64), (f64, f64), bool, f64);

impl Surface {
    /// Contact of a disc (centre, radius) with the surface: (depth, normal, point).
    fn disc(&self, x: f64, y: f64, r: f64) -> Option<Contact> {
        match *self {
            Surface::Floor => (y < r).then_some((r - y, (0.0, 1.0), (x, 0.0))),
            Surface::WallLeft => (x - r < -WALL_X).then(|| (-WALL_X - (x - r), (1.0, 0.0), (-WALL_X, y))),
            Surface::WallRight => (x + r > WALL_X).then(|| (x + r - WALL_X, (-1.0, 0.0), (WALL_X, y))),
            Surface::Ramp { x_low, x_high, height } => {
                // Closest point on the wedge's two exposed edges: the slope and the side.
                let mut best: Option<Contact> = None;
                for (a, b) in [((x_low, 0.0), (x_high, height)), ((x_high, height), (x_high, 0.0))] {
                    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
                    let len2 = dx * dx + dy * dy;
                    let u = (((x - a.0) * dx + (y - a.1) * dy) / len2).clamp(0.0, 1.0);
                    let (qx, qy) = (a.0 + u * dx, a.1 + u * dy);
                    let d = (x - qx).hypot(y - qy);
                    if d < r && d > 1e-9 {
                        let n = ((x - qx) / d, (y - qy) / d);
                        if best.is_none_or(|b| r - d > b.0) {
                            best = Some((r - d, n, (qx, qy)));
                        }
                    }
                }
                best
            }
        }
    }

    /// Contact of a point (a polygon's vertex) with the surface.
    fn point(&self, x: f64, y: f64) -> Option<(f64, (f64, f64))> {
        match *self {
            Surface::Floor => (y < 0.0).then(|| (-y, (0.0, 1.0))),
            Surface::WallLeft => (x < -WALL_X).then(|| (-WALL_X - x, (1.0, 0.0))),
            Surface::WallRight => (x > WALL_X).then(|| (x - WALL_X, (-1.0, 0.0))),
            Surface::Ramp { x_low, x_high, height } => {
                let (lo, hi) = (x_low.min(x_high), x_low.max(x_high));
                if x <= lo || x >= hi || y <= 0.0 {
                    return None;
                }
                let top = height * (x - x_low) / (x_high - x_low);
                if y >= top {
                    return None;
                }
                // Out through the slope or the vertical side, whichever is nearer.
                let (dx, dy) = (x_high - x_low, height);
                let len = dx.hypot(dy);
                let mut n = (-dy / len, dx / len);
                if n.1 < 0.0 {
                    n = (-n.0, -n.1);
                }
                let slope_depth = (top - y) * dx.abs() / len;
                let side_depth = (x - x_high).abs();
                let side_n = (if x_high > x_low { 1.0 } else { -1.0 }, 0.0);
                Some(if slope_depth <= side_depth { (slope_depth, n) } else { (side_depth, side_n) })
            }
        }
    }

    /// Ramps are slick (friction at most 0.2), so whatever is put on one goes down it.
    fn friction(&self, body: f64) -> f64 {
        match self {
            Surface::Ramp { .. } => body.min(0.2),
            _ => body,
        }
    }

    fn is_ground(&self) -> bool {
        matches!(self, Surface::Floor | Surface::Ramp { .. })
    }
}

/// Applies an impulse at contact point `p` with normal `n`; returns the normal velocity
/// before it (negative when approaching).
fn resolve(b: &mut Body, p: (f64, f64), n: (f64, f64), restitution: f64, friction: f64) -> f64 {
    let rc = (p.0 - b.x, p.1 - b.y);
    let vel = |b: &Body| (b.vx - b.omega * rc.1, b.vy + b.omega * rc.0);
    let cross = |a: (f64, f64), c: (f64, f64)| a.0 * c.1 - a.1 * c.0;
    let v = vel(b);
    let vn = v.0 * n.0 + v.1 * n.1;
    if vn >= 0.0 {
        return vn;
    }
    let kn = b.inv_mass + cross(rc, n).powi(2) * b.inv_inertia;
    let jn = -(1.0 + restitution) * vn / kn;
    b.vx += jn * n.0 * b.inv_mass;
    b.vy += jn * n.1 * b.inv_mass;
    b.omega += cross(rc, n) * jn * b.inv_inertia;
    // Coulomb friction along the tangent, at most mu times the normal impulse.
    let t = (-n.1, n.0);
    let v = vel(b);
    let vt = v.0 * t.0 + v.1 * t.1;
    let kt = b.inv_mass + cross(rc, t).powi(2) * b.inv_inertia;
    let jt = (-vt / kt).clamp(-friction * jn, friction * jn);
    b.vx += jt * t.0 * b.inv_mass;
    b.vy += jt * t.1 * b.inv_mass;
    b.omega += cross(rc, t) * jt * b.inv_inertia;
    vn
}

/// Runs the spec's physics for its whole duration. Returns every step's poses and the
/// physical events (bounces, wall hits, collisions, rests, occlusions), in time order.
pub fn simulate(spec: &Spec) -> (Trajectory, Vec<Event>) {
    let dt = 1.0 / STEPS_PER_SECOND;
    let steps = (spec.seconds * STEPS_PER_SECOND).round() as usize + 1;
    let mut bodies: Vec<Body> = spec.objects.iter().map(Body::new).collect();
    let mut surfaces = vec![Surface::Floor, Surface::WallLeft, Surface::WallRight];
    surfaces.extend(spec.ramps.iter().map(|r: &RampSpec| Surface::Ramp {
        x_low: r.x_low,
        x_high: r.x_high,
        height: r.height,
    }));
    let n = bodies.len();
    let mut poses = Vec::with_capacity(steps * n);
    let mut events = Vec::new();
    let mut last_pair = vec![f64::NEG_INFINITY; n * n];
    let mut hidden = vec![None::<usize>; n];

    for step in 0..steps {
        let t = step as f64 * dt;
        for b in &bodies {
            poses.push(Pose { x: b.x as f32, y: b.y as f32, angle: b.angle as f32 });
        }
        occlusion_events(t, &bodies, &spec.occluders, &mut hidden, &mut events);
        if step + 1 == steps {
            break;
        }
        // Integrate velocities (semi-implicit Euler: exact for constant gravity up to the
        // step, no energy drift).
        for b in bodies.iter_mut().filter(|b| !b.asleep) {
            b.vy -= GRAVITY * dt;
        }
        // Object-object contacts as discs.
        for i in 0..n {
            for j in i + 1..n {
                let (a, b) = pair(&mut bodies, i, j);
                let (dx, dy) = (b.x - a.x, b.y - a.y);
                let dist = dx.hypot(dy);
                let reach = a.radius + b.radius;
                if dist >= reach || dist < 1e-9 {
                    continue;
                }
                let nrm = (dx / dist, dy / dist);
                let vn = (b.vx - a.vx) * nrm.0 + (b.vy - a.vy) * nrm.1;
                if vn < 0.0 {
                    let e = if vn < -0.5 { a.restitution.min(b.restitution) } else { 0.0 };
                    let imp = -(1.0 + e) * vn / (a.inv_mass + b.inv_mass);
                    a.vx -= imp * nrm.0 * a.inv_mass;
                    a.vy -= imp * nrm.1 * a.inv_mass;
                    b.vx += imp * nrm.0 * b.inv_mass;
                    b.vy += imp * nrm.1 * b.inv_mass;
                    a.asleep = false;
                    b.asleep = false;
                    if vn < -0.3 && t - last_pair[i * n + j] > 0.25 {
                        events.push(Event::Collision { t, objects: [i, j] });
                    }
                    last_pair[i * n + j] = t;
                }
                // Push apart by mass.
                let push = (reach - dist) * 0.5;
                let (wa, wb) = (a.inv_mass / (a.inv_mass + b.inv_mass), b.inv_mass / (a.inv_mass + b.inv_mass));
                a.x -= nrm.0 * push * wa * 2.0;
                a.y -= nrm.1 * push * wa * 2.0;
                b.x += nrm.0 * push * wb * 2.0;
                b.y += nrm.1 * push * wb * 2.0;
            }
        }
        // Static contacts.
        for (i, b) in bodies.iter_mut().enumerate() {
            if b.asleep {
                continue;
            }
            let mut grounded = false;
            for iter in 0..4 {
                let mut contacts: Vec<Touch> = Vec::new();
                for s in &surfaces {
                    if b.ball {
                        if let Some((d, nrm, p)) = s.disc(b.x, b.y, b.radius) {
                            contacts.push((d, nrm, p, s.is_ground(), s.friction(b.friction)));
                        }
                    } else {
                        for v in b.world_verts().collect::<Vec<_>>() {
                            if let Some((d, nrm)) = s.point(v.0, v.1) {
                                contacts.push((d, nrm, v, s.is_ground(), s.friction(b.friction)));
                            }
                        }
                    }
                }
                for &(_, nrm, p, ground, mu) in &contacts {
                    let e = if iter == 0 { b.restitution } else { 0.0 };
                    let rc = (p.0 - b.x, p.1 - b.y);
                    let vn_now = (b.vx - b.omega * rc.1) * nrm.0 + (b.vy + b.omega * rc.0) * nrm.1;
                    let e = if vn_now < -0.8 { e } else { 0.0 };
                    let vn = resolve(b, p, nrm, e, mu);
                    if ground {
                        grounded = true;
                    }
                    if iter == 0 && vn < -1.0 && t - b.last_bounce > 0.15 {
                        b.last_bounce = t;
                        if ground {
                            events.push(Event::Bounce { t, object: i, speed: -vn });
                        } else {
                            events.push(Event::HitWall { t, object: i });
                        }
                    }
                }
                // Positional correction: out of the deepest contact.
                if let Some(&(d, nrm, _, _, _)) = contacts.iter().max_by(|a, b| a.0.total_cmp(&b.0)) {
                    let d = (d - 0.0005).max(0.0) * 0.8;
                    b.x += nrm.0 * d;
                    b.y += nrm.1 * d;
                }
                if contacts.is_empty() {
                    break;
                }
            }
            if grounded {
                // Rolling resistance: a ball on the ground slowly loses speed.
                if b.ball {
                    let decel = 0.35 * dt;
                    let speed = b.vx.hypot(b.vy);
                    if speed > decel {
                        b.vx -= b.vx / speed * decel;
                        b.vy -= b.vy / speed * decel;
                    } else {
                        b.vx = 0.0;
                        b.vy = 0.0;
                    }
                    b.omega *= 1.0 - 0.2 * dt;
                }
                let slow = b.vx.hypot(b.vy) < 0.06 && b.omega.abs() < 0.25;
                b.still_for = if slow { b.still_for + dt } else { 0.0 };
                if b.still_for > 0.3 {
                    b.asleep = true;
                    b.vx = 0.0;
                    b.vy = 0.0;
                    b.omega = 0.0;
                    events.push(Event::Rest { t, object: i });
                }
            } else {
                b.still_for = 0.0;
            }
        }
        for b in bodies.iter_mut().filter(|b| !b.asleep) {
            b.x += b.vx * dt;
            b.y += b.vy * dt;
            b.angle += b.omega * dt;
        }
    }
    events.sort_by(|a, b| a.time().total_cmp(&b.time()));
    (Trajectory { objects: n, poses }, events)
}

fn pair(bodies: &mut [Body], i: usize, j: usize) -> (&mut Body, &mut Body) {
    let (lo, hi) = bodies.split_at_mut(j);
    (&mut lo[i], &mut hi[0])
}

/// The region an occluder hides: (x min, x max, y max) of its solid part(s).
pub fn occluder_rects(o: &OccluderSpec) -> Vec<(f64, f64, f64, f64)> {
    let (hw, h) = o.extent();
    match o.kind {
        OccluderKind::Pillar | OccluderKind::Wall => vec![(o.x - hw, o.x + hw, 0.0, h)],
        // Trunk, and the canopy's inscribed box.
        OccluderKind::Tree => vec![(o.x - 0.35, o.x + 0.35, 0.0, 2.2), (o.x - hw, o.x + hw, 1.9, h)],
    }
}

fn occlusion_events(
    t: f64,
    bodies: &[Body],
    occluders: &[OccluderSpec],
    hidden: &mut [Option<usize>],
    events: &mut Vec<Event>,
) {
    for (i, b) in bodies.iter().enumerate() {
        let e = b.extent();
        let now = occluders.iter().position(|o| {
            occluder_rects(o)
                .iter()
                .any(|&(x0, x1, y0, y1)| b.x - e >= x0 && b.x + e <= x1 && b.y - e >= y0 - 0.05 && b.y + e <= y1)
        });
        match (hidden[i], now) {
            (None, Some(k)) => events.push(Event::Hidden { t, object: i, occluder: k }),
            (Some(k), None) => events.push(Event::Reappear { t, object: i, occluder: k }),
            _ => {}
        }
        hidden[i] = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::*;

    fn one(o: ObjectSpec, seconds: f64) -> Spec {
        Spec {
            seconds,
            background: Background::Day,
            floor: Floor::Wood,
            lighting: Lighting::Bright,
            camera: CameraMotion::Static,
            shots: vec![Shot { start: 0.0, framing: Framing::Wide, center: 0.0 }],
            objects: vec![o],
            occluders: vec![],
            ramps: vec![],
            events: vec![],
            collide: false,
        }
    }

    fn ball(x: f64, y: f64, vx: f64, vy: f64) -> ObjectSpec {
        ObjectSpec {
            shape: Shape::Ball,
            color: Color::Red,
            size: Size::Medium,
            action: Action::Drop,
            direction: None,
            x,
            y,
            vx,
            vy,
            angle: 0.0,
            spin: 0.0,
        }
    }

    #[test]
    fn free_fall_is_constant_gravity_and_bounces_lose_energy() {
        let (traj, events) = simulate(&one(ball(0.0, 3.0, 0.0, 0.0), 8.0));
        // Before touching the floor (r = 0.4 m), y = 3 - g t^2 / 2 (semi-implicit Euler is
        // off by at most g t dt / 2).
        for t in [0.1, 0.3, 0.5, 0.65] {
            let y = traj.at(t)[0].y as f64;
            assert!((y - (3.0 - GRAVITY * t * t / 2.0)).abs() < 0.01, "t={t}: y={y}");
        }
        let bounces: Vec<f64> = events
            .iter()
            .filter_map(|e| match e {
                Event::Bounce { speed, .. } => Some(*speed),
                _ => None,
            })
            .collect();
        assert!(bounces.len() >= 3, "{events:?}");
        // Impact speeds fall by the restitution each time.
        for w in bounces.windows(2).take(2) {
            let ratio = w[1] / w[0];
            assert!((ratio - 0.72).abs() < 0.05, "speed ratio {ratio}");
        }
        // Never through the floor by more than a centimetre.
        let lowest = traj.poses.iter().map(|p| p.y).fold(f32::MAX, f32::min);
        assert!(lowest > 0.39, "lowest centre {lowest}");
        assert!(events.iter().any(|e| matches!(e, Event::Rest { .. })), "comes to rest: {events:?}");
    }

    #[test]
    fn a_rolling_ball_rolls_without_slipping_and_slows() {
        let mut o = ball(-3.0, 0.4, 2.5, 0.0);
        o.spin = -2.5 / 0.4;
        let (traj, _) = simulate(&one(o, 2.0));
        let (a, b) = (traj.at(0.5)[0], traj.at(1.0)[0]);
        let dx = (b.x - a.x) as f64;
        let turned = (b.angle - a.angle) as f64;
        assert!(dx > 1.0 && dx < 1.3, "moved {dx}");
        // Rolling: the angle turns by distance / radius (clockwise when moving right).
        assert!((turned + dx / 0.4).abs() < 0.05, "turned {turned} for {dx}");
        let v1 = (traj.at(0.2)[0].x - traj.at(0.1)[0].x) * 10.0;
        let v2 = (traj.at(1.9)[0].x - traj.at(1.8)[0].x) * 10.0;
        assert!(v2 < v1, "rolling resistance: {v1} then {v2}");
    }

    #[test]
    fn objects_collide_and_walls_stop_them() {
        let mut spec = one(ball(-2.0, 0.4, 3.0, 0.0), 3.0);
        let mut other = ball(2.0, 0.4, -3.0, 0.0);
        other.color = Color::Blue;
        spec.objects.push(other);
        let (traj, events) = simulate(&spec);
        let hit = events.iter().find_map(|e| match e {
            Event::Collision { t, .. } => Some(*t),
            _ => None,
        });
        let t = hit.expect("the balls collide");
        // Skidding balls (no spin) slow to rolling speed, 2/3 of 3 m/s, before they meet.
        assert!((0.5..0.9).contains(&t), "collide at {t}");
        for p in traj.poses.chunks(2) {
            assert!((p[1].x - p[0].x).abs() > 0.75, "the balls overlap: {p:?}");
            assert!(p.iter().all(|q| q.x.abs() < WALL_X as f32));
        }
    }

    #[test]
    fn a_box_tumbles_and_settles_flat() {
        let mut o = ball(0.0, 2.0, 1.0, 0.0);
        o.shape = Shape::Box;
        o.angle = 0.4;
        let (traj, events) = simulate(&one(o, 4.0));
        let end = traj.at(4.0)[0];
        let quarter = std::f32::consts::FRAC_PI_2;
        let off = (end.angle / quarter - (end.angle / quarter).round()).abs();
        assert!(off < 0.02, "ends flat: angle {}", end.angle);
        let half = 0.4 * std::f32::consts::PI.sqrt() / 2.0;
        assert!((end.y - half).abs() < 0.01, "rests on a side: y {}", end.y);
        assert!(events.iter().any(|e| matches!(e, Event::Rest { .. })));
    }

    #[test]
    fn occluders_hide_and_release() {
        let mut spec = one(ball(-3.0, 0.25, 2.5, 0.0), 3.0);
        spec.objects[0].size = Size::Small;
        spec.objects[0].spin = -10.0;
        spec.occluders.push(OccluderSpec { kind: OccluderKind::Pillar, x: 0.0 });
        let (_, events) = simulate(&spec);
        let hidden = events.iter().position(|e| matches!(e, Event::Hidden { .. }));
        let back = events.iter().position(|e| matches!(e, Event::Reappear { .. }));
        assert!(hidden.is_some() && back > hidden, "{events:?}");
    }
}
