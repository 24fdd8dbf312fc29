//! The visible watermark (`--visible-watermark`): a small "TESSERA" mark that drifts
//! across the frame over time, as Sora's moving mark does, so cropping one corner does not
//! remove it. White glyphs at 70% opacity over a dark shadow, readable on light and dark
//! pictures; its size follows the frame (glyph pixels of height / 120, at least 1).

use crate::Frame;

/// 5 x 7 glyphs, one row per byte, bit 4 is the left column.
const GLYPHS: [(char, [u8; 7]); 5] = [
    ('T', [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100]),
    ('E', [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111]),
    ('S', [0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110]),
    ('R', [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001]),
    ('A', [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001]),
];
const TEXT: &str = "TESSERA";

/// The mark as a bitmap: (width, height, on), in glyph pixels.
fn bitmap() -> (usize, usize, Vec<bool>) {
    let (gw, gh, gap) = (5, 7, 1);
    let w = TEXT.len() * (gw + gap) - gap;
    let mut on = vec![false; w * gh];
    for (i, ch) in TEXT.chars().enumerate() {
        let rows = GLYPHS.iter().find(|(c, _)| *c == ch).map(|(_, r)| r).expect("glyph");
        for (y, row) in rows.iter().enumerate() {
            for x in 0..gw {
                if row >> (gw - 1 - x) & 1 == 1 {
                    on[y * w + i * (gw + gap) + x] = true;
                }
            }
        }
    }
    (w, gh, on)
}

/// Where the mark is at time `t` seconds: it glides around an ellipse inside the frame's
/// margins, one lap every 12 seconds. (x, y) of its top-left corner in pixels.
fn position(t: f64, frame_w: usize, frame_h: usize, mark_w: usize, mark_h: usize) -> (usize, usize) {
    let margin_x = (frame_w / 20) as f64;
    let margin_y = (frame_h / 20) as f64;
    let free_w = (frame_w as f64 - mark_w as f64 - 2.0 * margin_x).max(0.0);
    let free_h = (frame_h as f64 - mark_h as f64 - 2.0 * margin_y).max(0.0);
    let a = 2.0 * std::f64::consts::PI * t / 12.0;
    let x = margin_x + free_w * (0.5 + 0.5 * a.cos());
    let y = margin_y + free_h * (0.5 + 0.5 * (2.0 * a).sin());
    (x.round() as usize, y.round() as usize)
}

/// Draws the mark on frame number `index` of a video at `fps` (0 for a still: the mark
/// sits at its starting place).
pub fn stamp(frame: &mut Frame, index: usize, fps: f64) {
    let (bw, bh, on) = bitmap();
    let s = (frame.height / 120).max(1);
    let (mw, mh) = (bw * s, bh * s);
    if mw + 2 > frame.width || mh + 2 > frame.height {
        return; // too small to carry a legible mark
    }
    let t = if fps > 0.0 { index as f64 / fps } else { 0.0 };
    let (x0, y0) = position(t, frame.width, frame.height, mw + s, mh + s);
    let mut blend = |x: usize, y: usize, rgb: f32, alpha: f32| {
        if x < frame.width && y < frame.height {
            let i = (y * frame.width + x) * 3;
            for v in &mut frame.data[i..i + 3] {
                *v = (*v as f32 * (1.0 - alpha) + rgb * alpha).round() as u8;
            }
        }
    };
    // Shadow one glyph pixel down-right, then the white glyphs.
    for (dx, dy, rgb, alpha) in [(s, s, 0.0, 0.45), (0, 0, 255.0, 0.7)] {
        for gy in 0..bh {
            for gx in 0..bw {
                if !on[gy * bw + gx] {
                    continue;
                }
                for py in 0..s {
                    for px in 0..s {
                        blend(x0 + gx * s + px + dx, y0 + gy * s + py + dy, rgb, alpha);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_is_drawn_and_moves() {
        let grey = Frame { width: 256, height: 144, data: vec![100; 256 * 144 * 3] };
        let mut a = grey.clone();
        let mut b = grey.clone();
        stamp(&mut a, 0, 12.0);
        stamp(&mut b, 36, 12.0); // 3 s later
        let changed = |f: &Frame| f.data.chunks(3).filter(|p| p[0] != 100).count();
        assert!(changed(&a) > 100, "{}", changed(&a));
        assert!(a.data.iter().any(|&v| v > 200), "white glyphs");
        assert_ne!(a, b, "the mark moves");
        // A frame too small for the mark is left alone.
        let mut tiny = Frame { width: 16, height: 8, data: vec![100; 16 * 8 * 3] };
        stamp(&mut tiny, 0, 12.0);
        assert!(tiny.data.iter().all(|&v| v == 100));
    }
}
