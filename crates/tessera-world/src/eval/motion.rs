//! Motion: each described object does what the description says (falls and bounces, rolls
//! or slides the stated way, is thrown in an arc, rolls down a ramp, rests, collides), each
//! check scaled by the object's tracked time.

use super::analysis::Analysis;
use super::*;

pub(super) fn motion(
    desc: &Description,
    spec: Option<&Spec>,
    a: &Analysis,
    chains: &[Chain],
    assignment: &[Option<usize>],
    weights: &[f64],
    checks: &mut Vec<Check>,
) {
    use Dimension::Motion as D;
    for (i, (o, m)) in desc.objects.iter().zip(assignment).enumerate() {
        let Some(action) = o.action else { continue };
        let Some(k) = m else {
            check(checks, D, 0.0, format!("{} {}: not found", name(o), action));
            continue;
        };
        // The first track (its first shot) shows the action's start.
        let tr = &a.tracks[chains[*k].tracks[0]];
        let s = series(a, tr);
        let r = tr.radius().max(0.05);
        let horizon = ((0.7 / a.dt()) as usize).max(2).min(s.len() - 1);
        let (x0, y0) = (s[0].1, s[0].2);
        let (xe, ye) = (s[horizon].1, s[horizon].2);
        let dir_ok = |d: Option<Direction>| match d {
            None => 1.0,
            Some(Direction::Right) => ((xe - x0) / 0.4).clamp(0.0, 1.0) as f64,
            Some(Direction::Left) => ((x0 - xe) / 0.4).clamp(0.0, 1.0) as f64,
        };
        let nb = bounces(a, tr).len();
        let (score, what) = match action {
            Action::Rest => {
                let moved = s.iter().map(|p| (p.1 - x0).hypot(p.2 - y0)).fold(0f32, f32::max);
                ((1.0 - (moved - 0.5 * r - 0.1) / 0.5).clamp(0.0, 1.0) as f64, format!("rests (moved {moved:.2} m)"))
            }
            Action::Drop => {
                // It must fall (a frozen object "first moves down" by not moving at all);
                // a ball then bounces.
                let fell = ((y0 - s.iter().map(|p| p.2).fold(f32::MAX, f32::min)) / 0.3).clamp(0.0, 1.0) as f64;
                let first_down = if s.len() > 2 && s[2.min(s.len() - 1)].2 < y0 - 0.02 { 1.0 } else { 0.0 };
                let bounced = if o.shape == Some(Shape::Ball) { (nb > 0) as u8 as f64 } else { 1.0 };
                (fell * (first_down + bounced) / 2.0, format!("falls and bounces ({nb} bounce(s) seen)"))
            }
            Action::Roll | Action::Slide => {
                let flat = if s.iter().take(horizon + 1).all(|p| p.3 < 0.3) { 1.0 } else { 0.5 };
                (
                    dir_ok(o.direction) * flat,
                    format!("{} {} (moved {:+.2} m)", action, o.direction.map_or("", |d| d.word()), xe - x0),
                )
            }
            Action::Throw => {
                let peak = s.iter().take(s.len() / 2 + 1).map(|p| p.2).fold(f32::MIN, f32::max);
                let rose = ((peak - y0) / 0.2).clamp(0.0, 1.0) as f64;
                (
                    rose * 0.5 + dir_ok(o.direction) * 0.5,
                    format!("thrown {} (rose {:.2} m)", o.direction.map_or("", |d| d.word()), peak - y0),
                )
            }
            Action::Ramp => {
                let down = ((y0 - ye) / 0.3).clamp(0.0, 1.0) as f64;
                (
                    down * 0.5 + dir_ok(o.direction) * 0.5,
                    format!("down the ramp {} ", o.direction.map_or("", |d| d.word())),
                )
            }
        };
        let w = weights[i];
        let tracked = if w < 1.0 { format!(" (tracked weight {w:.2})") } else { String::new() };
        check(checks, D, score * w, format!("{} {}{tracked}", name(o), what));
        // The simulation's bounce count, where the clip came from the world.
        if let Some(spec) = spec {
            let shot_end = a.shots[0].end as f64 / a.fps;
            let expected = spec
                .events
                .iter()
                .filter(|e| matches!(e, Event::Bounce { object, speed, t } if *object == i && *speed > 3.0 && *t < shot_end))
                .count();
            if expected > 0 && o.shape == Some(Shape::Ball) {
                let score = (nb.min(expected) as f64 / expected as f64).min(1.0);
                check(checks, D, score * w, format!("{} bounces {expected} time(s) (seen {nb})", name(o)));
            }
        }
    }
    if desc.collide {
        let w = weights.iter().take(2).fold(1f64, |a, &b| a.min(b));
        let pair: Vec<usize> = assignment.iter().flatten().copied().take(2).collect();
        let score = if pair.len() == 2 {
            let mut closest = f32::MAX;
            for &ta in &chains[pair[0]].tracks {
                for &tb in &chains[pair[1]].tracks {
                    let (ta, tb) = (&a.tracks[ta], &a.tracks[tb]);
                    if ta.shot != tb.shot {
                        continue;
                    }
                    let reach = ta.radius() + tb.radius();
                    for p in &ta.sightings {
                        if let Some(q) = tb.sightings.iter().find(|q| q.frame == p.frame) {
                            closest = closest.min((p.x - q.x).hypot(p.y - q.y) / reach);
                        }
                    }
                }
            }
            (1.0 - (closest - 1.25) / 0.5).clamp(0.0, 1.0) as f64
        } else {
            0.0
        };
        check(checks, D, score * w, "the objects collide");
    }
}
