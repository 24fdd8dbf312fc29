//! The world-model test (issue 27), the way Physics-IQ tests video models on real
//! experiments: a model given a clip's first frames generates the rest, and its frames are
//! compared with the simulator's own continuation of the same scene (the spec rendered at
//! the video's size and rate):
//! - each object's mask (its palette colour) against the truth's: intersection over union
//!   per frame, and over the whole continuation (spatiotemporal);
//! - each object's position (metres) and velocity (m/s), tracked as the evaluator tracks
//!   them, against the same tracking of the truth;
//! - whether the bounces, collisions and returns from behind occluders that the simulator
//!   produced in the continuation happen within [`EVENT_TOLERANCE`] of the true time.

use serde::{Deserialize, Serialize};

use super::analysis::{analyse_with, Analysis};
use super::segment::{classify, Image};
use super::{bounces, VideoRef};
use crate::scene::Scene;
use crate::spec::*;

/// How far from the simulator's time an event may happen and still count (seconds).
pub const EVENT_TOLERANCE: f64 = 0.25;
/// Bounces slower than this (m/s) are too small to see at 128x128 (as the motion checks).
const MIN_BOUNCE_SPEED: f64 = 3.0;

/// One object through the continuation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectContinuation {
    pub object: String,
    /// Sum over frames of |generated ∩ truth| over the sum of |generated ∪ truth|.
    pub iou: f64,
    /// Per continuation frame (null where neither shows the object).
    pub iou_per_frame: Vec<Option<f64>>,
    /// Mean distance (m) and velocity difference (m/s) over the frames where both videos
    /// track it; null where they never both do.
    pub position_error: Option<f64>,
    pub velocity_error: Option<f64>,
    /// Of the continuation frames where the truth tracks it, the fraction where the
    /// generated video does too.
    pub tracked: f64,
}

/// One event of the simulator's continuation and when (if) the generated video shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventCheck {
    /// "bounce", "collision" or "reappear".
    pub kind: String,
    pub objects: String,
    pub t_true: f64,
    pub t_seen: Option<f64>,
    pub on_time: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Continuation {
    pub given_frames: usize,
    /// Continuation frames compared (those both videos have).
    pub compared_frames: usize,
    /// Mean over objects of the spatiotemporal IoU, and mean over frames and objects of the
    /// per-frame IoU.
    pub iou: f64,
    pub iou_frame_mean: f64,
    pub position_error: Option<f64>,
    pub velocity_error: Option<f64>,
    /// Fraction of the visible events on time; null when the continuation has none.
    pub events_on_time: Option<f64>,
    pub objects: Vec<ObjectContinuation>,
    pub events: Vec<EventCheck>,
}

/// Scores a generated video whose first `given_seconds` were given against the
/// simulator's continuation of `spec`.
pub fn score_continuation(generated: &VideoRef, spec: &Spec, given_seconds: f64) -> Continuation {
    let (w, h, fps) = (generated.width, generated.height, generated.fps);
    let scene = Scene::new(spec.clone());
    let mut r = scene.renderer(w, h, fps);
    let truth: Vec<tessera_media::Frame> = (0..r.frame_count()).map(|i| r.frame(i)).collect();
    let given = ((given_seconds * fps).round() as usize).min(truth.len());
    let end = truth.len().min(generated.frames.len());
    let window = given..end.max(given);

    // Masks by colour, per frame.
    let labels = |data: &[u8]| classify(&Image::from_rgb(w, h, data, usize::MAX));
    let truth_labels: Vec<Vec<u8>> = window.clone().map(|f| labels(&truth[f].data)).collect();
    let gen_labels: Vec<Vec<u8>> = window.clone().map(|f| labels(generated.frames[f])).collect();

    let gen_frames: Vec<(usize, usize, &[u8])> = generated.frames.iter().map(|f| (w, h, *f)).collect();
    let truth_frames: Vec<(usize, usize, &[u8])> = truth.iter().map(|f| (w, h, f.data.as_slice())).collect();
    let mut ag = analyse_with(&gen_frames, fps, true);
    let mut at = analyse_with(&truth_frames, fps, true);
    ag.tracks.retain(super::objects::object_like);
    at.tracks.retain(super::objects::object_like);
    // Each object's largest sighting per frame, in both videos.
    let track_t: Vec<Vec<Spot>> = spec.objects.iter().map(|o| largest(&at, o.color)).collect();
    let track_g: Vec<Vec<Spot>> = spec.objects.iter().map(|o| largest(&ag, o.color)).collect();

    let mut objects = Vec::new();
    for (n, o) in spec.objects.iter().enumerate() {
        let k = o.color as u8;
        let (mut inter, mut union) = (0usize, 0usize);
        let mut per_frame = Vec::new();
        for (tl, gl) in truth_labels.iter().zip(&gen_labels) {
            let (mut i, mut u) = (0, 0);
            for (&a, &b) in tl.iter().zip(gl) {
                let (a, b) = (a == k, b == k);
                i += (a && b) as usize;
                u += (a || b) as usize;
            }
            inter += i;
            union += u;
            per_frame.push((u > 0).then(|| i as f64 / u as f64));
        }
        let (pt, pg) = (&track_t[n], &track_g[n]);
        let dt = 1.0 / fps;
        let (mut perr, mut verr, mut truth_n, mut both_n) = (Vec::new(), Vec::new(), 0, 0);
        for f in window.clone() {
            if pt[f].is_some() {
                truth_n += 1;
            }
            if let (Some(a), Some(b)) = (pt[f], pg[f]) {
                both_n += 1;
                perr.push((a.0 - b.0).hypot(a.1 - b.1) as f64);
                let vel = |p: &[Spot]| match (f.checked_sub(1).and_then(|g| p[g]), p.get(f + 1).copied().flatten()) {
                    (Some(x), Some(y)) => Some(((y.0 - x.0) as f64 / (2.0 * dt), (y.1 - x.1) as f64 / (2.0 * dt))),
                    _ => None,
                };
                if let (Some(va), Some(vb)) = (vel(pt), vel(pg)) {
                    verr.push((va.0 - vb.0).hypot(va.1 - vb.1));
                }
            }
        }
        objects.push(ObjectContinuation {
            object: format!("{} {} {}", o.size, o.color, o.shape),
            iou: if union == 0 { 1.0 } else { inter as f64 / union as f64 },
            iou_per_frame: per_frame,
            position_error: mean(&perr),
            velocity_error: mean(&verr),
            tracked: if truth_n == 0 { 1.0 } else { both_n as f64 / truth_n as f64 },
        });
    }

    // Events of the continuation the truth's own tracking can see, and whether the
    // generated video shows each in time.
    let (t0, t1) = (window.start as f64 / fps, window.end as f64 / fps);
    let seen_truth = detect(&at, spec, &track_t);
    let seen_gen = detect(&ag, spec, &track_g);
    let mut events = Vec::new();
    for e in &spec.events {
        let (kind, objects, t) = match *e {
            Event::Bounce { t, object, speed } if speed > MIN_BOUNCE_SPEED => ("bounce", vec![object], t),
            Event::Collision { t, objects } => ("collision", objects.to_vec(), t),
            Event::Reappear { t, object, .. } => ("reappear", vec![object], t),
            _ => continue,
        };
        if t <= t0 || t > t1 {
            continue;
        }
        let near = |d: &[(&'static str, Vec<usize>, f64)]| {
            d.iter()
                .filter(|(k, o, _)| *k == kind && *o == objects)
                .map(|x| x.2)
                .min_by(|a, b| (a - t).abs().total_cmp(&(b - t).abs()))
                .filter(|s| (s - t).abs() <= EVENT_TOLERANCE)
        };
        if near(&seen_truth).is_none() {
            continue; // too small or hidden to see even in the simulator's render
        }
        let seen = near(&seen_gen);
        events.push(EventCheck {
            kind: kind.to_string(),
            objects: objects.iter().map(|&i| spec.objects[i].color.word()).collect::<Vec<_>>().join("+"),
            t_true: t,
            t_seen: seen,
            on_time: seen.is_some(),
        });
    }
    let n = objects.len().max(1) as f64;
    let frame_ious: Vec<f64> = objects.iter().flat_map(|o| o.iou_per_frame.iter().flatten().copied()).collect();
    Continuation {
        given_frames: given,
        compared_frames: window.len(),
        iou: if objects.is_empty() { 1.0 } else { objects.iter().map(|o| o.iou).sum::<f64>() / n },
        iou_frame_mean: mean(&frame_ious).unwrap_or(1.0),
        position_error: mean(&objects.iter().filter_map(|o| o.position_error).collect::<Vec<_>>()),
        velocity_error: mean(&objects.iter().filter_map(|o| o.velocity_error).collect::<Vec<_>>()),
        events_on_time: on_time(events.iter()),
        objects,
        events,
    }
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The fraction of events on time (none: no events).
fn on_time<'a>(events: impl ExactSizeIterator<Item = &'a EventCheck>) -> Option<f64> {
    let n = events.len();
    (n > 0).then(|| events.filter(|e| e.on_time).count() as f64 / n as f64)
}

/// Events the tracking sees: (kind, objects (spec indices), time). `spots`: each spec
/// object's [`largest`] sightings.
fn detect(a: &Analysis, spec: &Spec, spots: &[Vec<Spot>]) -> Vec<(&'static str, Vec<usize>, f64)> {
    let dt = 1.0 / a.fps;
    let mut out = Vec::new();
    let index = |c: Color| spec.objects.iter().position(|o| o.color == c);
    for t in &a.tracks {
        let Some(i) = index(t.color) else { continue };
        for k in bounces(a, t) {
            out.push(("bounce", vec![i], t.sightings[k].frame as f64 * dt));
        }
        // Back into view after a gap in the same shot: a return from behind something.
        let earlier = a.tracks.iter().any(|u| u.color == t.color && u.shot == t.shot && u.last() + 1 < t.first());
        if earlier {
            out.push(("reappear", vec![i], t.first() as f64 * dt));
        }
    }
    // Collisions: two objects within 1.3 radii sums, the first frame of each contact.
    for i in 0..spec.objects.len() {
        for j in i + 1..spec.objects.len() {
            let (pi, pj) = (&spots[i], &spots[j]);
            let mut touching = false;
            for f in 0..a.frames {
                let now = match (pi[f], pj[f]) {
                    (Some(p), Some(q)) => (p.0 - q.0).hypot(p.1 - q.1) <= 1.3 * (p.2 + q.2),
                    _ => false,
                };
                if now && !touching {
                    out.push(("collision", vec![i, j], f as f64 * dt));
                }
                touching = now;
            }
        }
    }
    out
}

/// Where an object is in one frame: (x, y, radius), metres in the shot's reference frame.
type Spot = Option<(f32, f32, f32)>;

/// Per frame, the largest object-like sighting of a colour.
fn largest(a: &Analysis, color: Color) -> Vec<Spot> {
    let mut out: Vec<Option<(f32, f32, f32, f32)>> = vec![None; a.frames];
    for t in a.tracks.iter().filter(|t| t.color == color) {
        for q in &t.sightings {
            if out[q.frame].is_none_or(|p| p.3 < q.blob.area) {
                out[q.frame] = Some((q.x, q.y, q.radius, q.blob.area));
            }
        }
    }
    out.into_iter().map(|p| p.map(|p| (p.0, p.1, p.2))).collect()
}

/// One clip's continuation in a report, with its suite's split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContinuationVideo {
    pub file: String,
    pub prompt: String,
    /// "in_distribution" or "held_out" (holdout.rs).
    pub split: String,
    /// Which held-out properties the clip has ("color_shape", "size_shape", "speed").
    pub held_out: Vec<String>,
    #[serde(flatten)]
    pub continuation: Continuation,
}

/// Means over clips.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContinuationMean {
    pub clips: usize,
    pub iou: f64,
    pub iou_frame_mean: f64,
    pub position_error: Option<f64>,
    pub velocity_error: Option<f64>,
    pub events_on_time: Option<f64>,
    /// Events counted (and on time) over all clips.
    pub events: usize,
}

impl ContinuationMean {
    pub fn of(videos: &[&ContinuationVideo]) -> ContinuationMean {
        let n = videos.len().max(1) as f64;
        let events: Vec<&EventCheck> = videos.iter().flat_map(|v| &v.continuation.events).collect();
        ContinuationMean {
            clips: videos.len(),
            iou: videos.iter().map(|v| v.continuation.iou).sum::<f64>() / n,
            iou_frame_mean: videos.iter().map(|v| v.continuation.iou_frame_mean).sum::<f64>() / n,
            position_error: mean(&videos.iter().filter_map(|v| v.continuation.position_error).collect::<Vec<_>>()),
            velocity_error: mean(&videos.iter().filter_map(|v| v.continuation.velocity_error).collect::<Vec<_>>()),
            events_on_time: on_time(events.iter().copied()),
            events: events.len(),
        }
    }
}

/// The continuation test's report: every clip, and the means over all clips, the
/// in-distribution ones and the held-out ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContinuationReport {
    pub videos: Vec<ContinuationVideo>,
    pub all: ContinuationMean,
    pub in_distribution: ContinuationMean,
    pub held_out: ContinuationMean,
    /// The held-out clips by what they hold out.
    pub held_out_by_kind: std::collections::BTreeMap<String, ContinuationMean>,
}

impl ContinuationReport {
    pub fn new(videos: Vec<ContinuationVideo>) -> Self {
        let pick = |s: Option<&str>| -> Vec<&ContinuationVideo> {
            videos.iter().filter(|v| s.is_none_or(|s| v.split == s)).collect()
        };
        let all = ContinuationMean::of(&pick(None));
        let in_distribution = ContinuationMean::of(&pick(Some("in_distribution")));
        let held_out = ContinuationMean::of(&pick(Some("held_out")));
        let held_out_by_kind = crate::holdout::HeldOut::ALL
            .iter()
            .map(|k| {
                let v: Vec<&ContinuationVideo> =
                    videos.iter().filter(|v| v.held_out.iter().any(|h| h == k.word())).collect();
                (k.word().to_string(), ContinuationMean::of(&v))
            })
            .filter(|(_, m)| m.clips > 0)
            .collect();
        ContinuationReport { videos, all, in_distribution, held_out, held_out_by_kind }
    }

    /// A table: one row per split.
    pub fn summary(&self) -> String {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let mut out = format!(
            "{:<16} {:>5} {:>8} {:>10} {:>10} {:>10} {:>12}\n",
            "split", "clips", "IoU", "IoU/frame", "pos err m", "vel err m/s", "events"
        );
        let splits = [("all", &self.all), ("in_distribution", &self.in_distribution), ("held_out", &self.held_out)];
        let kinds = self.held_out_by_kind.iter().map(|(k, m)| (format!("  {k}"), m));
        for (name, m) in splits.into_iter().map(|(k, m)| (k.to_string(), m)).chain(kinds) {
            out += &format!(
                "{:<16} {:>5} {:>8.3} {:>10.3} {:>10} {:>10} {:>12}\n",
                name,
                m.clips,
                m.iou,
                m.iou_frame_mean,
                f(m.position_error),
                f(m.velocity_error),
                format!("{} ({})", f(m.events_on_time), m.events)
            );
        }
        out
    }
}
