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
mod motion;
pub mod objects;
mod permanence;
mod physics;
pub mod segment;

use serde::{Deserialize, Serialize};

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

impl<'a> VideoRef<'a> {
    /// A video of frames (at least one, all of the first one's size).
    pub fn of(frames: &'a [tessera_media::Frame], fps: f64) -> Self {
        VideoRef {
            width: frames[0].width,
            height: frames[0].height,
            frames: frames.iter().map(|f| f.data.as_slice()).collect(),
            fps,
        }
    }
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
    motion::motion(desc, spec, &a, &chains, &assignment, &weights, &mut checks);
    physics::physics(desc, spec, &a, &mut checks);
    // With a spec, each colour's visibility per frame (its object's), which excuses an
    // appearance or disappearance the simulation itself has (a zoom uncovering an object).
    let seen_by_colour: Vec<(Color, &[objects::Visibility])> = match (spec_matches, &vis) {
        (Some(s), Some(v)) => s.objects.iter().zip(v).map(|(o, v)| (o.color, v.as_slice())).collect(),
        _ => Vec::new(),
    };
    permanence::permanence(&a, &chains, &seen_by_colour, &mut checks);
    permanence::consistency(&a, &mut checks);
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
