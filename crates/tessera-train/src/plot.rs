//! curves.png: the training loss (raw and smoothed) against the step, drawn directly into
//! an RGB frame (no plotting dependency).

use std::path::Path;

use anyhow::Result;
use tessera_media::{write_video, Frame, WriteOptions};

pub fn write_curves(log: &Path, out: &Path) -> Result<()> {
    let text = std::fs::read_to_string(log)?;
    let pts: Vec<(f64, f64)> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut it = l.split(',');
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect();
    if pts.len() < 2 {
        return Ok(());
    }
    let (w, h) = (640usize, 360usize);
    let mut img = vec![255u8; w * h * 3];
    let (x0, x1) = (pts[0].0, pts[pts.len() - 1].0);
    // Log scale for the loss: its range spans orders of magnitude early in training.
    let ys: Vec<f64> = pts.iter().map(|p| p.1.max(1e-6).ln()).collect();
    let (ymin, ymax) = ys.iter().fold((f64::MAX, f64::MIN), |(a, b), &y| (a.min(y), b.max(y)));
    let (ml, mr, mt, mb) = (40.0, 10.0, 10.0, 30.0);
    let px = |x: f64| ml + (x - x0) / (x1 - x0).max(1e-9) * (w as f64 - ml - mr);
    let py = |y: f64| mt + (ymax - y) / (ymax - ymin).max(1e-9) * (h as f64 - mt - mb);
    let mut dot = |x: f64, y: f64, c: [u8; 3]| {
        let (xi, yi) = (x.round() as i64, y.round() as i64);
        if xi >= 0 && yi >= 0 && (xi as usize) < w && (yi as usize) < h {
            let o = (yi as usize * w + xi as usize) * 3;
            img[o..o + 3].copy_from_slice(&c);
        }
    };
    // Axes.
    for x in ml as usize..w - mr as usize {
        dot(x as f64, h as f64 - mb, [0, 0, 0]);
    }
    for y in mt as usize..h - mb as usize {
        dot(ml, y as f64, [0, 0, 0]);
    }
    let line = |dot: &mut dyn FnMut(f64, f64, [u8; 3]), a: (f64, f64), b: (f64, f64), c: [u8; 3]| {
        let n = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as usize).max(1);
        for i in 0..=n {
            let t = i as f64 / n as f64;
            dot(a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t, c);
        }
    };
    for i in 1..pts.len() {
        line(&mut dot, (px(pts[i - 1].0), py(ys[i - 1])), (px(pts[i].0), py(ys[i])), [170, 190, 230]);
    }
    // Smoothed (exponential moving average over about 2% of the run).
    let k = (2.0 / (pts.len() as f64 * 0.02 + 1.0)).min(1.0);
    let mut s = ys[0];
    let mut prev = (px(pts[0].0), py(s));
    for i in 1..pts.len() {
        s += k * (ys[i] - s);
        let p = (px(pts[i].0), py(s));
        line(&mut dot, prev, p, [200, 40, 40]);
        prev = p;
    }
    let frame = Frame::new(w, h, img)?;
    write_video(out, &[frame], 1.0, &WriteOptions::default())?;
    Ok(())
}
