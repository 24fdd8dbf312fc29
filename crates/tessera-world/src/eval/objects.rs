//! Objects are objects (issue 27): which colour regions count as a described object, how
//! much of the time it should be on screen each described object was tracked, and what
//! was seen of its colour when it was not there (a band, a flood, a smear, specks).
//!
//! A region of an object's colour is the object only where it has the shape of one of the
//! world's objects (compact: not a band, a smear or a sliver) and an area within a factor
//! of two of what the described size implies at that framing. Every other dimension is
//! weighted by the tracked time, so a video without the objects earns nothing for them.

use super::analysis::{Analysis, Sighting, Track};
use super::segment::Blob;
use crate::sim::{occluder_rects, shape_vertices};
use crate::spec::*;

/// A region is an object of a size when its area is within this factor of the size's.
pub const AREA_FACTOR: f32 = 2.0;
/// The largest spread (farthest pixel from the centroid over sqrt(area)) of a region that
/// can be one of the world's shapes: triangles measure 0.73-0.86 at 128x128.
pub const MAX_SPREAD: f32 = 0.95;
/// With a spec the frames where an object is fully in view are known: tracked in this
/// fraction of them earns full weight (edges of occluders and contacts take a few frames).
const FULL_WEIGHT_SPEC: f64 = 0.8;
/// From a prompt alone every frame is expected, though objects may leave the frame or
/// pass behind an occluder (the world lays scenes out so the action happens in view).
const FULL_WEIGHT_PROMPT: f64 = 0.7;
/// A region is the object only where it holds most of its colour in the frame: a compact
/// piece of a flood or a band is not an object (the colour's pixels, anti-aliased edges and
/// specks included, at most this many times the region's area).
pub const MAX_CLUTTER: f32 = 2.0;

/// Radius range (metres, the disc of the region's area) of an object of `size`, or of any
/// size.
pub fn radius_range(size: Option<Size>) -> (f32, f32) {
    let f = AREA_FACTOR.sqrt();
    match size {
        Some(s) => (s.radius() as f32 / f, s.radius() as f32 * f),
        None => (Size::Small.radius() as f32 / f, Size::Large.radius() as f32 * f),
    }
}

/// What a region of an object's colour is, judged against a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Compact and of the size: the object.
    Object,
    /// Cut by the frame's edge and not too large: may be the object leaving or entering.
    Partial,
    /// Not one of the world's shapes (a band, a smear, a sliver).
    NotCompact,
    TooLarge,
    TooSmall,
}

/// Judges a region whose area-equivalent radius is `radius` metres.
pub fn judge(blob: &Blob, radius: f32, size: Option<Size>) -> Verdict {
    let (lo, hi) = radius_range(size);
    if radius > hi {
        Verdict::TooLarge
    } else if blob.touches_border {
        Verdict::Partial
    } else if blob.spread > MAX_SPREAD {
        Verdict::NotCompact
    } else if radius < lo {
        Verdict::TooSmall
    } else {
        Verdict::Object
    }
}

fn judge_sighting(q: &Sighting, size: Option<Size>) -> Verdict {
    judge(&q.blob, q.radius, size)
}

/// Whether a sighting's region holds most of its colour in its frame ([`MAX_CLUTTER`]).
fn holds_its_colour(a: &Analysis, q: &Sighting) -> bool {
    a.specks[q.frame].total[q.blob.color as usize] as f32 / q.blob.area.max(1.0) <= MAX_CLUTTER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_within_a_factor_of_two_in_area() {
        let (lo, hi) = radius_range(Some(Size::Medium));
        assert!(((hi / lo).powi(2) - 4.0).abs() < 1e-4, "areas from half to twice");
        assert!(lo < 0.4 && hi > 0.4);
        let (lo, hi) = radius_range(None);
        assert!(lo < 0.25 / 1.4 && hi > 0.6 * 1.4);
    }
}

/// Whether a track follows an object rather than a band, flood or smear of its colour:
/// it is an object of some size at least once, and at least as often as it is too large
/// or of no object's shape. (Too small is what an object partly hidden behind another,
/// or thinned by compression, looks like; cut by the frame's edge says nothing.)
pub fn object_like(t: &Track) -> bool {
    let (mut good, mut bad) = (0, 0);
    for q in &t.sightings {
        match judge_sighting(q, None) {
            Verdict::Object => good += 1,
            Verdict::TooLarge | Verdict::NotCompact => bad += 1,
            Verdict::Partial | Verdict::TooSmall => {}
        }
    }
    good > 0 && good >= bad
}

/// Whether an object is fully in view, partly, or not at all, in one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Full,
    Partial,
    Out,
}

/// For each object of a spec, its visibility in each frame of a `width` x `height` video
/// at `fps`: in view of the camera and not behind an occluder, from the simulation.
pub fn visibility(spec: &Spec, frames: usize, fps: f64, width: usize, height: usize) -> Vec<Vec<Visibility>> {
    let scene = crate::scene::Scene::new(spec.clone());
    let rects: Vec<(f64, f64, f64, f64)> = spec.occluders.iter().flat_map(occluder_rects).collect();
    let extents: Vec<f64> = spec
        .objects
        .iter()
        .map(|o| {
            let v = shape_vertices(o.shape, o.size.radius());
            v.iter().map(|p| p.0.hypot(p.1)).fold(o.size.radius(), f64::max)
        })
        .collect();
    let mut out = vec![Vec::with_capacity(frames); spec.objects.len()];
    for i in 0..frames {
        let t = i as f64 / fps;
        let view = spec.camera_at(t);
        let px = view.width / width as f64;
        let (left, right) = (view.center_x - view.width / 2.0, view.center_x + view.width / 2.0);
        let top = px * height as f64 * (1.0 - FLOOR_ROW);
        let poses = if scene.trajectory.objects == 0 { &[][..] } else { scene.trajectory.at(t) };
        for (k, p) in poses.iter().enumerate() {
            let e = extents[k];
            let (x, y) = (p.x as f64, p.y as f64);
            let inside = x - e >= left + px && x + e <= right - px && y + e <= top - px;
            let gone = x + e <= left || x - e >= right || y - e >= top;
            let behind = |x0: f64, x1: f64, y0: f64, y1: f64| x + e > x0 && x - e < x1 && y - e < y1 && y + e > y0;
            let covered =
                |x0: f64, x1: f64, y0: f64, y1: f64| x - e >= x0 && x + e <= x1 && y - e >= y0 - 0.05 && y + e <= y1;
            let v = if gone || rects.iter().any(|&(x0, x1, y0, y1)| covered(x0, x1, y0, y1)) {
                Visibility::Out
            } else if inside && !rects.iter().any(|&(x0, x1, y0, y1)| behind(x0, x1, y0, y1)) {
                Visibility::Full
            } else {
                Visibility::Partial
            };
            out[k].push(v);
        }
    }
    out
}

/// How much of the time it should be on screen a described object was tracked.
#[derive(Debug, Clone)]
pub struct Presence {
    /// Frames where it should be fully visible, and those of them where a region of its
    /// colour was the object.
    pub expected: usize,
    pub tracked: usize,
    /// What scales its credit in the other dimensions: tracked / expected, full at 80%
    /// (with a spec) or 70% (from a prompt alone).
    pub weight: f64,
    /// The median radius (metres) of its object sightings, at the spec's scale when known.
    pub radius: Option<f32>,
}

/// The presence of a described object followed by `tracks` (none: not found). `vis` is
/// its visibility per frame when a spec says it; without one every frame is expected.
/// `ppm`, pixels per metre per frame when the spec gives the framing, replaces the
/// tracking's estimate of the scale (zooms and cuts).
pub fn presence(
    a: &Analysis,
    tracks: &[&Track],
    o: &ObjectDescription,
    vis: Option<&[Visibility]>,
    ppm: Option<&[f32]>,
) -> Presence {
    let excused = match vis {
        Some(_) => vec![false; a.frames],
        None => out_of_sight(a, tracks),
    };
    let expected_at = |f: usize| match vis {
        Some(v) => v.get(f) == Some(&Visibility::Full),
        None => !excused[f],
    };
    let expected = (0..a.frames).filter(|&f| expected_at(f)).count();
    let mut hit = vec![false; a.frames];
    let mut radii = Vec::new();
    for t in tracks {
        for q in &t.sightings {
            let r = ppm.map_or(q.radius, |p| q.blob.radius() / p[q.frame]);
            let v = judge(&q.blob, r, o.size);
            if matches!(v, Verdict::Object | Verdict::Partial) && holds_its_colour(a, q) {
                hit[q.frame] = true;
            }
            if matches!(judge(&q.blob, r, None), Verdict::Object) {
                radii.push(r);
            }
        }
    }
    let tracked = (0..a.frames).filter(|&f| expected_at(f) && hit[f]).count();
    let full = if vis.is_some() { FULL_WEIGHT_SPEC } else { FULL_WEIGHT_PROMPT };
    let weight = if expected == 0 {
        // Never fully in view: nothing to hold against it.
        1.0
    } else {
        (tracked as f64 / expected as f64 / full).min(1.0)
    };
    Presence { expected, tracked, weight, radius: super::analysis::median(radii) }
}

/// From a prompt alone: the frames where the object is out of sight for a reason the video
/// shows: before it enters or after it leaves through the frame's edge, and while it is
/// behind something (its region shrank or reached the edge just before the gap). Only
/// regions that hold most of their colour count (a piece of a flood explains nothing),
/// and at most three quarters of the frames are excused.
fn out_of_sight(a: &Analysis, tracks: &[&Track]) -> Vec<bool> {
    let mut seen: Vec<Option<&Sighting>> = vec![None; a.frames];
    let full = tracks.iter().flat_map(|t| &t.sightings).map(|q| q.blob.area).fold(0f32, f32::max);
    for t in tracks {
        for q in &t.sightings {
            if holds_its_colour(a, q) {
                seen[q.frame] = Some(q);
            }
        }
    }
    let partial = |q: &Sighting| q.blob.touches_border || q.blob.area < 0.8 * full;
    let mut out = vec![false; a.frames];
    let first = seen.iter().position(|s| s.is_some());
    let last = seen.iter().rposition(|s| s.is_some());
    let (Some(first), Some(last)) = (first, last) else { return out };
    if seen[first].is_some_and(partial) {
        out[..first].iter_mut().for_each(|x| *x = true);
    }
    if seen[last].is_some_and(partial) {
        out[last + 1..].iter_mut().for_each(|x| *x = true);
    }
    let mut f = first;
    while f < last {
        if seen[f + 1].is_none() {
            let end = (f + 1..=last).find(|&g| seen[g].is_some()).unwrap_or(last);
            if seen[f].is_some_and(partial) {
                out[f + 1..end].iter_mut().for_each(|x| *x = true);
            }
            f = end;
        } else {
            f += 1;
        }
    }
    let n = out.iter().filter(|&&x| x).count();
    if n * 4 > a.frames * 3 {
        // Too much to excuse: expect it in every frame.
        out.iter_mut().for_each(|x| *x = false);
    }
    out
}

/// What the frames show of a colour when no object of it was tracked (or too little): the
/// report says which of a band, a flood, a smear, specks, or regions of the wrong size.
pub fn what_was_seen(a: &Analysis, color: Color, size: Option<Size>) -> String {
    let k = color as usize;
    let frame_px = (a.width * a.height) as f32;
    // Per frame the most telling thing of the colour, counted over the video.
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    let mut bump = |what: &'static str| match kinds.iter_mut().find(|(w, _)| *w == what) {
        Some(e) => e.1 += 1,
        None => kinds.push((what, 1)),
    };
    let mut ratio_sum = 0f32;
    let mut ratio_n = 0;
    for f in 0..a.frames {
        let sp = &a.specks[f];
        if sp.total[k] == 0 {
            continue;
        }
        let shot = a.shots.iter().position(|s| s.contains(&f)).unwrap_or(0);
        let biggest = a.blobs[f].iter().filter(|b| b.color == color).max_by(|x, y| x.area.total_cmp(&y.area));
        if sp.full_rows[k] >= 2 {
            bump("a band across the frame");
        } else if sp.total[k] as f32 > 0.15 * frame_px {
            bump("a flood over much of the frame");
        } else if let Some(b) = biggest {
            let r = b.radius() * a.transform[f].0 / a.ppm[shot];
            let wide = (b.x1 - b.x0 + 1) >= 3 * (b.y1 - b.y0 + 1);
            match judge(b, r, size) {
                Verdict::NotCompact if wide && b.bottom >= a.floor_row - 2.0 => bump("a smear along the floor"),
                Verdict::NotCompact => bump("regions of no object's shape"),
                Verdict::TooLarge | Verdict::TooSmall => {
                    let (lo, hi) = radius_range(size);
                    let mid = (lo * hi).sqrt();
                    ratio_sum += (r / mid).powi(2);
                    ratio_n += 1;
                    bump(if r > hi { "a region too large for it" } else { "a region too small for it" });
                }
                Verdict::Partial => bump("a region cut by the frame's edge"),
                Verdict::Object => bump("an object-like region in too few frames"),
            }
        } else if sp.count[k] >= 3 {
            bump("scattered specks");
        } else {
            bump("a few specks");
        }
    }
    let Some(&(what, n)) = kinds.iter().max_by_key(|e| e.1) else {
        return format!("nothing {color} in any frame");
    };
    let scale =
        if ratio_n > 0 { format!(", {:.1}x the described area", ratio_sum / ratio_n as f32) } else { String::new() };
    format!("saw {what} ({color}{scale}, in {n} of {} frames)", a.frames)
}
