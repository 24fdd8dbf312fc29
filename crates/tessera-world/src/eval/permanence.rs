//! Permanence and consistency: what goes out of sight comes back the same where its motion
//! leads, nothing vanishes or pops in mid-frame; colours and sizes stay stable, with no
//! jumps, flicker or stutter.

use super::analysis::{median, Analysis, Sighting};
use super::physics::near_another;
use super::segment::shape_of_spread;
use super::*;

pub(super) fn permanence(
    a: &Analysis,
    chains: &[Chain],
    vis: &[(Color, &[objects::Visibility])],
    checks: &mut Vec<Check>,
) {
    use Dimension::Permanence as D;
    for c in chains {
        let label = format!("{} object", c.color);
        // Fully in view at a frame, as the simulation says (true without a spec).
        let in_view = |f: usize| {
            vis.iter()
                .find(|(col, _)| *col == c.color)
                .is_none_or(|(_, v)| v.get(f).is_none_or(|x| *x == objects::Visibility::Full))
        };
        for (n, &ti) in c.tracks.iter().enumerate() {
            let t = &a.tracks[ti];
            let full = t.full_area();
            let first = &t.sightings[0];
            let last = t.sightings.last().unwrap();
            let shot = &a.shots[t.shot];
            // Appearing: from the frame's edge, at the shot's start, or emerging (partly
            // hidden at first). Popping into view whole mid-frame is not permanence.
            // (Objects also pass in front of each other: next to another, it may be hidden.)
            let beside_other = |q: &Sighting| near_another(a, t, q, 1, 1.3);
            // (And fast objects cross the frame's edge between two frames: within one
            // frame's travel of the edge counts as leaving or entering through it.)
            let near_edge = |q: &Sighting, other: Option<&Sighting>| {
                let step = other.map_or(0.0, |o| (o.blob.cx - q.blob.cx).hypot(o.blob.cy - q.blob.cy)) + 1.0;
                let b = &q.blob;
                let gap =
                    (b.x0 as f32).min(b.y0 as f32).min((a.width - 1 - b.x1) as f32).min((a.height - 1 - b.y1) as f32);
                gap <= step
            };
            let popped = first.frame > shot.start
                && in_view(first.frame - 1)
                && !near_edge(first, t.sightings.get(1))
                && first.blob.area >= 0.85 * full
                && !beside_other(first);
            if popped {
                check(checks, D, 0.0, format!("{label}: appears from nowhere at frame {}", first.frame));
            }
            // Leaving: the same, at the end.
            let before_last = t.sightings.len().checked_sub(2).map(|k| &t.sightings[k]);
            let vanished = last.frame + 1 < shot.end
                && in_view(last.frame + 1)
                && !near_edge(last, before_last)
                && last.blob.area >= 0.85 * full
                && !beside_other(last);
            if vanished {
                check(checks, D, 0.0, format!("{label}: vanishes at frame {}", last.frame));
            }
            // Coming back after being hidden: the same shape and size, where it should be.
            if let Some(&next) = c.tracks.get(n + 1) {
                let u = &a.tracks[next];
                if u.shot == t.shot {
                    let back = &u.sightings[0];
                    let gap = (back.frame - last.frame) as f32 * a.dt();
                    let k = t.sightings.len().saturating_sub(4);
                    let prev = &t.sightings[k];
                    let dtp = (last.frame - prev.frame).max(1) as f32 * a.dt();
                    let vx = (last.x - prev.x) / dtp;
                    let predicted = last.x + vx * gap;
                    let err = (back.x - predicted).abs();
                    let pos = (1.0 - (err - 0.6) / 1.5).clamp(0.0, 1.0);
                    let shape_ok = match (
                        median(t.clean().map(|q| q.blob.spread).collect()),
                        median(u.clean().map(|q| q.blob.spread).collect()),
                    ) {
                        (Some(p), Some(q)) => (shape_of_spread(p) == shape_of_spread(q)) as u8 as f32,
                        _ => 1.0,
                    };
                    let (r0, r1) = (t.radius(), u.radius());
                    let size_ok = if r0 > 0.0 && r1 > 0.0 {
                        (1.0 - ((r1 / r0).ln().abs() - 0.2) / 0.3).clamp(0.0, 1.0)
                    } else {
                        1.0
                    };
                    let score = (pos + shape_ok + size_ok) / 3.0;
                    check(
                        checks,
                        D,
                        score as f64,
                        format!("{label}: back after {gap:.2} s, {err:.2} m from where its motion leads"),
                    );
                } else {
                    // Across a cut: the same object keeps its shape.
                    let (p, q) = (
                        median(t.clean().map(|q| q.blob.spread).collect()),
                        median(u.clean().map(|q| q.blob.spread).collect()),
                    );
                    if let (Some(p), Some(q)) = (p, q) {
                        let ok = shape_of_spread(p) == shape_of_spread(q);
                        check(checks, D, ok as u8 as f64, format!("{label}: same shape after the cut"));
                    }
                }
            }
        }
    }
}

pub(super) fn consistency(a: &Analysis, checks: &mut Vec<Check>) {
    use Dimension::Consistency as D;
    for t in &a.tracks {
        let label = format!("{} object", t.color);
        let clean: Vec<&Sighting> = t.clean().collect();
        if clean.len() >= 3 {
            let radii: Vec<f32> = clean.iter().map(|q| q.radius).collect();
            let mean = radii.iter().sum::<f32>() / radii.len() as f32;
            let sd = (radii.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / radii.len() as f32).sqrt();
            let cv = sd / mean.max(1e-6);
            law_check(
                checks,
                D,
                "size",
                (1.0 - (cv as f64 - 0.06) / 0.2).clamp(0.0, 1.0),
                format!("{label}: size varies {:.0}%", cv * 100.0),
            );
            let med = [0, 1, 2].map(|c| median(clean.iter().map(|q| q.blob.mean[c]).collect()).unwrap_or(0.0));
            let mut devs: Vec<f32> = clean.iter().map(|q| dist(q.blob.mean, med)).collect();
            devs.sort_by(|a, b| a.total_cmp(b));
            let p90 = devs[(devs.len() * 9 / 10).min(devs.len() - 1)];
            law_check(
                checks,
                D,
                "colour",
                (1.0 - (p90 as f64 - 10.0) / 30.0).clamp(0.0, 1.0),
                format!("{label}: colour varies {p90:.0} levels"),
            );
        }
        // Jumps: moving farther in one frame than anything in the world can.
        let steps: Vec<f32> = t
            .sightings
            .windows(2)
            .filter(|w| w[1].frame == w[0].frame + 1)
            .map(|w| (w[1].x - w[0].x).hypot(w[1].y - w[0].y))
            .collect();
        if !steps.is_empty() {
            let limit = 9.0 * a.dt() + 1.5 / a.ppm[t.shot];
            let jumps = steps.iter().filter(|&&d| d > limit).count();
            law_check(
                checks,
                D,
                "jumps",
                1.0 - 5.0 * jumps as f64 / steps.len() as f64,
                format!("{label}: {jumps} jump(s) in {} steps", steps.len()),
            );
        }
        // Jerks: moving at 1 m/s or more, stalling for one to four frames, then moving at
        // that speed again, with nothing near: motion in bursts (a decoder that repeats
        // frames within a latent's span), not motion the world makes.
        let s = &t.sightings;
        let full = t.full_area();
        let whole = |q: &Sighting| !q.blob.touches_border && q.blob.area >= 0.8 * full;
        let step = |i: usize| -> Option<f32> {
            let (p, q) = (s.get(i)?, s.get(i + 1)?);
            (q.frame == p.frame + 1 && whole(p) && whole(q)).then(|| (q.x - p.x).hypot(q.y - p.y))
        };
        let fast = a.dt();
        let (mut stalls, mut moving) = (0, 0);
        let mut i = 1;
        while i + 1 < s.len() {
            let Some(before) = step(i - 1).filter(|&d| d >= fast) else {
                i += 1;
                continue;
            };
            moving += 1;
            let mut j = i;
            while j < i + 4 && step(j).is_some_and(|d| d < 0.25 * before) {
                j += 1;
            }
            let after = step(j);
            // The same way on both sides (a bounce also stalls for a frame, and turns).
            let same_way = after.is_some() && {
                let (u, v) = ((s[i].x - s[i - 1].x, s[i].y - s[i - 1].y), (s[j + 1].x - s[j].x, s[j + 1].y - s[j].y));
                u.0 * v.0 + u.1 * v.1 > 0.5 * u.0.hypot(u.1) * v.0.hypot(v.1)
            };
            if j > i
                && same_way
                && after.is_some_and(|d| d >= fast && d >= 4.0 * step(j - 1).unwrap_or(0.0))
                && !s[i..=j].iter().any(|q| near_another(a, t, q, 1, 1.6))
            {
                stalls += 1;
            }
            i = j.max(i + 1);
        }
        if stalls > 0 {
            law_check(
                checks,
                D,
                "jerks",
                (1.0 - 4.0 * stalls as f64 / moving.max(1) as f64).max(0.0),
                format!("{label}: stalls and starts again {stalls} time(s) while moving fast"),
            );
        }
    }
    // Flicker: the frame's brightness jumping and coming back.
    let b = &a.brightness;
    if b.len() >= 3 {
        let cuts: Vec<usize> = a.shots.iter().map(|s| s.start).collect();
        let mut flicker = 0;
        let mut n = 0;
        for t in 1..b.len() - 1 {
            if cuts.contains(&t) || cuts.contains(&(t + 1)) {
                continue;
            }
            n += 1;
            if (b[t] - (b[t - 1] + b[t + 1]) / 2.0).abs() > 2.5 {
                flicker += 1;
            }
        }
        law_check(
            checks,
            D,
            "flicker",
            1.0 - 10.0 * flicker as f64 / n.max(1) as f64,
            format!("brightness flickers in {flicker} of {n} frames"),
        );
    }
    // Stutter: frames repeated while objects were moving.
    // A frozen video: frames repeat right after something moved fast (nothing in the
    // world stops dead from 1 m/s within a frame); the whole run counts.
    // (Landing stops a fall dead: moving down onto the floor does not count.)
    let fast_before = |t: usize| {
        a.tracks.iter().any(|tr| {
            let w: Vec<&Sighting> = tr.sightings.iter().filter(|q| q.frame + 2 >= t && q.frame < t).collect();
            if w.len() != 2 {
                return false;
            }
            let (vx, vy) = ((w[1].x - w[0].x) / a.dt(), (w[1].y - w[0].y) / a.dt());
            let landed = vy < 0.0 && w[1].bottom < (0.15f32).max(3.0 / a.ppm[tr.shot]);
            vx.abs() > 1.0 || (vx.hypot(vy) > 1.0 && !landed)
        })
    };
    let mut stuck = 0;
    let mut in_run = false;
    for t in 1..a.frames {
        in_run = a.repeated[t] && (in_run || fast_before(t));
        if in_run {
            stuck += 1;
        }
    }
    if a.frames > 2 {
        let frac = stuck as f64 / (a.frames - 1) as f64;
        law_check(checks, D, "stutter", 1.0 - 3.0 * frac, format!("{stuck} frame(s) repeat while things move"));
    }
}
