//! Colour quantisation for GIF: a palette of at most 256 colours per frame.
//!
//! Variance-based median cut (Heckbert, "Color image quantization for frame buffer
//! display", 1982, splitting the box with the largest squared error at the point that
//! minimises it, as in Wu, Graphics Gems II, 1991) over a 5-bit-per-channel histogram,
//! then a few weighted k-means (Lloyd) passes. Frames with at most 256 distinct colours
//! keep them exactly. No dithering: it adds frame-to-frame noise to smooth video.

use std::collections::HashMap;

/// A populated histogram cell: its pixel count and mean colour.
#[derive(Clone, Copy)]
struct Bin {
    w: f64,
    c: [f64; 3],
}

/// Squared error of a set of bins around their weighted mean, from its sums.
fn sse(w: f64, s: [f64; 3], s2: f64) -> f64 {
    if w <= 0.0 {
        0.0
    } else {
        s2 - (s[0] * s[0] + s[1] * s[1] + s[2] * s[2]) / w
    }
}

fn sums(bins: &[Bin]) -> (f64, [f64; 3], f64) {
    let mut w = 0.0;
    let mut s = [0.0; 3];
    let mut s2 = 0.0;
    for b in bins {
        w += b.w;
        for (sk, ck) in s.iter_mut().zip(b.c) {
            *sk += b.w * ck;
            s2 += b.w * ck * ck;
        }
    }
    (w, s, s2)
}

fn mean(bins: &[Bin]) -> [f64; 3] {
    let (w, s, _) = sums(bins);
    s.map(|x| x / w.max(1e-9))
}

/// Sorts `bins` along the axis of largest variance and returns the split index that
/// minimises the two halves' total squared error.
fn best_split(bins: &mut [Bin]) -> usize {
    let (w, s, _) = sums(bins);
    let var = |k: usize| {
        let m = s[k] / w;
        bins.iter().map(|b| b.w * (b.c[k] - m).powi(2)).sum::<f64>()
    };
    let axis = (0..3).max_by(|&a, &b| var(a).total_cmp(&var(b))).unwrap_or(0);
    bins.sort_unstable_by(|a, b| a.c[axis].total_cmp(&b.c[axis]));
    let (mut lw, mut ls, mut ls2) = (0.0, [0.0; 3], 0.0);
    let (tw, ts, ts2) = sums(bins);
    let (mut best, mut at) = (f64::INFINITY, 1);
    for (i, b) in bins.iter().enumerate().take(bins.len() - 1) {
        lw += b.w;
        for (lk, ck) in ls.iter_mut().zip(b.c) {
            *lk += b.w * ck;
            ls2 += b.w * ck * ck;
        }
        let rs = [ts[0] - ls[0], ts[1] - ls[1], ts[2] - ls[2]];
        let e = sse(lw, ls, ls2) + sse(tw - lw, rs, ts2 - ls2);
        if e < best {
            (best, at) = (e, i + 1);
        }
    }
    at
}

fn nearest(palette: &[[f64; 3]], c: [f64; 3]) -> usize {
    let d = |p: &[f64; 3]| (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2) + (p[2] - c[2]).powi(2);
    (0..palette.len()).min_by(|&a, &b| d(&palette[a]).total_cmp(&d(&palette[b]))).unwrap_or(0)
}

/// A palette of at most `k` colours for RGB8 pixels.
pub fn palette(rgb: &[u8], k: usize) -> Vec<[u8; 3]> {
    // Few colours: keep them exactly.
    let mut distinct = HashMap::new();
    for p in rgb.chunks_exact(3) {
        distinct.insert([p[0], p[1], p[2]], ());
        if distinct.len() > k {
            break;
        }
    }
    if distinct.len() <= k {
        let mut v: Vec<[u8; 3]> = distinct.into_keys().collect();
        v.sort_unstable();
        return v;
    }
    // Histogram of 32x32x32 cells with the exact mean colour of each.
    let mut hist = vec![(0u32, [0u64; 3]); 1 << 15];
    for p in rgb.chunks_exact(3) {
        let cell = &mut hist[(p[0] as usize >> 3) << 10 | (p[1] as usize >> 3) << 5 | p[2] as usize >> 3];
        cell.0 += 1;
        for (sum, &v) in cell.1.iter_mut().zip(p) {
            *sum += v as u64;
        }
    }
    let mut bins: Vec<Bin> = hist
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, s)| Bin { w: *n as f64, c: s.map(|x| x as f64 / *n as f64) })
        .collect();
    // Median cut: boxes are ranges of `bins`; split the worst until there are k.
    let mut boxes: Vec<(usize, usize)> = vec![(0, bins.len())];
    while boxes.len() < k {
        let worst = boxes
            .iter()
            .enumerate()
            .filter(|(_, (a, b))| b - a > 1)
            .map(|(i, &(a, b))| {
                let (w, s, s2) = sums(&bins[a..b]);
                (i, sse(w, s, s2))
            })
            .max_by(|x, y| x.1.total_cmp(&y.1));
        let Some((i, _)) = worst else { break };
        let (a, b) = boxes[i];
        let m = a + best_split(&mut bins[a..b]);
        boxes[i] = (a, m);
        boxes.push((m, b));
    }
    let mut centres: Vec<[f64; 3]> = boxes.iter().map(|&(a, b)| mean(&bins[a..b])).collect();
    // Lloyd refinement over the cells, weighted by pixel count.
    for _ in 0..3 {
        let mut acc = vec![(0.0, [0.0; 3]); centres.len()];
        for b in &bins {
            let a = &mut acc[nearest(&centres, b.c)];
            a.0 += b.w;
            for (sum, c) in a.1.iter_mut().zip(b.c) {
                *sum += b.w * c;
            }
        }
        for (centre, (w, s)) in centres.iter_mut().zip(acc) {
            if w > 0.0 {
                *centre = s.map(|x| x / w);
            }
        }
    }
    centres.iter().map(|c| c.map(|x| x.round().clamp(0.0, 255.0) as u8)).collect()
}

/// Palette indices of RGB8 pixels: exact for palette colours, otherwise the entry nearest
/// to the centre of the pixel's 6-bit-per-channel cell (within 2 levels of the pixel).
pub fn map(rgb: &[u8], palette: &[[u8; 3]]) -> Vec<u8> {
    let exact: HashMap<[u8; 3], u8> = palette.iter().enumerate().map(|(i, &c)| (c, i as u8)).collect();
    let centres: Vec<[f64; 3]> = palette.iter().map(|c| c.map(f64::from)).collect();
    let mut cache = vec![u16::MAX; 1 << 18];
    rgb.chunks_exact(3)
        .map(|p| {
            if let Some(&i) = exact.get(&[p[0], p[1], p[2]]) {
                return i;
            }
            let key = (p[0] as usize >> 2) << 12 | (p[1] as usize >> 2) << 6 | p[2] as usize >> 2;
            if cache[key] == u16::MAX {
                let centre = [p[0], p[1], p[2]].map(|x| ((x & !3) + 2) as f64);
                cache[key] = nearest(&centres, centre) as u16;
            }
            cache[key] as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_colours_are_kept_exactly() {
        let rgb = [[255, 0, 0], [0, 0, 255], [255, 0, 0], [7, 8, 9]].concat();
        let p = palette(&rgb, 256);
        assert_eq!(p.len(), 3);
        let idx = map(&rgb, &p);
        let back: Vec<u8> = idx.iter().flat_map(|&i| p[i as usize]).collect();
        assert_eq!(back, rgb);
    }

    #[test]
    fn a_gradient_gets_a_close_palette() {
        // 4096 colours in a plane: more than 256, so it must quantise.
        let rgb: Vec<u8> = (0..4096u32).flat_map(|i| [(i % 64 * 4) as u8, (i / 64 * 4) as u8, 128]).collect();
        let p = palette(&rgb, 256);
        assert!(p.len() <= 256);
        let idx = map(&rgb, &p);
        let err: f64 = rgb
            .chunks(3)
            .zip(&idx)
            .map(|(c, &i)| (0..3).map(|k| (c[k] as f64 - p[i as usize][k] as f64).powi(2)).sum::<f64>())
            .sum::<f64>()
            / rgb.len() as f64;
        // The best 256-colour palette for this 64x64 grid of step 4 has 4x4 tiles: a mean
        // squared error of 4^2 * 15 / 12 = 20 in R and G, 0 in B, 13.3 per channel.
        assert!(err < 20.0, "mean squared error {err}");
    }
}
