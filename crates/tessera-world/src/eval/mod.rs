//! `tessera eval`'s scorer: finds the objects in a video by their palette colours, tracks
//! them with the camera's motion removed, and scores the video against a description in
//! five dimensions, each in [0, 1], and their mean:
//!
//! - **adherence**: the described objects are there (colour, shape, size, count), and the
//!   background, floor, lighting, camera motion and number of shots are as described;
//! - **motion**: each object does what the description says (falls and bounces, rolls or
//!   slides the stated way, is thrown in an arc, rolls down a ramp, rests, collides);
//! - **physics**: free flight is a parabola with the world's gravity, bounces lose
//!   energy, nothing sinks into the floor or hangs unsupported in the air;
//! - **permanence**: what goes out of sight (behind an occluder) comes back the same
//!   shape and size where its motion says; nothing vanishes or pops in mid-frame;
//! - **consistency**: colours and sizes stay stable; no flicker, jumps or stutter.
//!
//! Every check is listed in the report with its score and a reason, so a low number can
//! be traced to what caused it. Only regions that are objects count (objects.rs: the
//! described shape and an area within a factor of two of the described size); motion,
//! physics, permanence and consistency are weighted by how much of its expected on-screen
//! time each described object was tracked, so nothing found scores 0 there, and the
//! overall score is the geometric mean of the five.

pub mod analysis;
pub mod continuation;
pub mod corrupt;
pub mod objects;
pub mod segment;

use serde::{Deserialize, Serialize};

use crate::sim::GRAVITY;
use crate::spec::*;
use analysis::{analyse_with, median, Analysis, Sighting, Track};
use objects::Presence;
use segment::{shape_of_spread, size_of_radius};

/// The five dimensions and their mean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub adherence: f64,
    pub motion: f64,
    pub physics: f64,
    pub permanence: f64,
    pub consistency: f64,
    pub overall: f64,
}

impl Scores {
    pub const NAMES: [&'static str; 6] = ["adherence", "motion", "physics", "permanence", "consistency", "overall"];

    pub fn values(&self) -> [f64; 6] {
        [self.adherence, self.motion, self.physics, self.permanence, self.consistency, self.overall]
    }

    /// The mean of several videos' scores.
    pub fn mean(all: &[Scores]) -> Scores {
        let n = all.len().max(1) as f64;
        let sum = |f: fn(&Scores) -> f64| all.iter().map(f).sum::<f64>() / n;
        Scores {
            adherence: sum(|s| s.adherence),
            motion: sum(|s| s.motion),
            physics: sum(|s| s.physics),
            permanence: sum(|s| s.permanence),
            consistency: sum(|s| s.consistency),
            overall: sum(|s| s.overall),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Adherence,
    Motion,
    Physics,
    Permanence,
    Consistency,
}

/// One scored check. Physics and consistency hold only if all their laws do: their
/// score is the product over laws of the mean of each law's checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub dimension: Dimension,
    pub law: String,
    pub score: f64,
    pub what: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    pub scores: Scores,
    pub checks: Vec<Check>,
}

/// A video to score: RGB8 frames of one size and their frame rate.
pub struct VideoRef<'a> {
    pub width: usize,
    pub height: usize,
    pub frames: Vec<&'a [u8]>,
    pub fps: f64,
}

/// Scores a video against a description. `spec`, when the clip came from the world, adds
/// the simulation's own events (how many bounces) to the motion checks and says in which
/// frames each object should be in view.
pub fn evaluate(video: &VideoRef, desc: &Description, spec: Option<&Spec>) -> Evaluation {
    let frames: Vec<(usize, usize, &[u8])> = video.frames.iter().map(|f| (video.width, video.height, *f)).collect();
    let mut a = analyse_with(&frames, video.fps, spec.is_some());
    // Bands, floods and smears of a colour are not objects: only object-like tracks are
    // judged in any dimension.
    a.tracks.retain(objects::object_like);
    let chains = chains(&a);
    let mut checks = Vec::new();
    let assignment = assign(desc, &chains);
    let spec_matches = spec.filter(|s| s.objects.len() == desc.objects.len());
    let vis = spec_matches.map(|s| objects::visibility(s, a.frames, video.fps, a.width, a.height));
    // With a spec the camera's framing is known: sizes are judged at its true scale.
    let ppm: Option<Vec<f32>> = spec
        .map(|s| (0..a.frames).map(|f| (a.width as f64 / s.camera_at(f as f64 / video.fps).width) as f32).collect());
    let presence: Vec<Presence> = desc
        .objects
        .iter()
        .zip(&assignment)
        .enumerate()
        .map(|(i, (o, m))| {
            let tracks: Vec<&Track> =
                m.map_or(Vec::new(), |k| chains[k].tracks.iter().map(|&t| &a.tracks[t]).collect());
            objects::presence(&a, &tracks, o, vis.as_ref().map(|v| v[i].as_slice()), ppm.as_deref())
        })
        .collect();
    let weights: Vec<f64> = presence.iter().map(|p| p.weight).collect();
    adherence(desc, &a, &chains, &assignment, &presence, &mut checks);
    motion(desc, spec, &a, &chains, &assignment, &weights, &mut checks);
    physics(desc, spec, &a, &mut checks);
    // With a spec, each colour's visibility per frame (its object's), which excuses an
    // appearance or disappearance the simulation itself has (a zoom uncovering an object).
    let seen_by_colour: Vec<(Color, &[objects::Visibility])> = match (spec_matches, &vis) {
        (Some(s), Some(v)) => s.objects.iter().zip(v).map(|(o, v)| (o.color, v.as_slice())).collect(),
        _ => Vec::new(),
    };
    permanence(&a, &chains, &seen_by_colour, &mut checks);
    consistency(&a, &mut checks);
    // No credit without the thing: physics, permanence and consistency judge what was
    // tracked, scaled by how much of their expected on-screen time the described objects
    // were tracked (a "tracked" law, multiplied in like every law).
    if !desc.objects.is_empty() {
        let w = weights.iter().sum::<f64>() / weights.len() as f64;
        let what = format!(
            "tracked: {}",
            desc.objects
                .iter()
                .zip(&presence)
                .map(|(o, p)| format!("{} in {} of {} frames", name(o), p.tracked, p.expected))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for d in [Dimension::Physics, Dimension::Permanence, Dimension::Consistency] {
            law_check(&mut checks, d, "tracked", w, what.clone());
        }
        if !checks.iter().any(|c| c.dimension == Dimension::Motion) {
            law_check(&mut checks, Dimension::Motion, "tracked", w, what);
        }
    }
    let mean = |d: Dimension| {
        let v: Vec<f64> = checks.iter().filter(|c| c.dimension == d).map(|c| c.score).collect();
        if v.is_empty() {
            1.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let mut s = Scores {
        adherence: adherence_score(&checks),
        motion: mean(Dimension::Motion),
        physics: laws_score(&checks, Dimension::Physics),
        permanence: laws_score(&checks, Dimension::Permanence),
        consistency: laws_score(&checks, Dimension::Consistency),
        overall: 0.0,
    };
    s.overall = overall(&s);
    Evaluation { scores: s, checks }
}

/// The aggregate: the geometric mean of the five dimensions. An arithmetic mean let the
/// easy dimensions carry a video that fails the hard ones (a model that drew no objects
/// scored 0.561 on consistency's and physics' free points); the geometric mean is high
/// only when every dimension is, and a dimension at 0 makes the video 0 (README).
pub fn overall(s: &Scores) -> f64 {
    let d = [s.adherence, s.motion, s.physics, s.permanence, s.consistency];
    d.iter().map(|v| v.clamp(0.0, 1.0)).product::<f64>().powf(1.0 / d.len() as f64)
}

/// An object through the whole video: its tracks (in time order, across gaps and cuts).
struct Chain {
    color: Color,
    tracks: Vec<usize>,
    shape: Option<Shape>,
    size: Option<Size>,
    frames_seen: usize,
}

fn chains(a: &Analysis) -> Vec<Chain> {
    let mut order: Vec<usize> = (0..a.tracks.len()).collect();
    order.sort_by_key(|&i| a.tracks[i].first());
    let mut chains: Vec<Chain> = Vec::new();
    for i in order {
        let t = &a.tracks[i];
        // Continue the chain of this colour that ended most recently before this track.
        let pick = chains
            .iter()
            .enumerate()
            .filter(|(_, c)| c.color == t.color && a.tracks[*c.tracks.last().unwrap()].last() < t.first())
            .max_by_key(|(_, c)| a.tracks[*c.tracks.last().unwrap()].last())
            .map(|(k, _)| k);
        match pick {
            Some(k) => chains[k].tracks.push(i),
            None => chains.push(Chain { color: t.color, tracks: vec![i], shape: None, size: None, frames_seen: 0 }),
        }
    }
    for c in &mut chains {
        let clean: Vec<&Sighting> = c.tracks.iter().flat_map(|&i| a.tracks[i].clean()).collect();
        c.frames_seen = c.tracks.iter().map(|&i| a.tracks[i].sightings.len()).sum();
        c.shape = median(clean.iter().map(|s| s.blob.spread).collect()).map(shape_of_spread);
        // Size from the first shot (framed wide, the world's scale).
        c.size = median(
            c.tracks
                .iter()
                .filter(|&&i| a.tracks[i].shot == 0)
                .flat_map(|&i| a.tracks[i].clean())
                .map(|s| s.radius)
                .collect(),
        )
        .map(size_of_radius);
    }
    // Objects that matter: seen in at least a fifth of the frames (or three frames).
    chains.retain(|c| c.frames_seen * 5 >= a.frames.min(15) || c.frames_seen >= a.frames / 5);
    chains
}

/// Matches each described object to a chain (or none).
fn assign(desc: &Description, chains: &[Chain]) -> Vec<Option<usize>> {
    let mut used = vec![false; chains.len()];
    let mut out = Vec::new();
    for o in &desc.objects {
        let best = chains
            .iter()
            .enumerate()
            .filter(|(k, c)| !used[*k] && o.color.is_none_or(|col| col == c.color))
            .max_by_key(|(_, c)| {
                let mut s = 0;
                if o.shape.is_some() && o.shape == c.shape {
                    s += 4;
                }
                if o.size.is_some() && o.size == c.size {
                    s += 2;
                }
                (s, c.frames_seen)
            })
            .map(|(k, _)| k);
        if let Some(k) = best {
            used[k] = true;
        }
        out.push(best);
    }
    out
}

fn check(checks: &mut Vec<Check>, dimension: Dimension, score: f64, what: impl Into<String>) {
    let law = format!("{dimension:?}").to_lowercase();
    law_check(checks, dimension, &law, score, what);
}

fn law_check(checks: &mut Vec<Check>, dimension: Dimension, law: &str, score: f64, what: impl Into<String>) {
    checks.push(Check { dimension, law: law.to_string(), score: score.clamp(0.0, 1.0), what: what.into() });
}

/// The product over a dimension's laws of each law's mean score (1 with no checks).
fn laws_score(checks: &[Check], d: Dimension) -> f64 {
    let mut laws: Vec<&str> = checks.iter().filter(|c| c.dimension == d).map(|c| c.law.as_str()).collect();
    laws.sort();
    laws.dedup();
    laws.iter()
        .map(|law| {
            let v: Vec<f64> = checks.iter().filter(|c| c.dimension == d && c.law == *law).map(|c| c.score).collect();
            v.iter().sum::<f64>() / v.len() as f64
        })
        .product()
}

fn name(o: &ObjectDescription) -> String {
    let mut words = Vec::new();
    if let Some(s) = o.size {
        words.push(s.word());
    }
    if let Some(c) = o.color {
        words.push(c.word());
    }
    words.push(o.shape.map_or("object", |s| s.word()));
    words.join(" ")
}

/// Adherence weighs the objects (what is in the video, times the count's score) and the
/// scene (where) 7:3: the scene alone (sky and floor right, no objects) stays below 0.3.
fn adherence_score(checks: &[Check]) -> f64 {
    let count = checks
        .iter()
        .find(|c| c.dimension == Dimension::Adherence && c.what.starts_with("count"))
        .map_or(1.0, |c| c.score);
    let part = |prefix: &str| {
        let v: Vec<f64> = checks
            .iter()
            .filter(|c| c.dimension == Dimension::Adherence && c.what.starts_with(prefix))
            .map(|c| c.score)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    match (part("object"), part("scene")) {
        (Some(o), Some(s)) => 0.7 * o * count + 0.3 * s,
        (Some(o), None) => o * count,
        (None, Some(s)) => s,
        (None, None) => 1.0,
    }
}

fn adherence(
    desc: &Description,
    a: &Analysis,
    chains: &[Chain],
    assignment: &[Option<usize>],
    presence: &[Presence],
    checks: &mut Vec<Check>,
) {
    use Dimension::Adherence as D;
    for ((o, m), p) in desc.objects.iter().zip(assignment).zip(presence) {
        let seen = || match o.color {
            Some(c) => objects::what_was_seen(a, c, o.size),
            None => "nothing object-like".to_string(),
        };
        let k = match m {
            Some(k) if p.tracked > 0 || p.expected == 0 => k,
            _ => {
                check(checks, D, 0.0, format!("object: no {}; {}", name(o), seen()));
                continue;
            }
        };
        let c = &chains[*k];
        let mut parts = vec![1.0];
        let mut notes = Vec::new();
        if let Some(s) = o.shape {
            let ok = c.shape == Some(s);
            parts.push(if ok { 1.0 } else { 0.0 });
            if !ok {
                notes.push(format!("looks like a {}", c.shape.map_or("?", |s| s.word())));
            }
        }
        if let Some(s) = o.size {
            let got = p.radius.map(size_of_radius).or(c.size);
            let score = match got {
                Some(g) if g == s => 1.0,
                Some(g) if (g as i32 - s as i32).abs() == 1 => 0.4,
                _ => 0.0,
            };
            parts.push(score);
            if score < 1.0 {
                notes.push(format!("size looks {}", got.map_or("unknown", |g| g.word())));
            }
        }
        if p.weight < 1.0 {
            notes.push(format!("tracked in {} of the {} frames it should be seen; {}", p.tracked, p.expected, seen()));
        }
        let score = p.weight * parts.iter().sum::<f64>() / parts.len() as f64;
        let what = if notes.is_empty() {
            format!("object: {} found ({} of {} frames)", name(o), p.tracked, p.expected)
        } else {
            format!("object: {} found, but {}", name(o), notes.join(", "))
        };
        check(checks, D, score, what);
    }
    if !desc.objects.is_empty() {
        let want = desc.objects.len();
        let got = chains.len();
        let score = 1.0 - (got as f64 - want as f64).abs() / want as f64;
        check(checks, D, score, format!("count: {got} object(s) seen, {want} described"));
    }
    let look = scene_look(a);
    if let Some(bg) = desc.background {
        let ok = look.background == bg;
        check(checks, D, ok as u8 as f64, format!("scene: background {} (looks {})", bg, look.background));
    }
    if let Some(fl) = desc.floor {
        let ok = look.floor == fl;
        check(checks, D, ok as u8 as f64, format!("scene: floor {} (looks {})", fl, look.floor));
    }
    if let Some(l) = desc.lighting {
        let ok = look.lighting == l;
        let near = (look.lighting as i32 - l as i32).abs() == 1;
        check(
            checks,
            D,
            if ok {
                1.0
            } else if near {
                0.5
            } else {
                0.0
            },
            format!("scene: lighting {} (looks {})", l, look.lighting),
        );
    }
    if let Some(cam) = desc.camera {
        let got = a.camera();
        check(
            checks,
            D,
            (got == cam) as u8 as f64,
            format!("scene: camera {} (looks {}; pan {:+.2} views, zoom x{:.2})", cam, got, a.pan, a.zoom),
        );
    }
    if let Some(n) = desc.shots {
        let got = a.shots.len();
        check(checks, D, (got == n) as u8 as f64, format!("scene: {n} shot(s) (found {got})"));
    }
}

struct Look {
    background: Background,
    floor: Floor,
    lighting: Lighting,
}

/// The nearest background, floor and lighting to the frames' object-free colours.
fn scene_look(a: &Analysis) -> Look {
    use crate::render::reference_colors;
    // Colours of the top of the sky, just above the horizon, and of the floor band, from
    // the first frame's object-free pixels, against the renderer's own empty scenes.
    let refs = reference_colors(a.width as f64 / a.height as f64);
    let obs = a.observed_scene();
    let mut best = (f32::MAX, Background::Day, Floor::Grass, Lighting::Bright);
    for r in refs.iter() {
        let d = dist(r.sky_top, obs.0)
            + dist(r.sky_low, obs.1)
            + dist(r.floor, obs.2)
            + 1.5 * (r.floor_contrast - obs.3).abs();
        if d < best.0 {
            best = (d, r.background, r.floor_kind, r.lighting);
        }
    }
    Look { background: best.1, floor: best.2, lighting: best.3 }
}

fn dist(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// Positions of one chain over time within a track, as (t, x, y, bottom).
fn series(a: &Analysis, t: &Track) -> Vec<(f32, f32, f32, f32)> {
    t.sightings.iter().map(|s| (s.frame as f32 * a.dt(), s.x, s.y, s.bottom)).collect()
}

/// Frames (indices into a track's sightings) where the object bounced: local minima of
/// height near the floor with a rise after.
fn bounces(a: &Analysis, t: &Track) -> Vec<usize> {
    let s = &t.sightings;
    let tol = 1.5 / a.ppm[t.shot];
    let mut out = Vec::new();
    for k in 1..s.len().saturating_sub(1) {
        if s[k].frame != s[k - 1].frame + 1 || s[k + 1].frame != s[k].frame + 1 {
            continue;
        }
        // Fell into it over the last two frames (a bounce can fall between frames, leaving
        // the lowest frame only a little below the one before).
        let before = s[k.saturating_sub(2)..k]
            .iter()
            .filter(|q| q.frame + 2 >= s[k].frame)
            .map(|q| q.y)
            .fold(f32::MIN, f32::max);
        let fell = before - s[k].y > tol && s[k - 1].y >= s[k].y;
        // Rise over the next frames (a bounce can be small).
        let rise = s[k + 1..(k + 4).min(s.len())].iter().map(|q| q.y).fold(f32::MIN, f32::max) - s[k].y;
        if fell && s[k].y <= s[k + 1].y && rise > tol.max(0.04) && s[k].bottom < 0.35 {
            out.push(k);
        }
    }
    out
}

fn motion(
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

fn physics(desc: &Description, spec: Option<&Spec>, a: &Analysis, checks: &mut Vec<Check>) {
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
        let full = s.iter().map(|q| q.blob.area).fold(0f32, f32::max);
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
        // instant; nothing stops a slide or a
        // flight dead.)
        let mut dead = 0;
        let before = ((0.1 / a.dt()).round() as usize).max(1);
        let after = ((0.25 / a.dt()).round() as usize).max(3);
        for w in s.windows(before + after + 1) {
            let contiguous = w.windows(2).all(|p| p[1].frame == p[0].frame + 1);
            let (p0, p1) = (&w[0], &w[before]);
            let span = before as f32 * a.dt();
            let vx = (p1.x - p0.x).abs() / span;
            let vy = (p1.y - p0.y).abs() / span;
            let airborne = p1.bottom > (0.15f32).max(3.0 * px);
            let moving = (vx >= 1.0 && vx > 2.0 * vy) || (airborne && vx.hypot(vy) >= 1.0);
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
            if still && moved && resting && from_nowhere && !pushed && starts.last().is_none_or(|&f| p.frame > f + go_n) {
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
fn near_another(a: &Analysis, track: &Track, q: &Sighting, frames: usize, reach: f32) -> bool {
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

fn permanence(a: &Analysis, chains: &[Chain], vis: &[(Color, &[objects::Visibility])], checks: &mut Vec<Check>) {
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
            let full = t.sightings.iter().map(|q| q.blob.area).fold(0f32, f32::max);
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

fn consistency(a: &Analysis, checks: &mut Vec<Check>) {
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
