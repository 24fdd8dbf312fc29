//! Finding the objects in a frame: every palette colour is far from every scene colour, so
//! a pixel belongs to an object when it is near a palette colour (or a darker shade of
//! one: objects are shaded and take some of the scene's light), and objects are the
//! connected regions of one colour.

use crate::spec::{Color, Shape, Size};

/// An RGB8 image (rows top to bottom), possibly a downscaled frame.
#[derive(Debug, Clone)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Image {
    /// Box-downscales so the width is at most `max_width` (integer factor), which keeps
    /// the evaluation's cost bounded for large videos.
    pub fn from_rgb(width: usize, height: usize, data: &[u8], max_width: usize) -> Image {
        let f = width.div_ceil(max_width).max(1);
        if f == 1 {
            return Image { width, height, data: data.to_vec() };
        }
        let (w, h) = (width / f, height / f);
        let mut out = vec![0u8; w * h * 3];
        let n = (f * f) as u32;
        for y in 0..h {
            for x in 0..w {
                let mut acc = [0u32; 3];
                for dy in 0..f {
                    let row = (y * f + dy) * width;
                    for dx in 0..f {
                        let o = (row + x * f + dx) * 3;
                        for c in 0..3 {
                            acc[c] += data[o + c] as u32;
                        }
                    }
                }
                for c in 0..3 {
                    out[(y * w + x) * 3 + c] = ((acc[c] + n / 2) / n) as u8;
                }
            }
        }
        Image { width: w, height: h, data: out }
    }

    pub fn luma(&self) -> Vec<f32> {
        self.data.chunks_exact(3).map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32).collect()
    }
}

/// No palette colour.
pub const NONE: u8 = u8::MAX;

/// Shades of a palette colour that still count as it: the renderer darkens objects by at
/// most 16% (shading and dim light). Black has no darker shade worth listing.
pub const SHADES: [f32; 3] = [1.0, 0.92, 0.84];

/// The colours a pixel can be classified as: (palette index, shade).
pub fn palette_shades() -> Vec<(u8, [f32; 3])> {
    Color::ALL
        .iter()
        .enumerate()
        .flat_map(|(k, c)| {
            let c = c.rgb();
            let shades: &[f32] = if k == Color::Black as usize { &SHADES[..1] } else { &SHADES };
            shades.iter().map(move |&s| (k as u8, [c[0] as f32 * s, c[1] as f32 * s, c[2] as f32 * s]))
        })
        .collect()
}

/// A pixel is a palette colour's when it is this near one of its shades (RGB distance) and
/// clearly nearer to it than to any other colour.
pub const MAX_DISTANCE: f32 = 42.0;
const MARGIN: f32 = 8.0;
pub const BLACK_DISTANCE: f32 = 28.0;

/// The palette colour of each pixel, or [`NONE`].
pub fn classify(img: &Image) -> Vec<u8> {
    let shades = palette_shades();
    img.data
        .chunks_exact(3)
        .map(|p| {
            let p = [p[0] as f32, p[1] as f32, p[2] as f32];
            let mut best = (f32::MAX, NONE);
            let mut second = f32::MAX;
            for &(k, c) in &shades {
                let d = (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2) + (p[2] - c[2]).powi(2);
                if d < best.0 {
                    if best.1 != k {
                        second = best.0;
                    }
                    best = (d, k);
                } else if k != best.1 && d < second {
                    second = d;
                }
            }
            let (d1, d2) = (best.0.sqrt(), second.sqrt());
            // Black barely changes with shading, while dark floors in shadow and dim light
            // come nearer to it than to anything else: hold it to a tighter reach.
            let reach = if best.1 == Color::Black as u8 { BLACK_DISTANCE } else { MAX_DISTANCE };
            if d1 < reach && d2 - d1 > MARGIN {
                best.1
            } else {
                NONE
            }
        })
        .collect()
}

/// A connected region of one palette colour.
#[derive(Debug, Clone)]
pub struct Blob {
    pub color: Color,
    pub area: f32,
    /// Centroid, pixels.
    pub cx: f32,
    pub cy: f32,
    /// Bottom edge (the largest row + 1), pixels.
    pub bottom: f32,
    pub x0: usize,
    pub x1: usize,
    pub y0: usize,
    pub y1: usize,
    /// Largest distance of a pixel centre from the centroid over sqrt(area): 0.56 for a
    /// disc, 0.71 for a square, 0.88 for an equilateral triangle, whatever the rotation.
    pub spread: f32,
    pub touches_border: bool,
    /// Mean colour of its pixels.
    pub mean: [f32; 3],
}

impl Blob {
    /// Radius of the disc of the same area, pixels.
    pub fn radius(&self) -> f32 {
        (self.area / std::f32::consts::PI).sqrt()
    }

    pub fn shape(&self) -> Shape {
        shape_of_spread(self.spread)
    }
}

pub fn shape_of_spread(spread: f32) -> Shape {
    // Measured on ground-truth renders at 128x128, raw and through H.264 (example
    // shape_stats): balls 0.58-0.67, boxes 0.62-0.70, triangles 0.73-0.86.
    if spread < 0.635 {
        Shape::Ball
    } else if spread < 0.72 {
        Shape::Box
    } else {
        Shape::Triangle
    }
}

/// The size class of a radius in metres (nearest in ratio).
pub fn size_of_radius(r: f32) -> Size {
    if r < (Size::Small.radius() * Size::Medium.radius()).sqrt() as f32 {
        Size::Small
    } else if r < (Size::Medium.radius() * Size::Large.radius()).sqrt() as f32 {
        Size::Medium
    } else {
        Size::Large
    }
}

/// What of each palette colour a frame holds beyond its blobs: components smaller than a
/// blob (specks), how many pixels they hold, and the colour's pixels in all.
#[derive(Debug, Clone, Copy, Default)]
pub struct Specks {
    pub count: [u32; 8],
    pub pixels: [u32; 8],
    pub total: [u32; 8],
    /// Rows at least 80% this colour (a band across the frame).
    pub full_rows: [u32; 8],
}

/// Connected regions (4-connected) of each colour with at least `min_area` pixels, and
/// what the frame holds of each colour besides (for the report's "what was seen": a flood,
/// a band, scattered specks).
pub fn regions(img: &Image, labels: &[u8], min_area: usize) -> (Vec<Blob>, Specks) {
    let (w, h) = (img.width, img.height);
    let mut seen = vec![false; w * h];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    let mut pixels = Vec::new();
    let mut specks = Specks::default();
    for row in labels.chunks_exact(w) {
        let mut n = [0u32; 8];
        for &l in row {
            if l != NONE {
                n[l as usize] += 1;
            }
        }
        for k in 0..8 {
            if n[k] * 5 >= w as u32 * 4 {
                specks.full_rows[k] += 1;
            }
        }
    }
    for start in 0..w * h {
        if seen[start] || labels[start] == NONE {
            continue;
        }
        let k = labels[start];
        seen[start] = true;
        stack.push(start);
        pixels.clear();
        while let Some(i) = stack.pop() {
            pixels.push(i);
            let (x, y) = (i % w, i / w);
            let mut visit = |j: usize| {
                if !seen[j] && labels[j] == k {
                    seen[j] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        specks.total[k as usize] += pixels.len() as u32;
        if pixels.len() < min_area {
            specks.count[k as usize] += 1;
            specks.pixels[k as usize] += pixels.len() as u32;
            continue;
        }
        let n = pixels.len() as f32;
        let (mut sx, mut sy) = (0f32, 0f32);
        let (mut x0, mut x1, mut y0, mut y1) = (w, 0, h, 0);
        let mut mean = [0f32; 3];
        for &i in &pixels {
            let (x, y) = (i % w, i / w);
            sx += x as f32 + 0.5;
            sy += y as f32 + 0.5;
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
            for c in 0..3 {
                mean[c] += img.data[i * 3 + c] as f32;
            }
        }
        let (cx, cy) = (sx / n, sy / n);
        let max_r =
            pixels.iter().map(|&i| ((i % w) as f32 + 0.5 - cx).hypot((i / w) as f32 + 0.5 - cy)).fold(0f32, f32::max);
        let touches_border = x0 == 0 || y0 == 0 || x1 + 1 == w || y1 + 1 == h;
        let spread = (max_r + 0.3) / n.sqrt();
        // No object is a sliver: thin whole regions are edges of something else.
        if spread > 1.05 && !touches_border {
            continue;
        }
        out.push(Blob {
            color: Color::ALL[k as usize],
            area: n,
            cx,
            cy,
            bottom: y1 as f32 + 1.0,
            x0,
            x1,
            y0,
            y1,
            // (The farthest pixel centre lies about a third of a pixel inside the outline.)
            spread,
            touches_border,
            mean: mean.map(|m| m / n),
        });
    }
    (out, specks)
}
