//! The invisible watermark: a 64-bit message (a 16-bit tessera mark, a 32-bit generation
//! id and a CRC-16) hidden in the luma of every frame, found again after re-encoding,
//! resizing, cropping and cutting.
//!
//! Design (a self-synchronising, periodically tiled spread-spectrum mark, after Kutter
//! 1998, "Watermarking resisting to translation, rotation, and scaling", and Cox et al.
//! 1997 for the spread spectrum):
//! - A tile of 16 x 16 cells carries 65 orthogonal codes: 64 message bits and a sync code,
//!   rows of a 256 x 256 Walsh-Hadamard matrix, each scrambled by one fixed pseudo-random
//!   sign sequence so the sum looks like noise. Orthogonality means the bits do not
//!   interfere with each other however many frames are added up.
//! - Cells are `cell` pixels wide (1/32 of the frame's short side, so the mark is
//!   coarse enough to survive H.264 and downscaling); the tile repeats over the whole
//!   frame, and every frame carries the same tile, so any crop, any cut and any frame
//!   keep whole periods of it. The cell values are interpolated bilinearly into a smooth
//!   field added to R, G and B alike (a luma change), at an amplitude that keeps the
//!   PSNR above 40 dB.
//! - Marking is informed where the picture needs it (Miller, Cox and Bloom 2004): on
//!   strongly textured frames, such as an undertrained model's, the embedder measures how
//!   the picture itself correlates with each code and shares the field's fixed energy so
//!   every bit keeps the same margin, and where it pulls hardest uses cells half as
//!   large (1/64 of the short side).
//!   Smooth pictures keep the blind mark at the coarse cells, which survives a crop,
//!   downscale and recompression together better. See `Embedder`.
//! - Detection removes the picture's low frequencies (frame minus a box blur), folds the
//!   rest onto one tile period for each candidate cell size (a geometric grid, since a
//!   resize changes it) and phase, adds the folds of sampled frames, finds the cyclic
//!   shift where the sync code correlates best (a crop shifts the tiling), and reads each
//!   bit as the sign of its code's correlation. A result counts only if the mark and the
//!   CRC both check, so pictures without a mark are almost never taken for marked ones
//!   (one false CRC-and-mark match in 2^32 per candidate).

use crate::Frame;

const N: usize = 16; // cells per tile side
const CELLS: usize = N * N; // 256 = Hadamard order
/// The 16-bit mark of tessera ("7E55" ~ "tess").
pub const MARK: u16 = 0x7E55;
/// The mark's sign flips every HALF frames (+ for frames 0..12, - for 12..24, ...):
/// summing frames with the same pattern then cancels whatever in the picture stays still
/// (backgrounds fold into the tile as strongly as the mark does), while the mark adds up.
pub const HALF: usize = 12;

/// The sign of frame `t`'s mark.
pub fn frame_sign(t: usize) -> f32 {
    if (t / HALF).is_multiple_of(2) {
        1.0
    } else {
        -1.0
    }
}

/// The sync code's weight against one bit's: half the energy goes to sync, so its peak
/// stands clear of the chance correlations at the 255 wrong shifts.
const SYNC_WEIGHT: f32 = 8.0;
/// Luma amplitude of the field in 8-bit levels (peak of the smooth field is about 3x).
const AMPLITUDE: f32 = 2.4;

/// What the watermark carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    /// An id of the generation (for example the low 32 bits of a hash of its job).
    pub id: u32,
}

/// What detection found.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub detected: bool,
    /// The payload when detected.
    pub payload: Option<Payload>,
    /// Mean |correlation| of the message bits relative to the noise in the fold (a
    /// z-score-like strength: about 1 or less for unmarked video).
    pub confidence: f64,
    /// The cell size (pixels) and the bits as read, for diagnostics.
    pub cell: f64,
    pub bits: u64,
}

/// CRC-16/CCITT-FALSE of the mark and id.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

fn message(p: Payload) -> u64 {
    let mut bytes = MARK.to_be_bytes().to_vec();
    bytes.extend(p.id.to_be_bytes());
    let crc = crc16(&bytes);
    ((MARK as u64) << 48) | ((p.id as u64) << 16) | crc as u64
}

fn parse(bits: u64) -> Option<Payload> {
    let mark = (bits >> 48) as u16;
    let id = (bits >> 16) as u32;
    let crc = bits as u16;
    let mut bytes = mark.to_be_bytes().to_vec();
    bytes.extend(id.to_be_bytes());
    (mark == MARK && crc16(&bytes) == crc).then_some(Payload { id })
}

/// Row `k` of the 256 x 256 Sylvester Hadamard matrix at column `i`: (-1)^popcount(k & i).
fn hadamard(k: usize, i: usize) -> f32 {
    if (k & i).count_ones().is_multiple_of(2) {
        1.0
    } else {
        -1.0
    }
}

/// The fixed scrambling signs (a xorshift stream from a constant seed).
fn scramble() -> [f32; CELLS] {
    let mut s: u64 = 0x7E55_E2A0_C0DE_F00D;
    let mut out = [0f32; CELLS];
    for v in out.iter_mut() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        *v = if s & 1 == 0 { 1.0 } else { -1.0 };
    }
    out
}

/// The codes: sync is Hadamard row 1, bit b row b + 2 (row 0, the constant, is skipped: it
/// would be a DC offset), all scrambled. code(k)[cell].
fn code(k: usize, cell: usize, pn: &[f32; CELLS]) -> f32 {
    hadamard(k + 1, cell) * pn[cell]
}

/// The message bits' signs (+1 / -1), bit b first at index 0.
fn bit_signs(bits: u64) -> [f32; 64] {
    std::array::from_fn(|b| if (bits >> (63 - b)) & 1 == 1 { 1.0 } else { -1.0 })
}

/// The tile's cell values for code weights `w` (sync first) and the message's bit signs:
/// weighted sync + signed bit codes, scaled so the blind weights (sync SYNC_WEIGHT, bits
/// 1) give unit variance.
fn weighted_tile(w: &[f32; 65], signs: &[f32; 64], pn: &[f32; CELLS]) -> [f32; CELLS] {
    std::array::from_fn(|c| {
        let mut v = w[0] * code(0, c, pn);
        for b in 0..64 {
            v += w[b + 1] * signs[b] * code(b + 1, c, pn);
        }
        v / BUDGET.sqrt()
    })
}

/// Root mean square of a field.
fn rms(f: &[f32]) -> f32 {
    (f.iter().map(|v| v * v).sum::<f32>() / f.len().max(1) as f32).sqrt()
}

/// The cell size for a frame: 1/32 of the short side (two tiles span it), at least 2
/// pixels. (1/16 and 1/24 were tried: coarser cells meet more of the picture's own low
/// frequencies and read worse before and after H.264.)
pub fn cell_size(width: usize, height: usize) -> f64 {
    (width.min(height) as f64 / 32.0).max(2.0)
}

/// The fine cell size, for pictures textured at the coarse cell's scale: 1/64 of the
/// short side, at least 2 pixels (the same as the coarse one below 128 pixels). Finer cells
/// average more independent pieces of such texture, at the cost of robustness to
/// downscaling (a fine mark halved falls under the detector's smallest cell).
pub fn fine_cell_size(width: usize, height: usize) -> f64 {
    (width.min(height) as f64 / 64.0).max(2.0)
}

/// A picture whose pull on the codes at the coarse cell size (its load, `Embedder::load`)
/// is more than this many times what the blind mark gives each code gets the fine cell
/// size. World clips load 0.2 to 0.7 at 256x144; the textured frames of an undertrained
/// model 1.2 to 4.8 at 128x128 (MODEL_CARD, "v6 in full").
const LOAD_FOR_FINE: f64 = 1.0;
/// Above this load the mark is informed. Below it, the blind mark: informed marking
/// answers the picture as the embedder saw it, and a crop, downscale and strong
/// recompression together change what the picture pulls, so on world clips (which carry a
/// blind mark well) it read back after all four of them in 6 of 20 clips against the blind
/// mark's 14 (BENCHMARKS.md).
const LOAD_FOR_INFORMED: f64 = 0.6;

/// The additive field (W x H) for a tile at cell size `cell`: the cell values interpolated
/// bilinearly between cell centres, cyclically.
fn field(t: &[f32; CELLS], width: usize, height: usize, cell: f64) -> Vec<f32> {
    let mut out = vec![0f32; width * height];
    for y in 0..height {
        let fy = (y as f64 + 0.5) / cell - 0.5;
        let y0 = fy.floor();
        let ty = (fy - y0) as f32;
        let (r0, r1) = ((y0 as i64).rem_euclid(N as i64) as usize, (y0 as i64 + 1).rem_euclid(N as i64) as usize);
        for x in 0..width {
            let fx = (x as f64 + 0.5) / cell - 0.5;
            let x0 = fx.floor();
            let tx = (fx - x0) as f32;
            let (c0, c1) = ((x0 as i64).rem_euclid(N as i64) as usize, (x0 as i64 + 1).rem_euclid(N as i64) as usize);
            let top = t[r0 * N + c0] * (1.0 - tx) + t[r0 * N + c1] * tx;
            let bot = t[r1 * N + c0] * (1.0 - tx) + t[r1 * N + c1] * tx;
            out[y * width + x] = top * (1.0 - ty) + bot * ty;
        }
    }
    out
}

/// A marker for frames of one size.
///
/// Marking is informed (Miller, Cox and Bloom 2004, "Informed embedding: exploiting image
/// and detector information during watermark insertion"): the embedder runs the
/// detector's own high-pass and fold on each frame, sees how the picture alone already
/// correlates with each code, and shares the field's fixed energy among the codes so that
/// every bit ends with the same margin: codes the picture already pushes the right way get
/// little, codes it pushes the wrong way get more. A blind mark of the same energy is lost
/// under strong texture (a model's noisy or blocky frames correlate with the codes about
/// as strongly as the mark does: MODEL_CARD, "v6 in full").
///
/// The cell size is chosen on the first frame: the coarse one (robust to downscaling and
/// strong compression) unless the picture pulls on the codes harder than the mark can
/// answer there, then the fine one. The detector tries both. Each frame is marked on its
/// own, so streaming output (a minute of video) needs no look-ahead.
pub struct Embedder {
    width: usize,
    height: usize,
    cell: f64,
    radius: usize,
    /// The message bits' signs (+1 / -1), code k + 1 for bit k.
    signs: [f32; 64],
    pn: [f32; CELLS],
    /// The blind field (every bit at weight 1, sync at SYNC_WEIGHT), at AMPLITUDE.
    blind: Vec<f32>,
    /// Pixels per unit of tile value that put the blind field at AMPLITUDE.
    scale: f32,
    /// Whether frames are marked informed (else with the blind field).
    informed: bool,
    /// Whether informed marking measures frames through tessera's H.264 (videos) or as
    /// they are (lossless stills).
    codec: bool,
}

/// Each code's floor, as a fraction of its blind weight: some of the mark stays blind, for
/// when a crop or resize folds the picture differently from how the embedder saw it.
const FLOOR: f32 = 0.35;
/// Allocation passes per frame: each after the first answers what the one before left,
/// measured on the marked frame as tessera's H.264 gives it back (the clipping in the
/// detector's high-pass makes the codes' responses interact, and the encoder smooths
/// the picture's texture and the fine mark alike). Measuring through the codec raised
/// the read-back of v6's 64x64 clips after H.264 from 6 to 8 of 10 payloads; more
/// passes did not help reliably.
const PASSES: usize = 3;
/// The blind field's energy in code weights (sync SYNC_WEIGHT, bits 1): every allocation
/// spends the same.
const BUDGET: f32 = SYNC_WEIGHT * SYNC_WEIGHT + 64.0;

/// The blind weight of code k (sync first).
fn blind_weight(k: usize) -> f32 {
    if k == 0 {
        SYNC_WEIGHT
    } else {
        1.0
    }
}

impl Embedder {
    /// A marker for the frames of a video like `first` (its size, and its texture for the
    /// cell size), which will be H.264-encoded.
    pub fn new(first: &Frame, payload: Payload) -> Self {
        Self::choose(first, payload, LOAD_FOR_INFORMED, true)
    }

    /// A marker for a still saved losslessly (PNG): always informed (a still has no frames
    /// to add up and no cut to survive), and measured without the codec.
    pub fn still(first: &Frame, payload: Payload) -> Self {
        Self::choose(first, payload, 0.0, false)
    }

    fn choose(first: &Frame, payload: Payload, load_for_informed: f64, codec: bool) -> Self {
        let (w, h) = (first.width, first.height);
        let coarse = Self::with_cell(w, h, payload, cell_size(w, h));
        let fine = fine_cell_size(w, h);
        let load = coarse.load(first);
        if fine < coarse.cell && load > LOAD_FOR_FINE {
            Self { informed: true, codec, ..Self::with_cell(w, h, payload, fine) }
        } else {
            Self { informed: load > load_for_informed, codec, ..coarse }
        }
    }

    /// A blind marker at a given cell size (in pixels).
    pub fn with_cell(width: usize, height: usize, payload: Payload, cell: f64) -> Self {
        let signs = bit_signs(message(payload));
        let pn = scramble();
        let raw = field(&weighted_tile(&std::array::from_fn(blind_weight), &signs, &pn), width, height, cell);
        let scale = AMPLITUDE / rms(&raw).max(1e-6);
        let blind = raw.iter().map(|v| v * scale).collect();
        Embedder { width, height, cell, radius: hp_radius(cell), signs, pn, blind, scale, informed: false, codec: true }
    }

    /// The cell size chosen, in pixels.
    pub fn cell(&self) -> f64 {
        self.cell
    }

    /// Whether the marker answers each frame's picture (else it adds the blind field).
    pub fn informed(&self) -> bool {
        self.informed
    }

    /// How hard a picture pulls on the codes, in units of what the blind mark gives each:
    /// the root mean square of its responses over the median gain of the bits. Above about
    /// 1, a still frame cannot be marked at this cell size within the energy.
    pub fn load(&self, frame: &Frame) -> f64 {
        let (host, gain) = self.pull_and_gain(frame, 1.0);
        (host[1..].iter().map(|v| v * v).sum::<f64>() / 64.0).sqrt() / gain
    }

    /// The smallest margin the blind mark would leave on one frame, in units of a code's
    /// own response: (gain b_k + pull_k) / (gain b_k), over all 65 codes. Above 0 every bit
    /// reads right from this frame alone.
    pub fn blind_margin(&self, frame: &Frame) -> f64 {
        let (host, gain) = self.pull_and_gain(frame, 1.0);
        (0..65).map(|k| 1.0 + self.want(k) * host[k] / (gain * blind_weight(k) as f64)).fold(f64::MAX, f64::min)
    }

    /// The detector's correlation of a frame (times `sign`) with each of the 65 codes (sync
    /// first), at the embedder's own cell size and phase: what `detect` reads from an
    /// unmoved frame, before normalising.
    fn responses(&self, frame: &Frame, sign: f32) -> [f64; 65] {
        let hp = highpass(frame, self.radius);
        let mut sub = vec![0f64; SUBN * SUBN];
        fold(&hp, self.width, self.height, self.cell, &mut sub);
        let t = at_phase(&sub, 0, 0);
        let mean = t.iter().sum::<f64>() / CELLS as f64;
        std::array::from_fn(|k| {
            (0..CELLS).map(|c| (t[c] - mean) * code(k, c, &self.pn) as f64).sum::<f64>() * sign as f64
        })
    }

    /// The direction the message wants code k's response in.
    fn want(&self, k: usize) -> f64 {
        if k == 0 {
            1.0
        } else {
            self.signs[k - 1] as f64
        }
    }

    /// The picture's own responses (times `sign`), and the blind field's gain: how far the
    /// bits' responses move, in the wanted direction, per unit of weight (their median: the
    /// clipped high-pass makes it less than linear, and alike for all codes).
    fn pull_and_gain(&self, frame: &Frame, sign: f32) -> ([f64; 65], f64) {
        let host = self.responses(frame, sign);
        let got = self.responses(&with_field(frame, &self.blind, sign), sign);
        let gains: [f64; 65] = std::array::from_fn(|k| self.want(k) * (got[k] - host[k]) / blind_weight(k) as f64);
        (host, median_bit(&gains))
    }

    /// The field for code weights `w` (sync first): linear in them, at the blind field's
    /// scale (the blind weights give the blind field), and never above AMPLITUDE (root
    /// mean square), so the PSNR stays where the blind mark keeps it.
    fn weighted_field(&self, w: &[f32; 65]) -> Vec<f32> {
        let t = weighted_tile(w, &self.signs, &self.pn);
        let f: Vec<f32> = field(&t, self.width, self.height, self.cell).iter().map(|v| v * self.scale).collect();
        let r = rms(&f);
        if r > AMPLITUDE {
            f.iter().map(|v| v * AMPLITUDE / r).collect()
        } else {
            f
        }
    }

    /// Adds the mark to frame number `index` of a video (a still is frame 0), if it has
    /// the embedder's size.
    pub fn mark(&self, frame: &mut Frame, index: usize) {
        if frame.width != self.width || frame.height != self.height {
            return;
        }
        let sign = frame_sign(index);
        if !self.informed {
            add_field(frame, &self.blind, sign);
            return;
        }
        // The picture's own pull on each code, in the direction the message wants, and the
        // field's gain per unit of weight.
        let (host, gain) = self.pull_and_gain(frame, sign);
        let mut pull: [f64; 65] = std::array::from_fn(|k| self.want(k) * host[k]);
        for _ in 1..PASSES {
            // What each code's response came to beyond its own weight's linear share,
            // after the encoder: the picture's pull plus the clipping, the codec and the
            // other codes' cross-talk, which the next allocation then answers too.
            let w = allocate(&pull, gain);
            let marked = with_field(frame, &self.weighted_field(&w), sign);
            let seen = if self.codec { through_codec(&marked).unwrap_or(marked) } else { marked };
            let got = self.responses(&seen, sign);
            pull = std::array::from_fn(|k| self.want(k) * got[k] - gain * w[k] as f64);
        }
        let field = self.weighted_field(&allocate(&pull, gain));
        add_field(frame, &field, sign);
    }
}

/// Code weights (sync first) that give every code the same margin m (sync SYNC_WEIGHT
/// times a bit's) over its pull, within the blind field's energy: w_k = max(floor,
/// (m b_k - pull_k) / gain), m as large as the energy allows. When even m = 0 does not fit,
/// part way from the blind weights towards the m = 0 ones, as far as the energy goes.
fn allocate(pull: &[f64; 65], gain: f64) -> [f32; 65] {
    let weights = |m: f64| -> [f32; 65] {
        std::array::from_fn(|k| {
            let need = (m * blind_weight(k) as f64 - pull[k]) / gain;
            need.max((FLOOR * blind_weight(k)) as f64) as f32
        })
    };
    let energy = |w: &[f32; 65]| w.iter().map(|v| v * v).sum::<f32>();
    let zero = weights(0.0);
    if energy(&zero) > BUDGET {
        let mix = |a: f32| -> [f32; 65] { std::array::from_fn(|k| blind_weight(k) + a * (zero[k] - blind_weight(k))) };
        let (mut lo, mut hi) = (0f32, 1f32);
        for _ in 0..30 {
            let mid = 0.5 * (lo + hi);
            if energy(&mix(mid)) <= BUDGET {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        return mix(lo);
    }
    let (mut lo, mut hi) = (0.0, gain * 64.0);
    while energy(&weights(hi)) < BUDGET {
        hi *= 2.0;
    }
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if energy(&weights(mid)) < BUDGET {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    weights(lo)
}

/// The median of the 64 bits' values (sync, entry 0, left out), at least a tiny positive.
fn median_bit(v: &[f64; 65]) -> f64 {
    let mut g = v[1..].to_vec();
    g.sort_by(f64::total_cmp);
    g[32].max(1e-9)
}

/// The frame as tessera's own MP4 gives it back (an intra frame at the default QP).
fn through_codec(frame: &Frame) -> Option<Frame> {
    let stream = crate::h264::encode(std::slice::from_ref(frame), 12.0, crate::Quality::High).ok()?;
    crate::h264::decode(&stream).ok()?.into_iter().next()
}

/// Adds `field` times `sign` to R, G and B, rounded and clamped.
fn add_field(frame: &mut Frame, field: &[f32], sign: f32) {
    for (px, &d) in frame.data.chunks_exact_mut(3).zip(field) {
        for v in px.iter_mut() {
            *v = (*v as f32 + d * sign).round().clamp(0.0, 255.0) as u8;
        }
    }
}

/// A copy of the frame with `field` added (for measuring; `add_field` marks in place).
fn with_field(frame: &Frame, field: &[f32], sign: f32) -> Frame {
    let mut out = frame.clone();
    add_field(&mut out, field, sign);
    out
}

/// Marks every frame with the payload (one frame: as a lossless still).
pub fn embed(frames: &mut [Frame], payload: Payload) {
    if let Some(f) = frames.first() {
        let e = if frames.len() == 1 { Embedder::still(f, payload) } else { Embedder::new(f, payload) };
        for (i, f) in frames.iter_mut().enumerate() {
            e.mark(f, i);
        }
    }
}

/// Luma minus its box blur (radius r): the picture's low frequencies removed.
fn highpass(frame: &Frame, r: usize) -> Vec<f32> {
    let (w, h) = (frame.width, frame.height);
    let y: Vec<f32> =
        frame.data.chunks_exact(3).map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32).collect();
    // Separable box blur with clamped edges, via prefix sums.
    let blur1 = |src: &[f32], len: usize, stride: usize, count: usize, step: usize| -> Vec<f32> {
        let mut out = vec![0f32; src.len()];
        let mut prefix = vec![0f32; len + 1];
        for line in 0..count {
            let base = line * step;
            for i in 0..len {
                prefix[i + 1] = prefix[i] + src[base + i * stride];
            }
            for i in 0..len {
                let a = i.saturating_sub(r);
                let b = (i + r + 1).min(len);
                out[base + i * stride] = (prefix[b] - prefix[a]) / (b - a) as f32;
            }
        }
        out
    };
    let bx = blur1(&y, w, 1, h, w);
    let b = blur1(&bx, h, w, w, 1);
    // Clipped: edges and texture of the picture are far stronger than the mark; clipping
    // keeps a few strong edges from outvoting thousands of weak samples.
    y.iter().zip(&b).map(|(a, b)| (a - b).clamp(-CLIP, CLIP)).collect()
}

/// High-pass values beyond this (8-bit levels) are clipped before folding.
const CLIP: f32 = 2.0;

/// Candidate cell sizes: the frame's own (an unscaled video), then 1.5 pixels to a tenth
/// of the short side, 1% apart.
fn candidate_cells(width: usize, height: usize) -> Vec<f64> {
    // Up to 10 cells in the short side (a crop keeps the cell size and shrinks the frame;
    // a partial tile still folds).
    let max = (width.min(height) as f64 / 10.0).min(96.0);
    let mut out = vec![cell_size(width, height)];
    if fine_cell_size(width, height) < out[0] {
        out.push(fine_cell_size(width, height));
    }
    let mut c = 1.5;
    while c <= max {
        out.push(c);
        c *= 1.01;
    }
    out
}

/// Sub-bins per cell and axis: phases are read in quarter cells.
const SUB: usize = 4;
const SUBN: usize = N * SUB;

/// Folds a high-passed frame onto a tile at cell size `cell`, in quarter-cell sub-bins:
/// sub-bin s of an axis holds the pixels with floor(4 (x + 0.5) / cell) = s (mod 64).
/// Cell k at phase q (quarters) is then sub-bins with floor((s + q) / 4) = k, exactly the
/// pixels with floor((x + 0.5) / cell + q / 4) = k: one pass serves all 16 phases.
fn fold(hp: &[f32], width: usize, height: usize, cell: f64, acc: &mut [f64]) {
    let inv = SUB as f64 / cell;
    let cols: Vec<usize> =
        (0..width).map(|x| (((x as f64 + 0.5) * inv).floor() as i64).rem_euclid(SUBN as i64) as usize).collect();
    for y in 0..height {
        let r = (((y as f64 + 0.5) * inv).floor() as i64).rem_euclid(SUBN as i64) as usize * SUBN;
        let row = &hp[y * width..(y + 1) * width];
        for (v, &c) in row.iter().zip(&cols) {
            acc[r + c] += *v as f64;
        }
    }
}

/// The cell tile at phase (qx, qy) (quarters of a cell) from the sub-bins.
fn at_phase(sub: &[f64], qx: usize, qy: usize) -> [f64; CELLS] {
    let mut out = [0f64; CELLS];
    for sy in 0..SUBN {
        let r = ((sy + qy) / SUB) % N;
        for sx in 0..SUBN {
            out[r * N + ((sx + qx) / SUB) % N] += sub[sy * SUBN + sx];
        }
    }
    out
}

/// Reads the tile's bits at the best cyclic shift: (sync score, bit correlations).
fn read_tile(acc: &[f64; CELLS], pn: &[f32; CELLS]) -> (f64, [f64; 64]) {
    let mean = acc.iter().sum::<f64>() / CELLS as f64;
    let t: Vec<f64> = acc.iter().map(|v| v - mean).collect();
    let sd = (t.iter().map(|v| v * v).sum::<f64>() / CELLS as f64).sqrt().max(1e-12);
    let mut best = (f64::MIN, 0, 0);
    for dy in 0..N {
        for dx in 0..N {
            let mut s = 0.0;
            for (c, code_sign) in (0..CELLS).map(|c| (c, code(0, c, pn) as f64)) {
                let (r, k) = (c / N, c % N);
                s += t[((r + dy) % N) * N + (k + dx) % N] * code_sign;
            }
            if s > best.0 {
                best = (s, dx, dy);
            }
        }
    }
    let (_, dx, dy) = best;
    let shifted: Vec<f64> = (0..CELLS).map(|c| t[((c / N + dy) % N) * N + (c % N + dx) % N]).collect();
    let norm = sd * (CELLS as f64).sqrt();
    let mut bits = [0f64; 64];
    for (b, v) in bits.iter_mut().enumerate() {
        *v = (0..CELLS).map(|c| shifted[c] * code(b + 1, c, pn) as f64).sum::<f64>() / norm;
    }
    (best.0 / norm, bits)
}

/// The bits as read (signs of the correlations), corrected when the CRC allows: Chase
/// decoding (Chase 1972) flips up to 3 of the 10 least reliable bits and keeps the first
/// word whose mark and CRC check. 176 words per candidate raise the chance of a false
/// match to about 176 x 2^-32 per candidate, still about 1 in 10^5 per video.
fn decode(corr: &[f64; 64]) -> (u64, Option<Payload>) {
    let bits = corr.iter().fold(0u64, |a, &v| (a << 1) | (v > 0.0) as u64);
    if let Some(p) = parse(bits) {
        return (bits, Some(p));
    }
    let mut order: Vec<usize> = (0..64).collect();
    order.sort_by(|&a, &b| corr[a].abs().total_cmp(&corr[b].abs()));
    let weak: Vec<u64> = order[..10].iter().map(|&i| 1u64 << (63 - i)).collect();
    for a in 0..10 {
        if let Some(p) = parse(bits ^ weak[a]) {
            return (bits ^ weak[a], Some(p));
        }
    }
    for a in 0..10 {
        for b in a + 1..10 {
            if let Some(p) = parse(bits ^ weak[a] ^ weak[b]) {
                return (bits ^ weak[a] ^ weak[b], Some(p));
            }
        }
    }
    for a in 0..10 {
        for b in a + 1..10 {
            for c in b + 1..10 {
                let w = bits ^ weak[a] ^ weak[b] ^ weak[c];
                if let Some(p) = parse(w) {
                    return (w, Some(p));
                }
            }
        }
    }
    (bits, None)
}

/// Looks for the mark in frames (all of one size; at most `max_frames` of them, evenly
/// spaced, are read).
pub fn detect(frames: &[Frame], max_frames: usize) -> Detection {
    let none = Detection { detected: false, payload: None, confidence: 0.0, cell: 0.0, bits: 0 };
    let Some(first) = frames.first() else { return none };
    let (w, h) = (first.width, first.height);
    // Consecutive frames, a whole number of sign periods when there are enough (so the
    // still parts of the picture cancel).
    let period = 2 * HALF;
    let n = frames.len().min(max_frames.max(1));
    let n = if n >= period { n / period * period } else { n };
    // High-passed at the radius of the frame's coarse cell size, and at the fine one's
    // for candidates nearer the fine size (a mark the embedder put at fine cells).
    let (coarse_cell, fine_cell) = (cell_size(w, h), fine_cell_size(w, h));
    let high = |r: usize| -> Vec<Vec<f32>> {
        frames[..n].iter().filter(|f| f.width == w && f.height == h).map(|f| highpass(f, r)).collect()
    };
    let hps = high(hp_radius(coarse_cell));
    let fine_hps = (hp_radius(fine_cell) != hp_radius(coarse_cell)).then(|| high(hp_radius(fine_cell)));
    let split = (coarse_cell * fine_cell).sqrt();
    let hps_for = |c: f64| if c < split { fine_hps.as_ref().unwrap_or(&hps) } else { &hps };
    let pn = scramble();
    // Every candidate cell size at every quarter-cell phase; then, around the five
    // sizes whose sync correlates best, a grid 5x finer (a 1% step still leaves the tiling
    // up to a quarter of a cell off across a wide frame).
    let coarse = candidate_cells(w, h);
    let mut results: Vec<(f64, Detection)> = coarse.iter().map(|&c| try_cell(hps_for(c), w, h, c, &pn)).collect();
    let mut order: Vec<usize> = (0..results.len()).collect();
    order.sort_by(|&a, &b| results[b].0.total_cmp(&results[a].0));
    for &i in order.iter().take(5) {
        let c = coarse[i];
        for k in -2..=2 {
            if k != 0 {
                results.push(try_cell(hps_for(c), w, h, c * 1.002f64.powi(k), &pn));
            }
        }
    }
    let mut best = none;
    for (_, d) in results {
        let better = match (d.detected, best.detected) {
            (true, false) => true,
            (false, true) => false,
            _ => d.confidence > best.confidence,
        };
        if better {
            best = d;
        }
    }
    best
}

/// Folds the frames at one cell size and reads the 16 phases: (best sync score, the best
/// reading: a valid one first, else the strongest).
fn try_cell(hps: &[Vec<f32>], w: usize, h: usize, cell: f64, pn: &[f32; CELLS]) -> (f64, Detection) {
    // Per temporal offset tau (0..HALF; offsets HALF..2 HALF are the same with the sign
    // flipped, read below as the other polarity), the folds weighted by the sign pattern.
    let mut accs = vec![vec![0f64; SUBN * SUBN]; HALF];
    let mut sub = vec![0f64; SUBN * SUBN];
    for (t, hp) in hps.iter().enumerate() {
        sub.iter_mut().for_each(|v| *v = 0.0);
        fold(hp, w, h, cell, &mut sub);
        for (tau, acc) in accs.iter_mut().enumerate() {
            let s = frame_sign(t + tau) as f64;
            acc.iter_mut().zip(&sub).for_each(|(a, v)| *a += s * v);
        }
    }
    // The offset where the mark adds up is where the fold has the most energy.
    let energy = |a: &Vec<f64>| a.iter().map(|v| v * v).sum::<f64>();
    let acc = accs.iter().max_by(|a, b| energy(a).total_cmp(&energy(b))).expect("HALF > 0");
    let mut best_sync = f64::MIN;
    let mut best = Detection { detected: false, payload: None, confidence: f64::MIN, cell, bits: 0 };
    for qy in 0..SUB {
        for qx in 0..SUB {
            let tile = at_phase(acc, qx, qy);
            for polarity in [1.0, -1.0] {
                let t: [f64; CELLS] = std::array::from_fn(|i| tile[i] * polarity);
                let (sync, corr) = read_tile(&t, pn);
                best_sync = best_sync.max(sync);
                let strength = corr.iter().map(|v| v.abs()).sum::<f64>() / 64.0;
                let (bits, payload) = decode(&corr);
                let better = match (payload.is_some(), best.detected) {
                    (true, false) => true,
                    (false, true) => false,
                    _ => strength > best.confidence,
                };
                if better {
                    best = Detection { detected: payload.is_some(), payload, confidence: strength, cell, bits };
                }
            }
        }
    }
    (best_sync, best)
}

/// The high-pass radius for a cell size: three quarters of it (tuned on world
/// clips: smaller removes the mark, larger keeps more of the picture).
fn hp_radius(cell: f64) -> usize {
    ((cell * 0.75) as usize).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textured moving test clip: gradients, a moving square, noise.
    fn clip(w: usize, h: usize, n: usize, seed: u64) -> Vec<Frame> {
        let mut s = seed | 1;
        (0..n)
            .map(|t| {
                let mut data = vec![0u8; w * h * 3];
                for y in 0..h {
                    for x in 0..w {
                        s ^= s << 13;
                        s ^= s >> 7;
                        s ^= s << 17;
                        let noise = (s % 3) as f32 - 1.0;
                        let inside = (x + 2 * t) % w < w / 3 && y > h / 3 && y < 2 * h / 3;
                        let base = if inside {
                            [220.0, 60.0, 40.0]
                        } else {
                            [x as f32 * 200.0 / w as f32, y as f32 * 180.0 / h as f32, 90.0]
                        };
                        for c in 0..3 {
                            data[(y * w + x) * 3 + c] = (base[c] + noise).clamp(0.0, 255.0) as u8;
                        }
                    }
                }
                Frame { width: w, height: h, data }
            })
            .collect()
    }

    /// A picture like an undertrained model's: 16-pixel squares of random colour (its
    /// tokens) with strong texture at the scale of a few pixels inside them.
    fn blocky(w: usize, h: usize, seed: u64) -> Frame {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let block: Vec<[f32; 3]> =
            (0..(w / 16 + 1) * (h / 16 + 1)).map(|_| std::array::from_fn(|_| 40.0 + (next() % 170) as f32)).collect();
        let blob: Vec<f32> = (0..(w / 4 + 1) * (h / 4 + 1)).map(|_| (next() % 25) as f32 - 12.0).collect();
        let mut data = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let b = block[(y / 16) * (w / 16 + 1) + x / 16];
                let t = blob[(y / 4) * (w / 4 + 1) + x / 4] + (next() % 9) as f32 - 4.0;
                for c in 0..3 {
                    data[(y * w + x) * 3 + c] = (b[c] + t).clamp(0.0, 255.0) as u8;
                }
            }
        }
        Frame { width: w, height: h, data }
    }

    /// Informed marking reads back from a single strongly textured frame, where the blind
    /// mark of the same energy does not; the textured picture gets the fine cells, a smooth
    /// clip keeps the coarse blind mark.
    #[test]
    fn informed_mark_survives_texture_the_blind_one_does_not() {
        let mut informed_ok = 0;
        let mut blind_ok = 0;
        for seed in 0..4 {
            let p = Payload { id: 0xB10C_0000 + seed as u32 };
            let orig = blocky(128, 128, seed + 1);
            let e = Embedder::new(&orig, p);
            assert!(
                e.informed() && e.cell() == fine_cell_size(128, 128),
                "seed {seed}: load {}",
                Embedder::with_cell(128, 128, p, cell_size(128, 128)).load(&orig)
            );
            let mut marked = orig.clone();
            e.mark(&mut marked, 0);
            assert!(marked.psnr(&orig) >= 40.0, "PSNR {}", marked.psnr(&orig));
            informed_ok += (detect(std::slice::from_ref(&marked), 1).payload == Some(p)) as usize;
            let mut blind = orig.clone();
            Embedder::with_cell(128, 128, p, cell_size(128, 128)).mark(&mut blind, 0);
            blind_ok += (detect(std::slice::from_ref(&blind), 1).payload == Some(p)) as usize;
            assert!(!detect(std::slice::from_ref(&orig), 1).detected);
        }
        assert_eq!(informed_ok, 4, "informed");
        assert!(blind_ok <= 1, "blind read {blind_ok} of 4: the texture is too weak to test anything");
        let smooth = clip(128, 128, 1, 3);
        let e = Embedder::new(&smooth[0], Payload { id: 1 });
        assert!(!e.informed() && e.cell() == cell_size(128, 128));
    }

    #[test]
    fn message_round_trip_and_crc() {
        let p = Payload { id: 0xDEAD_BEEF };
        assert_eq!(parse(message(p)), Some(p));
        assert_eq!(parse(message(p) ^ 1), None);
        assert_eq!(parse(message(p) ^ (1 << 40)), None);
    }

    #[test]
    fn codes_are_orthogonal() {
        let pn = scramble();
        for a in 0..65 {
            for b in 0..65 {
                let dot: f32 = (0..CELLS).map(|c| code(a, c, &pn) * code(b, c, &pn)).sum();
                assert_eq!(dot, if a == b { CELLS as f32 } else { 0.0 }, "{a} {b}");
            }
        }
    }

    #[test]
    fn invisible_and_found_again() {
        let p = Payload { id: 0x1234_5678 };
        let orig = clip(128, 128, 12, 3);
        let mut marked = orig.clone();
        embed(&mut marked, p);
        let psnr: f64 = orig.iter().zip(&marked).map(|(a, b)| a.psnr(b)).sum::<f64>() / orig.len() as f64;
        assert!(psnr >= 40.0, "PSNR {psnr:.2}");
        let d = detect(&marked, 12);
        assert!(d.detected && d.payload == Some(p), "{d:?}");
        // Unmarked video: nothing.
        let d = detect(&orig, 12);
        assert!(!d.detected, "{d:?}");
    }

    #[test]
    fn survives_half_size_and_crop() {
        let p = Payload { id: 42 };
        let mut marked = clip(256, 160, 8, 5);
        embed(&mut marked, p);
        let half: Vec<Frame> = marked.iter().map(|f| crate::fit(f, 128, 80, crate::Fit::Stretch)).collect();
        assert_eq!(detect(&half, 8).payload, Some(p));
        // 10% off each side.
        let crop: Vec<Frame> = marked
            .iter()
            .map(|f| {
                let (x0, y0, w, h) = (26, 16, 204, 128);
                let mut data = Vec::with_capacity(w * h * 3);
                for y in y0..y0 + h {
                    data.extend_from_slice(&f.data[(y * f.width + x0) * 3..(y * f.width + x0 + w) * 3]);
                }
                Frame { width: w, height: h, data }
            })
            .collect();
        assert_eq!(detect(&crop, 8).payload, Some(p));
    }

    /// tessera's own MP4 (OpenH264 at QP 16), then the first 2 s cut away. x264 at CRF 28
    /// is checked by tools/watermark_robustness.sh (ffmpeg); OpenH264 at a fixed QP 30
    /// on this noisy synthetic clip still loses the mark.
    #[test]
    fn survives_h264_and_a_cut() {
        let p = Payload { id: 0xC0FFEE };
        let mut marked = clip(128, 96, 60, 9);
        embed(&mut marked, p);
        let stream = crate::h264::encode(&marked, 12.0, crate::Quality::High).unwrap();
        let decoded = crate::h264::decode(&stream).unwrap();
        let d = detect(&decoded[24..], 96);
        assert_eq!(d.payload, Some(p), "{d:?}");
    }

    /// Unmarked clips of several kinds are not taken for marked ones.
    #[test]
    fn no_false_positives_on_unmarked_clips() {
        for seed in 0..6 {
            let c = clip(96 + 16 * seed as usize, 64 + 16 * seed as usize, 6, seed + 11);
            let d = detect(&c, 6);
            assert!(!d.detected, "seed {seed}: {d:?}");
        }
    }
}
