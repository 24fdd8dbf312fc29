//! From frames to facts: shots (cuts), camera motion, the floor line, and object tracks in
//! the coordinates of each shot's first frame (camera motion removed), in metres.

use super::segment::{classify, regions, Blob, Image, Specks, NONE};
use crate::spec::{CameraMotion, Color, Framing, FLOOR_ROW};

/// One object seen in one frame, in the shot's reference coordinates.
#[derive(Debug, Clone)]
pub struct Sighting {
    pub frame: usize,
    pub blob: Blob,
    /// Centre (metres; x to the right of the shot's left edge, y up from the floor).
    pub x: f32,
    pub y: f32,
    /// Height of its lowest point above the floor, metres.
    pub bottom: f32,
    /// Radius of the disc of the same area, metres.
    pub radius: f32,
}

/// An object followed through consecutive frames of one shot.
#[derive(Debug, Clone)]
pub struct Track {
    pub color: Color,
    pub shot: usize,
    pub sightings: Vec<Sighting>,
}

impl Track {
    pub fn first(&self) -> usize {
        self.sightings[0].frame
    }
    pub fn last(&self) -> usize {
        self.sightings[self.sightings.len() - 1].frame
    }
    /// The median radius of its clean sightings (not cut by the border), metres.
    pub fn radius(&self) -> f32 {
        median(self.clean().map(|s| s.radius).collect()).unwrap_or(0.0)
    }
    /// Sightings whose blob is whole: off the border and not much smaller than usual.
    pub fn clean(&self) -> impl Iterator<Item = &Sighting> {
        let full = self.full_area();
        self.sightings.iter().filter(move |s| !s.blob.touches_border && s.blob.area >= 0.8 * full)
    }
    /// The largest area (pixels) it shows: its whole size.
    pub fn full_area(&self) -> f32 {
        self.sightings.iter().map(|s| s.blob.area).fold(0f32, f32::max)
    }
}

pub struct Analysis {
    pub width: usize,
    pub height: usize,
    pub fps: f64,
    pub frames: usize,
    /// Frame ranges of shots.
    pub shots: Vec<std::ops::Range<usize>>,
    /// Row of the floor line (pixels from the top).
    pub floor_row: f32,
    /// Pixels per metre in each shot's reference frame.
    pub ppm: Vec<f32>,
    /// Per frame: the map x_ref = a x + b (and y about the floor row with the same a).
    pub transform: Vec<(f32, f32)>,
    /// Per frame: the blobs found.
    pub blobs: Vec<Vec<Blob>>,
    /// Per frame: each colour's pixels outside blobs (specks) and full rows (bands).
    pub specks: Vec<Specks>,
    pub tracks: Vec<Track>,
    /// Net camera motion: pan (view widths, + right) and zoom (view width end / start).
    pub pan: f32,
    pub zoom: f32,
    /// Per frame: mean luminance, and the structural change from the previous frame.
    pub brightness: Vec<f32>,
    pub change: Vec<f32>,
    /// Frames identical (within 2 levels) to their predecessor.
    pub repeated: Vec<bool>,
    /// Per frame: how badly the floor matches the previous frame's at the best shift.
    pub floor_cost: Vec<f32>,
    /// The first frame (analysed size) and its palette labels.
    pub first: Image,
    pub first_labels: Vec<u8>,
}

impl Analysis {
    pub fn camera(&self) -> CameraMotion {
        if self.pan.abs() > 0.1 {
            if self.pan > 0.0 {
                CameraMotion::PanRight
            } else {
                CameraMotion::PanLeft
            }
        } else if self.zoom < 0.85 {
            CameraMotion::ZoomIn
        } else if self.zoom > 1.18 {
            CameraMotion::ZoomOut
        } else {
            CameraMotion::Static
        }
    }

    pub fn dt(&self) -> f32 {
        (1.0 / self.fps) as f32
    }
}

impl Analysis {
    /// (sky top colour, sky colour low above the horizon, floor colour, floor luminance
    /// spread) of the first frame, per-channel medians over object-free pixels.
    pub fn observed_scene(&self) -> ([f32; 3], [f32; 3], [f32; 3], f32) {
        scene_features(&self.first, Some(&self.first_labels), self.floor_row)
    }
}

/// See [`Analysis::observed_scene`]; also used on the renderer's reference scenes.
pub fn scene_features(img: &Image, labels: Option<&[u8]>, floor_row: f32) -> ([f32; 3], [f32; 3], [f32; 3], f32) {
    let (w, h) = (img.width, img.height);
    let band = |y0: usize, y1: usize| {
        let mut ch: [Vec<f32>; 3] = Default::default();
        let mut luma = Vec::new();
        for y in y0..y1.min(h) {
            for x in 0..w {
                let i = y * w + x;
                if labels.is_some_and(|l| l[i] != NONE) {
                    continue;
                }
                let p = &img.data[i * 3..i * 3 + 3];
                for c in 0..3 {
                    ch[c].push(p[c] as f32);
                }
                luma.push(0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32);
            }
        }
        let m = ch.map(|v| median(v).unwrap_or(0.0));
        let mean = luma.iter().sum::<f32>() / luma.len().max(1) as f32;
        let sd = (luma.iter().map(|l| (l - mean).powi(2)).sum::<f32>() / luma.len().max(1) as f32).sqrt();
        (m, sd)
    };
    let fr = floor_row.round() as usize;
    let top = band(0, (h / 10).max(1)).0;
    let low = band(h * 6 / 10, h * 7 / 10).0;
    let (floor, spread) = band((fr + 1).min(h - 1), h);
    (top, low, floor, spread)
}

pub fn median(mut v: Vec<f32>) -> Option<f32> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

/// Largest width the evaluator works at; bigger frames are box-downscaled.
const MAX_WIDTH: usize = 256;

pub fn analyse(frames: &[(usize, usize, &[u8])], fps: f64) -> Analysis {
    analyse_with(frames, fps, false)
}

/// [`analyse`]; with `world_floor` the floor line is the world's own (`FLOOR_ROW`), as it
/// is in every clip whose spec is known, instead of estimated from the first frame (the
/// estimate can settle on a darker band of sky just above it).
pub fn analyse_with(frames: &[(usize, usize, &[u8])], fps: f64, world_floor: bool) -> Analysis {
    let images: Vec<Image> = frames.iter().map(|&(w, h, d)| Image::from_rgb(w, h, d, MAX_WIDTH)).collect();
    let (w, h) = (images[0].width, images[0].height);
    let labels: Vec<Vec<u8>> = images.iter().map(classify).collect();
    let lumas: Vec<Vec<f32>> = images.iter().map(Image::luma).collect();
    let min_area = ((w as f32 / 40.0).powi(2) * 0.6).max(4.0) as usize;
    let (blobs_per_frame, specks): (Vec<Vec<Blob>>, Vec<Specks>) =
        images.iter().zip(&labels).map(|(i, l)| regions(i, l, min_area)).unzip();
    let brightness: Vec<f32> = lumas.iter().map(|l| l.iter().sum::<f32>() / l.len() as f32).collect();

    // Structural change between frames (brightness change removed), and cuts.
    let mut change = vec![0f32; images.len()];
    let mut repeated = vec![false; images.len()];
    for t in 1..images.len() {
        let db = brightness[t] - brightness[t - 1];
        let s: f32 = lumas[t].iter().zip(&lumas[t - 1]).map(|(a, b)| (a - b - db).abs()).sum();
        change[t] = s / lumas[t].len() as f32;
        repeated[t] = images[t].data == images[t - 1].data
            || images[t].data.iter().zip(&images[t - 1].data).all(|(a, b)| a.abs_diff(*b) <= 2);
    }
    let floor_row =
        if world_floor { h as f32 * (1.0 - FLOOR_ROW as f32) } else { find_floor_row(&images[0], &labels[0]) };

    // Camera: horizontal shift of the floor's texture in the left and right halves, from
    // each frame to the next. A cut shows as a frame whose floor matches the previous one
    // at no shift (or as a large change of the whole picture).
    let mut shifts = vec![(0f32, 0f32, 0f32); images.len()];
    for t in 1..images.len() {
        shifts[t] = halves_shift(&lumas[t - 1], &lumas[t], &labels[t - 1], &labels[t], w, h, floor_row);
    }
    let typical_change = median(change[1..].to_vec()).unwrap_or(0.0);
    let typical_cost = median(shifts[1..].iter().map(|s| s.2).collect()).unwrap_or(0.0);
    let mut shots = Vec::new();
    let mut start = 0;
    for t in 1..images.len() {
        // Both the picture and the floor's alignment break at once, far beyond usual.
        let cut = change[t] > 2.5f32.max(4.0 * typical_change) && shifts[t].2 > 2.5f32.max(6.0 * typical_cost);
        if cut {
            shots.push(start..t);
            start = t;
        }
    }
    shots.push(start..images.len());

    let mut transform = vec![(1f32, 0f32); images.len()];
    let (mut pan, mut zoom_log) = (0f32, 0f32);
    let half = w as f32 / 2.0;
    for shot in &shots {
        let (mut a, mut b) = (1f32, 0f32);
        transform[shot.start] = (a, b);
        for t in shot.start + 1..shot.end {
            let (dl, dr, _) = shifts[t];
            let s = (1.0 + (dr - dl) / half).clamp(0.8, 1.25);
            let d = (dl + dr) / 2.0;
            // x_t = s (x_{t-1} - W/2) + W/2 + d, so x_{t-1} = (x_t - W/2 - d) / s + W/2.
            b += a * (half - (half + d) / s);
            a /= s;
            transform[t] = (a, b);
        }
        // Where the frame centre ends up, in the shot's first frame.
        let end = transform[shot.end - 1];
        pan += (end.0 * half + end.1 - half) / w as f32;
        zoom_log += end.0.ln();
    }
    let zoom = zoom_log.exp();

    // Scale: the first shot is framed wide (the world's convention) at its widest frame
    // (the first, unless the camera zooms out); later shots are scaled by the size their
    // objects had before the cut.
    let widest = transform[shots[0].clone()].iter().map(|t| t.0).fold(1f32, f32::max);
    let wide = (w as f64 / Framing::Wide.view_width()) as f32 * widest;
    let mut ppm = vec![wide; shots.len()];
    for k in 1..shots.len() {
        let before: Vec<&Blob> = blobs_per_frame[shots[k - 1].clone()].iter().flatten().collect();
        let after: Vec<&Blob> = blobs_per_frame[shots[k].clone()].iter().flatten().collect();
        let mut ratios = Vec::new();
        for c in Color::ALL {
            let r0 = median(before.iter().filter(|b| b.color == *c && !b.touches_border).map(|b| b.radius()).collect());
            let r1 = median(after.iter().filter(|b| b.color == *c && !b.touches_border).map(|b| b.radius()).collect());
            if let (Some(r0), Some(r1)) = (r0, r1) {
                ratios.push(r1 / r0);
            }
        }
        let zoom_before = transform[shots[k - 1].end - 1].0;
        ppm[k] = ppm[k - 1] / zoom_before * median(ratios).unwrap_or(1.0);
    }

    // Tracks: link blobs of one colour frame to frame by nearest centre.
    let mut tracks: Vec<Track> = Vec::new();
    for (si, shot) in shots.iter().enumerate() {
        let mut active: Vec<usize> = Vec::new();
        for t in shot.clone() {
            let (a, b) = transform[t];
            let p = ppm[si];
            let mut taken = vec![false; blobs_per_frame[t].len()];
            let mut next_active = Vec::new();
            // Greedy: closest pairs first.
            let mut pairs = Vec::new();
            for (ti, &tr) in active.iter().enumerate() {
                let last = tracks[tr].sightings.last().unwrap();
                for (bi, bl) in blobs_per_frame[t].iter().enumerate() {
                    if bl.color != tracks[tr].color {
                        continue;
                    }
                    let d = (bl.cx - last.blob.cx).hypot(bl.cy - last.blob.cy);
                    if d < w as f32 * 0.2 {
                        pairs.push((d, ti, bi));
                    }
                }
            }
            pairs.sort_by(|x, y| x.0.total_cmp(&y.0));
            let mut used_track = vec![false; active.len()];
            let mut assign = Vec::new();
            for (_, ti, bi) in pairs {
                if !used_track[ti] && !taken[bi] {
                    used_track[ti] = true;
                    taken[bi] = true;
                    assign.push((active[ti], bi));
                }
            }
            for (bi, bl) in blobs_per_frame[t].iter().enumerate() {
                if !taken[bi] {
                    tracks.push(Track { color: bl.color, shot: si, sightings: Vec::new() });
                    assign.push((tracks.len() - 1, bi));
                }
            }
            for (tr, bi) in assign {
                let bl = blobs_per_frame[t][bi].clone();
                let xr = a * bl.cx + b;
                let yr = floor_row + a * (bl.cy - floor_row);
                let bottom_r = floor_row + a * (bl.bottom - floor_row);
                tracks[tr].sightings.push(Sighting {
                    frame: t,
                    x: xr / p,
                    y: (floor_row - yr) / p,
                    bottom: (floor_row - bottom_r) / p,
                    radius: bl.radius() * a / p,
                    blob: bl,
                });
                next_active.push(tr);
            }
            active = next_active;
        }
    }
    // Drop specks: tracks seen in very few frames of a long shot.
    tracks.retain(|t| {
        let shot_len = shots[t.shot].len();
        t.sightings.len() >= 3.min(shot_len)
    });

    Analysis {
        width: w,
        height: h,
        fps,
        frames: images.len(),
        shots,
        floor_row,
        ppm,
        transform,
        blobs: blobs_per_frame,
        specks,
        tracks,
        pan,
        zoom,
        brightness,
        change,
        repeated,
        floor_cost: shifts.iter().map(|s| s.2).collect(),
        first: images[0].clone(),
        first_labels: labels[0].clone(),
    }
}

/// The floor line: the row near the world's framing (78% down) where the mean colour of
/// the object-free rows above and below differs most.
fn find_floor_row(img: &Image, lab: &[u8]) -> f32 {
    let (w, h) = (img.width, img.height);
    let row_mean = |y: usize| {
        let mut acc = [0f32; 3];
        let mut n = 0f32;
        for x in 0..w {
            if lab[y * w + x] == NONE {
                for c in 0..3 {
                    acc[c] += img.data[(y * w + x) * 3 + c] as f32;
                }
                n += 1.0;
            }
        }
        acc.map(|a| a / n.max(1.0))
    };
    let rows: Vec<[f32; 3]> = (0..h).map(row_mean).collect();
    let expected = h as f32 * (1.0 - FLOOR_ROW as f32);
    let reach = ((h as f32 * 0.08) as usize).max(2);
    let k = (h / 40).max(2);
    let e = expected.round() as usize;
    let mean = |r: std::ops::Range<usize>| {
        let n = r.len() as f32;
        r.fold([0f32; 3], |acc, i| [acc[0] + rows[i][0], acc[1] + rows[i][1], acc[2] + rows[i][2]]).map(|v| v / n)
    };
    let mut best = (f32::MIN, expected);
    for y in e.saturating_sub(reach).max(k)..(e + reach).min(h - k) {
        let (a, b) = (mean(y - k..y), mean(y..y + k));
        let d = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
        if d > best.0 {
            best = (d, y as f32);
        }
    }
    // The world's own framing wins unless another edge is much clearer.
    let at_expected = {
        let y = e.clamp(k, h - k);
        let (a, b) = (mean(y - k..y), mean(y..y + k));
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
    };
    if at_expected >= 0.5 * best.0 || (best.1 - expected).abs() <= 1.0 {
        expected
    } else {
        best.1
    }
}

/// Horizontal shifts (pixels, + right) of the floor band's left and right halves from one
/// frame to the next, by sum of absolute differences with sub-pixel refinement.
fn halves_shift(
    prev: &[f32],
    cur: &[f32],
    lp: &[u8],
    lc: &[u8],
    w: usize,
    h: usize,
    floor_row: f32,
) -> (f32, f32, f32) {
    let y0 = (floor_row.ceil() as usize + 1).min(h - 1);
    let y1 = h.saturating_sub(1).max(y0 + 1).min(h);
    let max_d = (w / 16).max(2) as i64;
    let half = |x0: usize, x1: usize| {
        let cost = |d: i64| {
            let (mut s, mut n) = (0f32, 0f32);
            for y in y0..y1 {
                for x in x0..x1 {
                    let xp = x as i64 - d;
                    if xp < 0 || xp >= w as i64 {
                        continue;
                    }
                    let (i, j) = (y * w + x, y * w + xp as usize);
                    if lc[i] != NONE || lp[j] != NONE {
                        continue;
                    }
                    s += (cur[i] - prev[j]).abs();
                    n += 1.0;
                }
            }
            if n < 8.0 {
                f32::MAX
            } else {
                s / n
            }
        };
        let costs: Vec<f32> = (-max_d..=max_d).map(cost).collect();
        let (bi, _) = costs.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).unwrap();
        let d = bi as i64 - max_d;
        let best = if costs[bi] == f32::MAX { 0.0 } else { costs[bi] };
        if bi == 0 || bi + 1 == costs.len() || costs[bi] == f32::MAX {
            return (d as f32, best);
        }
        let (a, b, c) = (costs[bi - 1], costs[bi], costs[bi + 1]);
        let denom = a - 2.0 * b + c;
        let off = if denom > 1e-6 { 0.5 * (a - c) / denom } else { 0.0 };
        (d as f32 + off.clamp(-0.5, 0.5), best)
    };
    let (l, r) = (half(0, w / 2), half(w / 2, w));
    (l.0, r.0, (l.1 + r.1) / 2.0)
}
