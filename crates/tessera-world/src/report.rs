//! The benchmark's report: scores per video and their means, as JSON (`tessera eval
//! --out`), a text summary, and an HTML page with thumbnails and per-dimension plots.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tessera_media::{write_video, Frame, WriteOptions};

use crate::eval::{Check, Scores};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VideoReport {
    /// The video's file (or folder) name.
    pub file: String,
    pub prompt: String,
    /// The six scores, as top-level keys of the video's object.
    #[serde(flatten)]
    pub scores: Scores,
    /// Every check behind the scores.
    pub checks: Vec<Check>,
}

impl VideoReport {
    pub fn new(file: String, prompt: String, scores: Scores, checks: Vec<Check>) -> Self {
        VideoReport { file, prompt, scores, checks }
    }

    pub fn scores(&self) -> Scores {
        self.scores
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub videos: Vec<VideoReport>,
    /// The mean of each of the six scores over the videos.
    pub mean: Scores,
}

impl Report {
    pub fn new(videos: Vec<VideoReport>) -> Self {
        let mean = Scores::mean(&videos.iter().map(VideoReport::scores).collect::<Vec<_>>());
        Report { videos, mean }
    }

    /// A table: one row per video, then the means.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let width = self.videos.iter().map(|v| v.file.len()).max().unwrap_or(4).clamp(4, 40);
        let _ = write!(out, "{:<width$}", "video");
        for n in Scores::NAMES {
            let _ = write!(out, " {:>11}", n);
        }
        out.push('\n');
        let row = |out: &mut String, name: &str, s: &Scores| {
            let _ = write!(out, "{:<width$}", name);
            for v in s.values() {
                let _ = write!(out, " {:>11.3}", v);
            }
            out.push('\n');
        };
        for v in &self.videos {
            row(&mut out, &v.file, &v.scores());
        }
        row(&mut out, "mean", &self.mean);
        out
    }

    /// Writes `dir/index.html` with a thumbnail strip per video (`thumbs[i]`: its
    /// [`thumbnail_frames`]), a bar plot per dimension, and each video's failed checks.
    pub fn write_html(&self, dir: &Path, thumbs: &[Vec<Frame>]) -> std::io::Result<()> {
        std::fs::create_dir_all(dir.join("thumbs"))?;
        for (i, frames) in thumbs.iter().enumerate() {
            if let Some(strip) = strip(frames, 120) {
                write_video(&dir.join(format!("thumbs/{i:06}.png")), &[strip], 1.0, &WriteOptions::default())
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
            }
        }
        let mut h = String::new();
        h.push_str("<!doctype html><html><head><meta charset=\"utf-8\"><title>tessera eval</title><style>");
        h.push_str("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right}td.l,th.l{text-align:left}.plots{display:flex;flex-wrap:wrap;gap:16px}.bad{color:#b00}img{image-rendering:pixelated}");
        h.push_str("</style></head><body><h1>tessera eval</h1>");
        let _ = write!(h, "<p>{} videos. Mean overall <b>{:.3}</b>.</p>", self.videos.len(), self.mean.overall);
        h.push_str("<h2>Scores by dimension</h2><div class=\"plots\">");
        for (k, name) in Scores::NAMES.iter().enumerate() {
            let values: Vec<f64> = self.videos.iter().map(|v| v.scores().values()[k]).collect();
            h.push_str(&bar_plot(name, &values, self.mean.values()[k]));
        }
        h.push_str("</div><h2>Videos</h2><table><tr><th class=\"l\">video</th><th class=\"l\">frames</th>");
        for n in Scores::NAMES {
            let _ = write!(h, "<th>{n}</th>");
        }
        h.push_str("<th class=\"l\">failed checks</th></tr>");
        for (i, v) in self.videos.iter().enumerate() {
            let _ = write!(h, "<tr><td class=\"l\"><b>{}</b><br><small>{}</small></td>", esc(&v.file), esc(&v.prompt));
            if i < thumbs.len() && !thumbs[i].is_empty() {
                let _ = write!(
                    h,
                    "<td class=\"l\"><img src=\"thumbs/{i:06}.png\" alt=\"frames of {}\"></td>",
                    esc(&v.file)
                );
            } else {
                h.push_str("<td></td>");
            }
            for x in v.scores().values() {
                let _ = write!(h, "<td{}>{x:.3}</td>", if x < 0.8 { " class=\"bad\"" } else { "" });
            }
            h.push_str("<td class=\"l\"><small>");
            for c in v.checks.iter().filter(|c| c.score < 0.9) {
                let _ = write!(h, "{:?} {:.2}: {}<br>", c.dimension, c.score, esc(&c.what));
            }
            h.push_str("</small></td></tr>");
        }
        h.push_str("</table></body></html>\n");
        tessera_media::write_atomic(&dir.join("index.html"), h.as_bytes())
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An SVG bar per video, a line at the mean.
fn bar_plot(name: &str, values: &[f64], mean: f64) -> String {
    let (w, h) = (320.0, 140.0);
    let n = values.len().max(1) as f64;
    let bw = (w - 40.0) / n;
    let mut s = format!("<figure><svg width=\"{w}\" height=\"{}\" role=\"img\" aria-label=\"{name}\">", h + 20.0);
    let _ = write!(s, "<line x1=\"30\" y1=\"{h}\" x2=\"{w}\" y2=\"{h}\" stroke=\"#999\"/><text x=\"0\" y=\"12\" font-size=\"10\">1.0</text><text x=\"0\" y=\"{h}\" font-size=\"10\">0</text>");
    for (i, v) in values.iter().enumerate() {
        let bh = v.clamp(0.0, 1.0) * (h - 10.0);
        let color = if *v >= 0.8 {
            "#4a8"
        } else if *v >= 0.5 {
            "#e90"
        } else {
            "#c33"
        };
        let _ = write!(s, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{color}\"><title>video {i}: {v:.3}</title></rect>", 32.0 + i as f64 * bw, h - bh, (bw - 1.0).max(1.0));
    }
    let my = h - mean.clamp(0.0, 1.0) * (h - 10.0);
    let _ = write!(
        s,
        "<line x1=\"30\" y1=\"{my:.1}\" x2=\"{w}\" y2=\"{my:.1}\" stroke=\"#236\" stroke-dasharray=\"4 2\"/>"
    );
    let _ = write!(s, "</svg><figcaption>{name}: mean {mean:.3}</figcaption></figure>");
    s
}

/// The frames a video's thumbnail strip shows: up to four, evenly spaced from the first
/// to the last.
pub fn thumbnail_frames(frames: &[Frame]) -> Vec<Frame> {
    let k = frames.len().min(4);
    (0..k).map(|i| frames[i * (frames.len() - 1) / (k - 1).max(1)].clone()).collect()
}

/// Frames side by side, each scaled (nearest) to `height` pixels high.
fn strip(frames: &[Frame], height: usize) -> Option<Frame> {
    let first = frames.first()?;
    let k = frames.len();
    let w = (first.width * height / first.height).max(1);
    let mut data = vec![0u8; w * k * height * 3];
    for (j, f) in frames.iter().enumerate() {
        for y in 0..height {
            let sy = y * f.height / height;
            for x in 0..w {
                let sx = x * f.width / w;
                let src = (sy * f.width + sx) * 3;
                let dst = (y * w * k + j * w + x) * 3;
                data[dst..dst + 3].copy_from_slice(&f.data[src..src + 3]);
            }
        }
    }
    Frame::new(w * k, height, data).ok()
}
