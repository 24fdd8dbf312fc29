//! The renderer: a side view of the stage, any size, anti-aliased, deterministic.
//!
//! Layers, back to front: sky or room wall (with parallax hills, stars or wallpaper so
//! camera motion shows), the textured floor, the side walls and ramps, object shadows,
//! objects, then occluders. Edges are anti-aliased by coverage: each shape's signed
//! distance to the pixel centre in pixels, clamped to [0, 1] around the edge (a box filter
//! of one pixel's width). Only integer hashes and f32 arithmetic are used, so a seed gives
//! the same bytes everywhere.
//!
//! With a static camera the background is drawn once per shot and copied (most of a
//! frame's cost); objects and occluders are drawn in their bounding boxes.

use tessera_media::Frame;

use crate::rng::hash2;
use crate::sim::{shape_vertices, Pose, Trajectory};
use crate::spec::{Background, Floor, OccluderKind, Spec, View, FLOOR_ROW, WALL_X};

type Rgb = [f32; 3];

/// Maps pixels to world coordinates for one view.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    /// Metres per pixel.
    s: f32,
    /// World x of column 0's left edge, world y of row 0's top edge.
    x0: f32,
    y0: f32,
}

impl Mapping {
    fn new(view: View, width: usize, height: usize) -> Self {
        let s = (view.width / width as f64) as f32;
        let x0 = view.center_x as f32 - s * width as f32 / 2.0;
        let y0 = s * height as f32 * (1.0 - FLOOR_ROW as f32);
        Mapping { s, x0, y0 }
    }
    #[inline]
    fn x(&self, col: usize) -> f32 {
        self.x0 + (col as f32 + 0.5) * self.s
    }
    #[inline]
    fn y(&self, row: usize) -> f32 {
        self.y0 - (row as f32 + 0.5) * self.s
    }
    /// The pixel range covering world [x0, x1] x [y0, y1], clipped to the frame.
    fn bbox(&self, x: (f32, f32), y: (f32, f32), w: usize, h: usize) -> (usize, usize, usize, usize) {
        let c0 = ((x.0 - self.x0) / self.s - 1.0).floor().max(0.0) as usize;
        let c1 = (((x.1 - self.x0) / self.s + 1.0).ceil().max(0.0) as usize).min(w);
        let r0 = ((self.y0 - y.1) / self.s - 1.0).floor().max(0.0) as usize;
        let r1 = (((self.y0 - y.0) / self.s + 1.0).ceil().max(0.0) as usize).min(h);
        (c0, c1.max(c0), r0, r1.max(r0))
    }
}

fn rgb(c: [u8; 3]) -> Rgb {
    [c[0] as f32, c[1] as f32, c[2] as f32]
}

#[inline]
fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

#[inline]
fn scale(a: Rgb, k: f32) -> Rgb {
    [a[0] * k, a[1] * k, a[2] * k]
}

/// Coverage of a pixel by a shape whose signed distance (negative inside) at the pixel
/// centre is `d_px` pixels.
#[inline]
fn coverage(d_px: f32) -> f32 {
    (0.5 - d_px).clamp(0.0, 1.0)
}

/// Bilinear value noise in [0, 1) on a lattice of unit cells.
#[inline]
fn value_noise(x: f32, y: f32, salt: u64) -> f32 {
    let (xf, yf) = (x.floor(), y.floor());
    let (xi, yi) = (xf as i64, yf as i64);
    let (u, v) = (x - xf, y - yf);
    let (u, v) = (u * u * (3.0 - 2.0 * u), v * v * (3.0 - 2.0 * v));
    let a = hash2(xi, yi, salt);
    let b = hash2(xi + 1, yi, salt);
    let c = hash2(xi, yi + 1, salt);
    let d = hash2(xi + 1, yi + 1, salt);
    let top = a + (b - a) * u;
    let bot = c + (d - c) * u;
    top + (bot - top) * v
}

/// Coverage of a line pattern: distance (world) to the nearest line of a grid with
/// spacing `period`, lines `half` wide, in pixels of size `s`.
#[inline]
fn grid_line(coord: f32, period: f32, half: f32, s: f32) -> f32 {
    let m = coord.rem_euclid(period);
    let d = m.min(period - m);
    coverage((d - half) / s)
}

/// Colours of the backgrounds and floors. None comes within 60 (RGB distance) of a
/// palette colour at any lighting level (tested), so objects segment by colour.
mod colors {
    pub const DAY: ([u8; 3], [u8; 3], [u8; 3]) = ([95, 155, 222], [160, 200, 240], [112, 148, 150]);
    pub const SUNSET: ([u8; 3], [u8; 3], [u8; 3]) = ([72, 50, 112], [232, 160, 125], [118, 78, 100]);
    pub const NIGHT: ([u8; 3], [u8; 3], [u8; 3]) = ([24, 36, 110], [44, 58, 122], [50, 62, 104]);
    pub const SUN: [u8; 3] = [250, 198, 150];
    pub const STAR: [u8; 3] = [205, 210, 232];
    pub const WALLPAPER: ([u8; 3], [u8; 3]) = ([200, 170, 140], [186, 156, 128]);
    pub const GRASS: ([u8; 3], [u8; 3]) = ([98, 126, 52], [120, 128, 62]);
    pub const WOOD: ([u8; 3], [u8; 3]) = ([150, 104, 64], [124, 84, 56]);
    pub const STONE: ([u8; 3], [u8; 3]) = ([134, 134, 140], [100, 100, 106]);
    pub const CHECKER: ([u8; 3], [u8; 3]) = ([176, 164, 140], [92, 92, 106]);
    pub const BRICK: ([u8; 3], [u8; 3]) = ([150, 96, 80], [170, 160, 150]);
    pub const PILLAR: ([u8; 3], [u8; 3]) = ([160, 154, 146], [118, 114, 108]);
    pub const TRUNK: [u8; 3] = [108, 78, 52];
    pub const LEAVES: ([u8; 3], [u8; 3]) = ([70, 100, 55], [84, 116, 62]);
    pub const RAMP: ([u8; 3], [u8; 3]) = ([140, 120, 96], [176, 156, 128]);
}

/// Every non-object colour the renderer uses (before lighting), and whether shadows fall
/// on it (floors), for the palette test.
pub fn scene_colors() -> Vec<([u8; 3], bool)> {
    use colors::*;
    let mut v = Vec::new();
    for (a, b, c) in [DAY, SUNSET, NIGHT] {
        v.extend([(a, false), (b, false), (c, false)]);
    }
    v.extend([(WALLPAPER.0, false), (WALLPAPER.1, false)]);
    for (a, b) in [GRASS, WOOD, STONE, CHECKER] {
        v.extend([(a, true), (b, true)]);
    }
    for (a, b) in [BRICK, PILLAR, LEAVES, RAMP] {
        v.extend([(a, false), (b, false)]);
    }
    v.extend([(SUN, false), (TRUNK, false)]);
    v
}

/// The look of an empty scene, for the evaluator: features of the first frame of every
/// background, floor and lighting, rendered at the given aspect ratio.
pub struct Reference {
    pub background: Background,
    pub floor_kind: Floor,
    pub lighting: crate::spec::Lighting,
    pub sky_top: [f32; 3],
    pub sky_low: [f32; 3],
    pub floor: [f32; 3],
    pub floor_contrast: f32,
}

///
/// Rendered once per frame shape and kept: every video an evaluation scores asks again.
pub fn reference_colors(aspect: f64) -> std::sync::Arc<Vec<Reference>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<usize, Arc<Vec<Reference>>>>> = OnceLock::new();
    let w = 96usize;
    let h = ((w as f64 / aspect).round() as usize).clamp(8, 512);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(r) = cache.lock().unwrap().get(&h) {
        return r.clone();
    }
    let refs = Arc::new(render_references(w, h));
    cache.lock().unwrap().insert(h, refs.clone());
    refs
}

fn render_references(w: usize, h: usize) -> Vec<Reference> {
    use crate::spec::{CameraMotion, Framing, Lighting, Shot};
    let mut out = Vec::new();
    for &background in Background::ALL {
        for &floor_kind in Floor::ALL {
            for &lighting in Lighting::ALL {
                let spec = Spec {
                    seconds: 0.0,
                    background,
                    floor: floor_kind,
                    lighting,
                    camera: CameraMotion::Static,
                    shots: vec![Shot { start: 0.0, framing: Framing::Wide, center: 0.0 }],
                    objects: vec![],
                    occluders: vec![],
                    ramps: vec![],
                    events: vec![],
                    collide: false,
                };
                let traj = Trajectory { objects: 0, poses: vec![] };
                let f = Renderer::new(&spec, &traj, w, h, 1.0).frame(0);
                let img = crate::eval::segment::Image { width: w, height: h, data: f.data };
                let floor_row = h as f32 * (1.0 - FLOOR_ROW as f32);
                let (sky_top, sky_low, floor, floor_contrast) =
                    crate::eval::analysis::scene_features(&img, None, floor_row);
                out.push(Reference { background, floor_kind, lighting, sky_top, sky_low, floor, floor_contrast });
            }
        }
    }
    out
}

/// The most a shadow darkens the floor.
pub const SHADOW: f32 = 0.2;

/// Renders a spec's frames at any size and frame rate.
pub struct Renderer<'a> {
    spec: &'a Spec,
    traj: &'a Trajectory,
    width: usize,
    height: usize,
    fps: f64,
    /// Object outlines in body coordinates (empty for balls).
    verts: Vec<Vec<(f32, f32)>>,
    light: f32,
    cache: Option<(u64, u64, Vec<f32>)>,
    buf: Vec<f32>,
}

impl<'a> Renderer<'a> {
    pub fn new(spec: &'a Spec, traj: &'a Trajectory, width: usize, height: usize, fps: f64) -> Self {
        let verts = spec
            .objects
            .iter()
            .map(|o| shape_vertices(o.shape, o.size.radius()).into_iter().map(|(x, y)| (x as f32, y as f32)).collect())
            .collect();
        Renderer {
            spec,
            traj,
            width,
            height,
            fps,
            verts,
            light: spec.lighting.level(),
            cache: None,
            buf: vec![0.0; width * height * 3],
        }
    }

    /// Frames in the clip: one per 1/fps of its duration (at least one: an image).
    pub fn frame_count(&self) -> usize {
        ((self.spec.seconds * self.fps).round() as usize).max(1)
    }

    /// Time of frame `i` in seconds.
    pub fn time(&self, i: usize) -> f64 {
        i as f64 / self.fps
    }

    /// Renders frame `i`.
    pub fn frame(&mut self, i: usize) -> Frame {
        let t = self.time(i);
        let view = self.spec.camera_at(t);
        let m = Mapping::new(view, self.width, self.height);
        let key = (view.width.to_bits(), view.center_x.to_bits());
        match &self.cache {
            Some((a, b, bg)) if (*a, *b) == key => self.buf.copy_from_slice(bg),
            _ => {
                self.background(&m);
                let moving = self.spec.camera_at(t + 1.0 / self.fps) != view
                    || (i > 0 && self.spec.camera_at(self.time(i - 1)) != view);
                // Keep a copy only when the next frame can use it.
                if !moving {
                    self.cache = Some((key.0, key.1, self.buf.clone()));
                }
            }
        }
        let poses = if self.traj.objects == 0 { Vec::new() } else { self.traj.at(t).to_vec() };
        self.shadows(&m, &poses);
        for (k, p) in poses.iter().enumerate() {
            self.object(&m, k, p);
        }
        self.occluders(&m);
        let data = self.buf.iter().map(|&v| tessera_media::quantize(v / 255.0)).collect();
        Frame::new(self.width, self.height, data).expect("frame buffer matches its size")
    }

    fn background(&mut self, m: &Mapping) {
        let (w, h) = (self.width, self.height);
        let spec = self.spec;
        let light = self.light;
        let s = m.s;
        let horizon_row = h as f32 * (1.0 - FLOOR_ROW as f32);
        for row in 0..h {
            let y = m.y(row);
            let v = (row as f32 + 0.5) / horizon_row;
            let line = &mut self.buf[row * w * 3..(row + 1) * w * 3];
            for col in 0..w {
                let x = m.x(col);
                let c = if x.abs() > WALL_X as f32 {
                    brick(x, y, s)
                } else {
                    // Sky/wall and floor, blended across the floor line.
                    let floor_cov = coverage(y / s);
                    let mut c =
                        if floor_cov < 1.0 { sky(spec.background, x, y, v, s, col, row, w, h) } else { [0.0; 3] };
                    if floor_cov > 0.0 {
                        c = mix(c, floor(spec.floor, x, -y, s), floor_cov);
                    }
                    // The side walls' edges.
                    let edge = (x.abs() - WALL_X as f32) / s;
                    if edge > -1.0 {
                        c = mix(c, brick(x, y, s), coverage(-edge));
                    }
                    c
                };
                let c = scale(c, light);
                line[col * 3..col * 3 + 3].copy_from_slice(&c);
            }
        }
        // Ramps (static, in the objects' plane, behind them).
        for r in &spec.ramps {
            let (xl, xh, ht) = (r.x_low as f32, r.x_high as f32, r.height as f32);
            let tri = [(xl, 0.0), (xh, 0.0), (xh, ht)];
            let (lo, hi) = (xl.min(xh), xl.max(xh));
            let (c0, c1, r0, r1) = m.bbox((lo, hi), (0.0, ht), w, h);
            for row in r0..r1 {
                for col in c0..c1 {
                    let p = (m.x(col), m.y(row));
                    let d = polygon_distance(&tri, p);
                    let cov = coverage(d / s);
                    if cov > 0.0 {
                        // A lighter band along the edges, the body inside.
                        let band = 1.0 - coverage((d + 0.05) / s);
                        let c = mix(rgb(colors::RAMP.0), rgb(colors::RAMP.1), band);
                        let c = scale(c, light);
                        let o = (row * w + col) * 3;
                        let px = [self.buf[o], self.buf[o + 1], self.buf[o + 2]];
                        self.buf[o..o + 3].copy_from_slice(&mix(px, c, cov));
                    }
                }
            }
        }
    }

    fn shadows(&mut self, m: &Mapping, poses: &[Pose]) {
        let (w, h) = (self.width, self.height);
        for (k, p) in poses.iter().enumerate() {
            let r = self.spec.objects[k].size.radius() as f32;
            let height = (p.y - r).max(0.0);
            let strength = SHADOW * (1.0 - height / 3.0).max(0.0);
            if strength <= 0.0 {
                continue;
            }
            let (rx, ry) = (r * 1.1, 0.08f32);
            let (c0, c1, r0, r1) = m.bbox((p.x - rx, p.x + rx), (-0.05 - ry, -0.05 + ry), w, h);
            for row in r0..r1 {
                let y = m.y(row);
                if y > 0.0 {
                    continue;
                }
                for col in c0..c1 {
                    let x = m.x(col);
                    let e = ((x - p.x) / rx).powi(2) + ((y + 0.05) / ry).powi(2);
                    if e < 1.0 {
                        let k = 1.0 - strength * (1.0 - e);
                        let o = (row * w + col) * 3;
                        for c in &mut self.buf[o..o + 3] {
                            *c *= k;
                        }
                    }
                }
            }
        }
    }

    fn object(&mut self, m: &Mapping, k: usize, p: &Pose) {
        let (w, h) = (self.width, self.height);
        let o = &self.spec.objects[k];
        let r = o.size.radius() as f32;
        let base = rgb(o.color.rgb());
        // Objects take a little of the scene's light (so they sit in it) but keep their
        // palette colour recognisable.
        let base = scale(base, 1.0 - (1.0 - self.light) * 0.2);
        let (sa, ca) = p.angle.sin_cos();
        let world: Vec<(f32, f32)> =
            self.verts[k].iter().map(|&(vx, vy)| (p.x + ca * vx - sa * vy, p.y + sa * vx + ca * vy)).collect();
        let ext = if world.is_empty() { r } else { r * 1.6 };
        let (c0, c1, r0, r1) = m.bbox((p.x - ext, p.x + ext), (p.y - ext, p.y + ext), w, h);
        let s = m.s;
        for row in r0..r1 {
            let y = m.y(row);
            for col in c0..c1 {
                let x = m.x(col);
                let (d, c) = if world.is_empty() {
                    let (dx, dy) = (x - p.x, y - p.y);
                    let d = (dx * dx + dy * dy).sqrt() - r;
                    // A band through the centre turns with the ball, so rolling shows.
                    let band = (dx * -sa + dy * ca).abs();
                    let shade = 1.0 - 0.08 * coverage((band - 0.14 * r) / s);
                    // Soft light from the upper left.
                    let lit = 1.0 + 0.03 * ((-dx + dy) / r).clamp(-1.0, 1.0);
                    (d, scale(base, shade * lit))
                } else {
                    (polygon_distance(&world, (x, y)), base)
                };
                let cov = coverage(d / s);
                if cov > 0.0 {
                    let o = (row * w + col) * 3;
                    let px = [self.buf[o], self.buf[o + 1], self.buf[o + 2]];
                    let c = [c[0].min(255.0), c[1].min(255.0), c[2].min(255.0)];
                    self.buf[o..o + 3].copy_from_slice(&mix(px, c, cov));
                }
            }
        }
    }

    fn occluders(&mut self, m: &Mapping) {
        let (w, h) = (self.width, self.height);
        let s = m.s;
        let light = self.light;
        for occ in &self.spec.occluders {
            let (hw, ht) = occ.extent();
            let (hw, ht, ox) = (hw as f32, ht as f32, occ.x as f32);
            let (c0, c1, r0, r1) = m.bbox((ox - hw - 0.1, ox + hw + 0.1), (0.0, ht + 0.2), w, h);
            for row in r0..r1 {
                let y = m.y(row);
                for col in c0..c1 {
                    let x = m.x(col);
                    let (d, c) = match occ.kind {
                        OccluderKind::Pillar => {
                            let d = rect_distance(x - ox, y - ht / 2.0, hw, ht / 2.0);
                            // Rounded shading across the column, and a capital.
                            let u = ((x - ox) / hw).abs();
                            let mut c = mix(rgb(colors::PILLAR.0), rgb(colors::PILLAR.1), u * u);
                            if y > ht - 0.2 {
                                c = rgb(colors::PILLAR.1);
                            }
                            (d, c)
                        }
                        OccluderKind::Wall => {
                            let d = rect_distance(x - ox, y - ht / 2.0, hw, ht / 2.0);
                            (d, brick(x, y, s))
                        }
                        OccluderKind::Tree => {
                            let trunk = rect_distance(x - ox, y - 1.1, 0.35, 1.1);
                            let canopy = ((x - ox).powi(2) + (y - 2.75).powi(2)).sqrt() - 1.05;
                            if canopy < trunk {
                                let n = value_noise(x * 6.0, y * 6.0, 7);
                                (canopy, mix(rgb(colors::LEAVES.0), rgb(colors::LEAVES.1), n))
                            } else {
                                (trunk, rgb(colors::TRUNK))
                            }
                        }
                    };
                    let cov = coverage(d / s);
                    if cov > 0.0 {
                        let o = (row * w + col) * 3;
                        let px = [self.buf[o], self.buf[o + 1], self.buf[o + 2]];
                        self.buf[o..o + 3].copy_from_slice(&mix(px, scale(c, light), cov));
                    }
                }
            }
        }
    }
}

/// Signed distance (negative inside) from a point to an axis-aligned box centred at the
/// origin with half sizes (hx, hy).
#[inline]
fn rect_distance(x: f32, y: f32, hx: f32, hy: f32) -> f32 {
    let (dx, dy) = (x.abs() - hx, y.abs() - hy);
    let out = (dx.max(0.0).powi(2) + dy.max(0.0).powi(2)).sqrt();
    out + dx.max(dy).min(0.0)
}

/// Signed distance to a convex polygon (either winding): the largest edge-plane distance,
/// exact inside and near edges, which is all anti-aliasing needs.
fn polygon_distance(poly: &[(f32, f32)], p: (f32, f32)) -> f32 {
    let n = poly.len();
    let area: f32 = (0..n)
        .map(|i| {
            let (a, b) = (poly[i], poly[(i + 1) % n]);
            a.0 * b.1 - b.0 * a.1
        })
        .sum();
    let sign = if area >= 0.0 { 1.0 } else { -1.0 };
    let mut d = f32::NEG_INFINITY;
    for i in 0..n {
        let (a, b) = (poly[i], poly[(i + 1) % n]);
        let (ex, ey) = (b.0 - a.0, b.1 - a.1);
        let len = (ex * ex + ey * ey).sqrt();
        // Outward normal of a counter-clockwise edge is (ey, -ex).
        let dist = sign * ((p.0 - a.0) * ey - (p.1 - a.1) * ex) / len;
        d = d.max(dist);
    }
    d
}

fn brick(x: f32, y: f32, s: f32) -> Rgb {
    let row = (y / 0.25).floor();
    let offset = if (row as i64) % 2 == 0 { 0.0 } else { 0.3 };
    let mortar = grid_line(y, 0.25, 0.015, s).max(grid_line(x + offset, 0.6, 0.015, s));
    let tone = hash2(((x + offset) / 0.6).floor() as i64, row as i64, 11);
    let b = scale(rgb(colors::BRICK.0), 0.92 + 0.14 * tone);
    mix(b, rgb(colors::BRICK.1), mortar)
}

#[allow(clippy::too_many_arguments)]
fn sky(bg: Background, x: f32, y: f32, v: f32, s: f32, col: usize, row: usize, w: usize, h: usize) -> Rgb {
    let v = v.clamp(0.0, 1.0);
    let hills = |c: Rgb, top: Rgb| {
        // Distant hills move at half the camera's speed (parallax).
        let hx = x * 0.5;
        let hh = 0.55 + 0.3 * (0.7 * hx).sin() + 0.18 * (1.9 * hx + 1.0).sin();
        let cov = coverage((y - hh) / s);
        mix(top, c, cov)
    };
    match bg {
        Background::Day => {
            let (t, b, hill) = colors::DAY;
            hills(rgb(hill), mix(rgb(t), rgb(b), v * v))
        }
        Background::Sunset => {
            let (t, b, hill) = colors::SUNSET;
            let mut c = mix(rgb(t), rgb(b), v.powf(1.5));
            // The sun sits low, fixed on screen (it is far away).
            let (sx, sy) = (0.72 * w as f32, 0.58 * h as f32);
            let r = 0.06 * w.min(h) as f32;
            let d = ((col as f32 + 0.5 - sx).powi(2) + (row as f32 + 0.5 - sy).powi(2)).sqrt() - r;
            c = mix(c, rgb(colors::SUN), coverage(d));
            hills(rgb(hill), c)
        }
        Background::Night => {
            let (t, b, hill) = colors::NIGHT;
            let mut c = mix(rgb(t), rgb(b), v * v);
            // Stars, one in some cells of a sky lattice.
            // (x at half the camera's speed: stars are far.)
            let (gx, gy) = ((x * 0.5 + 100.0) / 0.12, y / 0.12);
            let (cx, cy) = (gx.floor() as i64, gy.floor() as i64);
            let hsh = hash2(cx, cy, 3);
            if hsh < 0.025 {
                let (px, py) = (0.2 + 0.6 * hash2(cx, cy, 4), 0.2 + 0.6 * hash2(cx, cy, 5));
                let d = (((gx - cx as f32 - px) * 0.24).powi(2) + ((gy - cy as f32 - py) * 0.12).powi(2)).sqrt();
                let bright = 0.5 + 0.5 * hash2(cx, cy, 6);
                let radius = (0.6 * s).max(0.012);
                c = mix(c, rgb(colors::STAR), bright * coverage((d - radius) / s));
            }
            hills(rgb(hill), c)
        }
        Background::Indoor => {
            let (a, b) = colors::WALLPAPER;
            let stripe = ((x / 0.35).rem_euclid(2.0) - 1.0).abs();
            mix(rgb(a), rgb(b), coverage((stripe - 0.5) * 0.35 / s))
        }
    }
}

fn floor(kind: Floor, x: f32, d: f32, s: f32) -> Rgb {
    match kind {
        Floor::Grass => {
            let n = value_noise(x * 9.0, d * 14.0, 1) * 0.6 + value_noise(x * 23.0, d * 31.0, 2) * 0.4;
            mix(rgb(colors::GRASS.0), rgb(colors::GRASS.1), n)
        }
        Floor::Wood => {
            let board = (d / 0.22).floor();
            let offset = hash2(board as i64, 0, 8) * 1.2;
            let tone = hash2(((x + offset) / 1.2).floor() as i64, board as i64, 9);
            let grain = 0.5 + 0.5 * (x * 9.0 + 3.0 * value_noise(x * 2.0, board, 10)).sin();
            let c = scale(rgb(colors::WOOD.0), 0.9 + 0.12 * tone + 0.05 * grain);
            let seam = grid_line(d, 0.22, 0.008, s).max(grid_line(x + offset, 1.2, 0.01, s));
            mix(c, rgb(colors::WOOD.1), seam)
        }
        Floor::Stone => {
            let row = (d / 0.3).floor();
            let offset = if (row as i64) % 2 == 0 { 0.0 } else { 0.25 };
            let tone = hash2(((x + offset) / 0.5).floor() as i64, row as i64, 12);
            let c = scale(rgb(colors::STONE.0), 0.92 + 0.12 * tone);
            let grout = grid_line(d, 0.3, 0.014, s).max(grid_line(x + offset, 0.5, 0.014, s));
            mix(c, rgb(colors::STONE.1), grout)
        }
        Floor::Checker => {
            // The checker's value at the pixel, box-filtered across the square edges.
            let fx = ((x / 0.5).rem_euclid(2.0) - 1.0).abs();
            let fy = ((d / 0.5).rem_euclid(2.0) - 1.0).abs();
            let ax = coverage((fx - 0.5) * 0.5 / s);
            let ay = coverage((fy - 0.5) * 0.5 / s);
            let light = ax * ay + (1.0 - ax) * (1.0 - ay);
            mix(rgb(colors::CHECKER.1), rgb(colors::CHECKER.0), light)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::segment::{palette_shades, MAX_DISTANCE};
    use crate::spec::Lighting;

    /// The evaluator finds objects by colour: no scene colour, at any lighting and in a
    /// shadow, may come within reach of a palette colour's shades.
    #[test]
    fn scene_colors_stay_clear_of_the_palette() {
        let mut worst = (f32::MAX, [0u8; 3], [0f32; 3]);
        for (c, shadowed) in scene_colors() {
            for l in Lighting::ALL {
                for shade in if shadowed { vec![1.0, 1.0 - SHADOW] } else { vec![1.0] } {
                    let k = l.level() * shade;
                    let p = [c[0] as f32 * k, c[1] as f32 * k, c[2] as f32 * k];
                    for (_, q) in palette_shades() {
                        let d = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt();
                        if d < worst.0 {
                            worst = (d, c, q);
                        }
                    }
                }
            }
        }
        assert!(
            worst.0 >= MAX_DISTANCE + 6.0,
            "scene colour {:?} comes {:.1} from palette shade {:?}",
            worst.1,
            worst.0,
            worst.2
        );
    }
}
