//! Corruptions of ground-truth videos, the evaluator's calibration (issue 27): each breaks
//! one thing a careful viewer would see, and the evaluator must score it low on what it
//! breaks. `tessera eval --corrupt KIND` applies them to a suite of world renders, so
//! anyone can re-run the calibration; the table in BENCHMARKS.md is its output.

use tessera_media::Frame;

use super::segment::{classify, Image, NONE};
use crate::rng::Rng;
use crate::scene::Scene;
use crate::spec::{Color, Spec};

/// The corruptions, each named as on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// Every row where an object's colour ever appears painted with that colour, full
    /// width, in every frame: what an undertrained model's "flood of colour" looks like.
    Flood,
    /// The objects removed: their pixels replaced by the background (an empty scene).
    Blank,
    /// The first frame repeated.
    Static,
    /// The frames in a random order.
    Shuffle,
    /// Played backwards.
    Reverse,
    /// Hues rotated 180 degrees (red becomes cyan; white and black stay).
    Hue,
    /// Each object's pixels scattered as one-pixel specks over its bounding box (as many
    /// as fit on every other row and column, so no two specks touch).
    Fragments,
}

impl Corruption {
    pub const ALL: [Corruption; 7] = [
        Corruption::Flood,
        Corruption::Blank,
        Corruption::Static,
        Corruption::Shuffle,
        Corruption::Reverse,
        Corruption::Hue,
        Corruption::Fragments,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Corruption::Flood => "flood",
            Corruption::Blank => "blank",
            Corruption::Static => "static",
            Corruption::Shuffle => "shuffle",
            Corruption::Reverse => "reverse",
            Corruption::Hue => "hue",
            Corruption::Fragments => "fragments",
        }
    }

    pub fn parse(word: &str) -> Option<Corruption> {
        Corruption::ALL.into_iter().find(|c| c.word() == word)
    }

    /// Whether it needs the clip's spec (to render the background behind the objects).
    pub fn needs_spec(self) -> bool {
        matches!(self, Corruption::Blank | Corruption::Fragments)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CorruptError {
    #[error("the {0} corruption needs the clip's spec (a suite line with `spec`) to render the background")]
    NeedsSpec(&'static str),
    #[error("the video has no frames")]
    Empty,
}

/// Corrupts a video (frames of one size). `seed` drives the random ones (shuffle,
/// fragments); the same arguments give the same frames.
pub fn corrupt(
    kind: Corruption,
    frames: &[Frame],
    spec: Option<&Spec>,
    fps: f64,
    seed: u64,
) -> Result<Vec<Frame>, CorruptError> {
    if frames.is_empty() {
        return Err(CorruptError::Empty);
    }
    let mut out: Vec<Frame> = frames.to_vec();
    match kind {
        Corruption::Static => out.iter_mut().for_each(|f| *f = frames[0].clone()),
        Corruption::Reverse => out.reverse(),
        Corruption::Shuffle => {
            let mut rng = Rng::new(seed);
            for i in (1..out.len()).rev() {
                out.swap(i, rng.below(i + 1));
            }
        }
        Corruption::Hue => {
            // A 180-degree hue rotation keeps each pixel's max and min channel and mirrors
            // the third between them: c -> max + min - c.
            for f in &mut out {
                for p in f.data.chunks_exact_mut(3) {
                    let (hi, lo) = (p[0].max(p[1]).max(p[2]) as u16, p[0].min(p[1]).min(p[2]) as u16);
                    for c in p.iter_mut() {
                        *c = (hi + lo - *c as u16) as u8;
                    }
                }
            }
        }
        Corruption::Flood => {
            let labels: Vec<Vec<u8>> = frames.iter().map(labels_of).collect();
            let colours = object_colours(spec, &labels);
            let (w, h) = (frames[0].width, frames[0].height);
            for c in colours {
                let k = c as u8;
                let rows: Vec<usize> =
                    (0..h).filter(|&y| labels.iter().any(|l| l[y * w..(y + 1) * w].contains(&k))).collect();
                let rgb = c.rgb();
                for f in &mut out {
                    for &y in &rows {
                        for p in f.data[y * w * 3..(y + 1) * w * 3].chunks_exact_mut(3) {
                            p.copy_from_slice(&rgb);
                        }
                    }
                }
            }
        }
        Corruption::Blank | Corruption::Fragments => {
            let spec = spec.ok_or(CorruptError::NeedsSpec(kind.word()))?;
            let mut empty = spec.clone();
            empty.objects.clear();
            empty.events.clear();
            let scene = Scene::new(empty);
            let (w, h) = (frames[0].width, frames[0].height);
            let mut r = scene.renderer(w, h, fps);
            let mut rng = Rng::new(seed);
            for (i, f) in out.iter_mut().enumerate() {
                let bg = r.frame(i.min(r.frame_count() - 1));
                let labels = labels_of(f);
                // The objects' pixels and a one-pixel rim (their anti-aliased edges).
                let mut object = vec![NONE; w * h];
                for y in 0..h {
                    for x in 0..w {
                        let k = labels[y * w + x];
                        if k == NONE {
                            continue;
                        }
                        for (dx, dy) in [(0i64, 0i64), (-1, 0), (1, 0), (0, -1), (0, 1)] {
                            let (xx, yy) = (x as i64 + dx, y as i64 + dy);
                            if xx >= 0 && yy >= 0 && (xx as usize) < w && (yy as usize) < h {
                                let j = yy as usize * w + xx as usize;
                                if object[j] == NONE || labels[j] == k {
                                    object[j] = k;
                                }
                            }
                        }
                    }
                }
                let original = f.data.clone();
                for j in 0..w * h {
                    if object[j] != NONE {
                        f.data[j * 3..j * 3 + 3].copy_from_slice(&bg.data[j * 3..j * 3 + 3]);
                    }
                }
                if kind == Corruption::Fragments {
                    scatter(f, &original, &labels, w, h, &mut rng);
                }
            }
        }
    }
    Ok(out)
}

/// Each colour's labelled pixels, moved to random sites of a two-pixel lattice over the
/// colour's bounding box: specks that never touch each other.
fn scatter(f: &mut Frame, original: &[u8], labels: &[u8], w: usize, h: usize, rng: &mut Rng) {
    for k in 0..Color::ALL.len() as u8 {
        let pixels: Vec<usize> = (0..w * h).filter(|&j| labels[j] == k).collect();
        if pixels.is_empty() {
            continue;
        }
        let (x0, x1) = pixels.iter().map(|&j| j % w).fold((w, 0), |(a, b), x| (a.min(x), b.max(x)));
        let (y0, y1) = pixels.iter().map(|&j| j / w).fold((h, 0), |(a, b), y| (a.min(y), b.max(y)));
        let mut sites: Vec<usize> =
            (y0..=y1).step_by(2).flat_map(|y| (x0..=x1).step_by(2).map(move |x| y * w + x)).collect();
        for i in (1..sites.len()).rev() {
            sites.swap(i, rng.below(i + 1));
        }
        for (&site, &from) in sites.iter().zip(&pixels) {
            f.data[site * 3..site * 3 + 3].copy_from_slice(&original[from * 3..from * 3 + 3]);
        }
    }
}

fn labels_of(f: &Frame) -> Vec<u8> {
    classify(&Image { width: f.width, height: f.height, data: f.data.clone() })
}

/// The colours of the clip's objects: the spec's, or every palette colour the video shows
/// in at least 20 pixels.
fn object_colours(spec: Option<&Spec>, labels: &[Vec<u8>]) -> Vec<Color> {
    match spec {
        Some(s) => {
            let mut c: Vec<Color> = s.objects.iter().map(|o| o.color).collect();
            c.dedup();
            c
        }
        None => Color::ALL
            .iter()
            .copied()
            .filter(|&c| labels.iter().map(|l| l.iter().filter(|&&k| k == c as u8).count()).sum::<usize>() >= 20)
            .collect(),
    }
}
