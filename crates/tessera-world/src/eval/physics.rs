//! Physics: laws that must all hold of every tracked object: free flight is a parabola
//! with the world's gravity, bounces lose energy, nothing sinks into the floor, hangs in the
//! air, stops dead or starts moving from rest by itself.

use super::analysis::{Analysis, Sighting, Track};
use super::*;
use crate::sim::GRAVITY;

pub(super) fn physics(desc: &Description, spec: Option<&Spec>, a: &Analysis, checks: &mut Vec<Check>) {
    use Dimension::Physics as D;
    let ramp = desc.ramp || spec.is_some_and(|s| !s.ramps.is_empty());
    let g = GRAVITY as f32;
    for tr in &a.tracks {
        let ppm = a.ppm[tr.shot];
        let px = 1.0 / ppm;
        let s = &tr.sightings;
        let label = format!("{} object", tr.color);
        let near_other = |q: &Sighting| near_another(a, tr, q, 0, 1.6);
        // Free flight: runs of consecutive clean airborne frames, split at local minima.
        let full = tr.full_area();
        let airborne = |q: &Sighting| {
            q.bottom > (0.1f32).max(2.0 * px) && !q.blob.touches_border && q.blob.area >= 0.8 * full && !near_other(q)
        };
        let mut runs: Vec<Vec<&Sighting>> = Vec::new();
        let mut cur: Vec<&Sighting> = Vec::new();
        for (k, q) in s.iter().enumerate() {
            let contiguous = cur.last().is_some_and(|p| p.frame + 1 == q.frame);
            let minimum = k > 0 && k + 1 < s.len() && s[k - 1].y > q.y && s[k + 1].y > q.y;
            if !airborne(q) || !contiguous || minimum {
                if cur.len() >= 5 {
                    runs.push(std::mem::take(&mut cur));
                }
                cur.clear();
            }
            if airborne(q) {
                cur.push(q);
            }
        }
        if cur.len() >= 5 {
            runs.push(cur);
        }
        let mut hanging = 0f32;
        for run in runs {
            let pts: Vec<(f32, f32)> = run.iter().map(|q| (q.frame as f32 * a.dt(), q.y)).collect();
            let (acc, rms) = fit_parabola(&pts);
            let moved = run.iter().map(|q| (q.x - run[0].x).hypot(q.y - run[0].y)).fold(0f32, f32::max);
            if moved < (1.0 * px).max(0.02) {
                hanging = hanging.max(run.len() as f32 * a.dt());
                continue;
            }
            if ramp && acc.abs() < 0.6 * g {
                continue; // sliding on a ramp, not flying
            }
            let err = (acc + g).abs() / g;
            let fit = (1.0 - (rms * ppm - 1.0) / 3.0).clamp(0.0, 1.0);
            let score = (1.0 - (err - 0.3) / 0.7).clamp(0.0, 1.0) * fit;
            law_check(
                checks,
                D,
                "gravity",
                score as f64,
                format!(
                    "{label}: flight at t={:.2}s accelerates {:.1} m/s^2 down (gravity {g:.1}), fit error {:.1} px",
                    pts[0].0,
                    -acc,
                    rms * ppm
                ),
            );
        }
        if hanging >= 0.4 && !ramp {
            law_check(checks, D, "support", 0.0, format!("{label}: hangs in the air for {hanging:.2} s"));
        }
        // Bounces lose energy: apex heights between bounces do not grow.
        let b = bounces(a, tr);
        if !b.is_empty() {
            // Segments between bounces: their apex, and whether another object came near
            // (a collision can give energy, which is not a violation).
            let mut segs = vec![(0, b[0])];
            for (i, &k) in b.iter().enumerate() {
                segs.push((k, b.get(i + 1).copied().unwrap_or(s.len())));
            }
            let apexes: Vec<f32> =
                segs.iter().map(|&(x, y)| s[x..y].iter().map(|q| q.y).fold(f32::MIN, f32::max)).collect();
            let touched: Vec<bool> = segs.iter().map(|&(x, y)| s[x..y].iter().any(near_other)).collect();
            // The last apex may be cut short by the clip's end; a gain shows anyway.
            let judged: Vec<bool> = (1..apexes.len())
                .filter(|&i| !touched[i] && !touched[i - 1])
                .map(|i| apexes[i] <= apexes[i - 1] * 1.05 + 0.05 + px)
                .collect();
            let pairs = judged.len();
            let ok = judged.iter().filter(|&&v| v).count();
            if pairs > 0 {
                law_check(
                    checks,
                    D,
                    "energy",
                    ok as f64 / pairs.max(1) as f64,
                    format!(
                        "{label}: bounce heights {}",
                        apexes.iter().map(|h| format!("{h:.2}")).collect::<Vec<_>>().join(" > ")
                    ),
                );
            }
        }
        // Nothing sinks into the floor.
        let sunk = s.iter().filter(|q| !q.blob.touches_border && q.bottom < -(0.06f32).max(1.5 * px)).count();
        let frac = sunk as f64 / s.len() as f64;
        // Free flight: away from the floor and everything else (so no contact can have
        // happened between frames), acceleration is gravity.
        let vmax = 9.0 * a.dt();
        let (mut triples, mut wrong) = (0, 0);
        for w in s.windows(3) {
            if w[1].frame != w[0].frame + 1 || w[2].frame != w[1].frame + 1 {
                continue;
            }
            let free = w.windows(2).all(|p| p[0].bottom + p[1].bottom > vmax)
                && w.iter().all(|q| !near_other(q) && !q.blob.touches_border && q.blob.area >= 0.8 * full);
            if !free || ramp {
                continue;
            }
            triples += 1;
            let acc = (w[2].y - 2.0 * w[1].y + w[0].y) / (a.dt() * a.dt());
            if (acc + g).abs() > 0.5 * g + 3.0 * px / (a.dt() * a.dt()) {
                wrong += 1;
            }
        }
        if triples >= 2 {
            law_check(
                checks,
                D,
                "gravity",
                1.0 - 2.0 * wrong as f64 / triples as f64,
                format!("{label}: {wrong} of {triples} free-flight steps break gravity"),
            );
        }
        // Nothing stops dead: moving at 1 m/s or more over a tenth of a second, then not at
        // all for a quarter. (Landing can stop a fall dead, and an apex is still for an
        // instant; nothing stops a slide or a flight dead. A box that tips over and lands
        // flat stops dead too: its centre moves up or down as it tips, so on the floor each
        // step must be level.)
        let mut dead = 0;
        // (Over at least two frames: one frame's step can be compression moving an edge.)
        let before = ((0.1 / a.dt()).round() as usize).max(2);
        let after = ((0.25 / a.dt()).round() as usize).max(3);
        for w in s.windows(before + after + 1) {
            let contiguous = w.windows(2).all(|p| p[1].frame == p[0].frame + 1);
            let (p0, p1) = (&w[0], &w[before]);
            let span = before as f32 * a.dt();
            let vx = (p1.x - p0.x).abs() / span;
            let vy = (p1.y - p0.y).abs() / span;
            let airborne = p1.bottom > (0.15f32).max(3.0 * px);
            let level = w[..=before].windows(2).all(|p| {
                let (dx, dy) = ((p[1].x - p[0].x).abs(), (p[1].y - p[0].y).abs());
                dx >= a.dt() && dx > 2.0 * dy
            });
            let moving = (vx >= 1.0 && vx > 2.0 * vy && level) || (airborne && vx.hypot(vy) >= 1.0);
            let still = w[before..].iter().all(|q| (q.x - p1.x).hypot(q.y - p1.y) < 0.5 * px);
            if contiguous && moving && still && !near_other(p1) && !p1.blob.touches_border {
                dead += 1;
            }
        }
        if dead > 0 {
            law_check(checks, D, "support", 0.0, format!("{label}: stops dead from speed {dead} time(s)"));
        }
        // Inertia: nothing at rest on the floor starts moving by itself (played backwards,
        // everything that came to rest does): still for 0.3 s, then 0.8 m/s or more within
        // a quarter second without its centre coming down, with nothing near to push it.
        let still_n = ((0.3 / a.dt()).round() as usize).max(3);
        let go_n = ((0.25 / a.dt()).round() as usize).max(2);
        let mut starts = Vec::new();
        for w in s.windows(still_n + go_n) {
            if !w.windows(2).all(|p| p[1].frame == p[0].frame + 1) {
                continue;
            }
            let p = &w[still_n - 1];
            let q = &w[still_n + go_n - 1];
            let tol = (0.75 * px).max(0.03);
            let still = w[..still_n].iter().all(|r| (r.x - p.x).hypot(r.y - p.y) < tol);
            let moved = (q.x - p.x).hypot(q.y - p.y) >= 0.8 * go_n as f32 * a.dt();
            // At rest on the floor, and it gains speed without coming down (a box balanced
            // on an edge may topple: its centre drops, so the energy was there).
            let resting = p.bottom < (0.15f32).max(3.0 * px);
            let from_nowhere = q.y >= p.y - 0.02;
            // (A blob partly hidden or cut by the edge moves its centroid without moving.)
            let pushed = w[still_n - 1..].iter().any(|r| near_another(a, tr, r, 1, 1.6) || r.blob.touches_border)
                || w.iter().any(|r| r.blob.area < 0.8 * full);
            if still && moved && resting && from_nowhere && !pushed && starts.last().is_none_or(|&f| p.frame > f + go_n)
            {
                starts.push(p.frame);
            }
        }
        if let Some(f) = starts.first() {
            law_check(
                checks,
                D,
                "inertia",
                0.0,
                format!("{label}: starts moving by itself from rest at frame {f} ({} time(s))", starts.len()),
            );
        }
        law_check(
            checks,
            D,
            "floor",
            1.0 - 4.0 * frac,
            format!("{label}: below the floor in {sunk} of {} frames", s.len()),
        );
    }
}

/// Whether another track than `track` is within `reach` times the two radii of sighting
/// `q`, within `frames` frames of it (objects in contact, or one hiding the other).
pub(super) fn near_another(a: &Analysis, track: &Track, q: &Sighting, frames: usize, reach: f32) -> bool {
    a.tracks.iter().any(|o| {
        !std::ptr::eq(o, track)
            && o.sightings.iter().any(|p| {
                p.frame.abs_diff(q.frame) <= frames && (p.x - q.x).hypot(p.y - q.y) < (p.radius + q.radius) * reach
            })
    })
}

/// Least-squares parabola y = c0 + c1 t + c2 t^2; returns (2 c2, rms residual).
fn fit_parabola(pts: &[(f32, f32)]) -> (f32, f32) {
    let n = pts.len() as f64;
    let t0 = pts.iter().map(|p| p.0 as f64).sum::<f64>() / n;
    let mut m = [[0f64; 3]; 3];
    let mut v = [0f64; 3];
    for &(t, y) in pts {
        let t = t as f64 - t0;
        let row = [1.0, t, t * t];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] += row[i] * row[j];
            }
            v[i] += row[i] * y as f64;
        }
    }
    let c = solve3(m, v);
    let rms = (pts
        .iter()
        .map(|&(t, y)| {
            let t = t as f64 - t0;
            (c[0] + c[1] * t + c[2] * t * t - y as f64).powi(2)
        })
        .sum::<f64>()
        / n)
        .sqrt();
    ((2.0 * c[2]) as f32, rms as f32)
}

fn solve3(mut m: [[f64; 3]; 3], mut v: [f64; 3]) -> [f64; 3] {
    for i in 0..3 {
        let p = (i..3).max_by(|&a, &b| m[a][i].abs().total_cmp(&m[b][i].abs())).unwrap();
        m.swap(i, p);
        v.swap(i, p);
        if m[i][i].abs() < 1e-12 {
            return [0.0; 3];
        }
        for r in 0..3 {
            if r != i {
                let f = m[r][i] / m[i][i];
                for c in 0..3 {
                    m[r][c] -= f * m[i][c];
                }
                v[r] -= f * v[i];
            }
        }
    }
    [v[0] / m[0][0], v[1] / m[1][1], v[2] / m[2][2]]
}
