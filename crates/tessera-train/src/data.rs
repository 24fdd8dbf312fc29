//! Training data: the world rendered on the fly, or a folder of the user's videos, one
//! bucket (size and length) per batch. Everything is a function of (seed, step), so a
//! resumed run sees the same data.

use std::path::{Path, PathBuf};

use candle_core::{Device, Result, Tensor};
use tessera_media::Frame;
use tessera_world::rng::Rng;
use tessera_world::scene::SceneOptions;

use crate::config::Bucket;

pub struct Batch {
    pub bucket: Bucket,
    /// (B, 3, T, H, W) in [-1, 1].
    pub video: Tensor,
    pub captions: Vec<String>,
}

/// Appends a clip's frames, (T, H, W, 3) bytes, as (3, T, H, W) values in [-1, 1].
pub(crate) fn push_clip(data: &mut Vec<f32>, frames: &[Frame]) {
    for c in 0..3 {
        for f in frames {
            data.extend(f.data.iter().skip(c).step_by(3).map(|&v| v as f32 / 127.5 - 1.0));
        }
    }
}

/// The batch of `step`: a bucket drawn from `buckets`, `size` world clips rendered at it,
/// each captioned with its prompt or its detailed caption. `hold_out`: no clip combines a
/// pair the benchmark holds out.
#[allow(clippy::too_many_arguments)]
pub fn world_batch(
    seed: u64,
    step: usize,
    size: usize,
    buckets: &[Bucket],
    fps: f64,
    prompt_probability: f64,
    hold_out: bool,
    device: &Device,
) -> Result<Batch> {
    let mut rng = Rng::derive(seed ^ 0xDA7A, step as u64);
    let bucket = *rng.pick(buckets);
    let seconds = (bucket.frames.saturating_sub(1)) as f64 / fps;
    let opts = SceneOptions { seconds, cut_probability: 0.1, hold_out };
    let (w, h, t) = (bucket.width, bucket.height, bucket.frames);
    let mut data = Vec::with_capacity(size * 3 * t * h * w);
    let mut captions = Vec::with_capacity(size);
    for i in 0..size {
        let clip = tessera_world::sample_clip(seed, (step * size + i) as u64, &opts);
        let mut r = clip.scene.renderer(w, h, fps);
        let frames: Vec<_> = (0..t).map(|k| r.frame(k.min(r.frame_count() - 1))).collect();
        push_clip(&mut data, &frames);
        captions.push(if rng.chance(prompt_probability) { clip.prompt } else { clip.caption });
    }
    let video = Tensor::from_vec(data, (size, 3, t, h, w), device)?;
    Ok(Batch { bucket, video, captions })
}

/// A folder of videos with caption sidecars.
pub struct Folder {
    pub items: Vec<(PathBuf, String, Option<String>)>,
}

impl Folder {
    /// Lists `dir`'s mp4 and gif files (name order) with their captions: `NAME.txt` (the
    /// caption), or `NAME.json` with `caption` (and optionally `prompt`). A video without
    /// a caption is an error: training on uncaptioned video teaches nothing about text.
    pub fn open(dir: &Path) -> anyhow::Result<Folder> {
        let mut videos: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot read the data folder {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "mp4" | "gif"))
            })
            .collect();
        videos.sort();
        let mut items = Vec::new();
        for v in videos {
            let (txt, json) = (v.with_extension("txt"), v.with_extension("json"));
            let (caption, prompt) = if txt.is_file() {
                (std::fs::read_to_string(&txt)?.trim().to_string(), None)
            } else if json.is_file() {
                let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&json)?)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", json.display()))?;
                let caption = j
                    .get("caption")
                    .and_then(|c| c.as_str())
                    .ok_or_else(|| anyhow::anyhow!("{} has no \"caption\"", json.display()))?;
                (caption.to_string(), j.get("prompt").and_then(|p| p.as_str()).map(String::from))
            } else {
                anyhow::bail!("{} has no caption: add {} or {}", v.display(), txt.display(), json.display());
            };
            items.push((v, caption, prompt));
        }
        if items.is_empty() {
            anyhow::bail!("{} holds no mp4 or gif videos", dir.display());
        }
        Ok(Folder { items })
    }

    /// The batch of `step`: videos picked from the folder, resampled to the data's frame
    /// rate (nearest frame), scaled to cover the bucket and centre-cropped, shorter videos
    /// holding their last frame. (The arguments are `Source::batch`'s.)
    #[allow(clippy::too_many_arguments)]
    pub fn batch(
        &self,
        seed: u64,
        step: usize,
        size: usize,
        buckets: &[Bucket],
        fps: f64,
        prompt_probability: f64,
        device: &Device,
    ) -> anyhow::Result<Batch> {
        let mut rng = Rng::derive(seed ^ 0xF01D, step as u64);
        let bucket = *rng.pick(buckets);
        let (w, h, t) = (bucket.width, bucket.height, bucket.frames);
        let mut data = Vec::with_capacity(size * 3 * t * h * w);
        let mut captions = Vec::with_capacity(size);
        for _ in 0..size {
            let (path, caption, prompt) = &self.items[rng.below(self.items.len())];
            let (frames, src_fps) = tessera_media::read_video(path).map_err(|e| anyhow::anyhow!("{e}"))?;
            let src_fps = if src_fps > 0.0 { src_fps } else { fps };
            let picked: Vec<Frame> = (0..t)
                .map(|k| {
                    let i = ((k as f64 / fps) * src_fps).round() as usize;
                    tessera_media::fit(&frames[i.min(frames.len() - 1)], w, h, tessera_media::Fit::Crop)
                })
                .collect();
            push_clip(&mut data, &picked);
            captions.push(match prompt {
                Some(p) if rng.chance(prompt_probability) => p.clone(),
                _ => caption.clone(),
            });
        }
        Ok(Batch { bucket, video: Tensor::from_vec(data, (size, 3, t, h, w), device)?, captions })
    }
}

/// Where a run's batches come from: the world, or the user's folder (`[data] folder`).
pub enum Source {
    /// `hold_out`: `[data] hold_out`, no clip combines a pair the benchmark holds out.
    World {
        hold_out: bool,
        crop: Option<usize>,
    },
    Folder(Folder),
}

impl Source {
    pub fn open(cfg: &crate::config::DataConfig) -> anyhow::Result<Source> {
        Ok(match &cfg.folder {
            Some(dir) => Source::Folder(Folder::open(dir)?),
            None => Source::World { hold_out: cfg.hold_out, crop: cfg.crop },
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub fn batch(
        &self,
        seed: u64,
        step: usize,
        size: usize,
        buckets: &[Bucket],
        fps: f64,
        prompt_probability: f64,
        device: &Device,
    ) -> anyhow::Result<Batch> {
        match self {
            Source::World { hold_out, crop } => {
                let batch = world_batch(seed, step, size, buckets, fps, prompt_probability, *hold_out, device)?;
                match crop {
                    Some(c) => Ok(crop_to_objects(batch, *c, &mut Rng::derive(seed ^ 0xC209, step as u64))?),
                    None => Ok(batch),
                }
            }
            Source::Folder(f) => f.batch(seed, step, size, buckets, fps, prompt_probability, device),
        }
    }
}

/// Crops every clip of `batch` to a `c` x `c` window (`[data] crop`; a side the bucket
/// does not exceed is kept whole), centred within a quarter window of a random object
/// pixel of the clip's middle frame (a palette colour, as the evaluator segments them), or
/// anywhere when the frame shows no object.
pub fn crop_to_objects(batch: Batch, c: usize, rng: &mut Rng) -> Result<Batch> {
    use tessera_world::eval::segment::{classify, Image, NONE};
    let (b, _, t, h, w) = batch.video.dims5()?;
    let (cw, ch) = (c.min(w), c.min(h));
    if (cw, ch) == (w, h) {
        return Ok(batch);
    }
    let mid = t / 2;
    let mut clips = Vec::with_capacity(b);
    for i in 0..b {
        let clip = batch.video.narrow(0, i, 1)?;
        // The middle frame as bytes, (H, W, 3).
        let frame = clip.narrow(2, mid, 1)?.squeeze(0)?.squeeze(1)?.permute((1, 2, 0))?;
        let data: Vec<u8> = ((frame.flatten_all()? + 1.0)? * 127.5)?
            .to_vec1::<f32>()?
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect();
        let class = classify(&Image { width: w, height: h, data });
        let objects: Vec<usize> = (0..h * w).filter(|&k| class[k] != NONE).collect();
        let (cx, cy) = if objects.is_empty() {
            (rng.below(w), rng.below(h))
        } else {
            let k = objects[rng.below(objects.len())];
            let jitter = |r: &mut Rng, n: usize| r.below(n / 2 + 1) as isize - (n / 4) as isize;
            let x = (k % w) as isize + jitter(rng, cw);
            let y = (k / w) as isize + jitter(rng, ch);
            (x.max(0) as usize, y.max(0) as usize)
        };
        let x0 = cx.saturating_sub(cw / 2).min(w - cw);
        let y0 = cy.saturating_sub(ch / 2).min(h - ch);
        clips.push(clip.narrow(3, y0, ch)?.narrow(4, x0, cw)?);
    }
    Ok(Batch { bucket: batch.bucket, video: Tensor::cat(&clips, 0)?, captions: batch.captions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_are_centred_near_an_object() {
        // A grey 64x64 clip with one square of a palette colour at (40..48, 8..16): every 32x32
        // window holds some of it, and the clip's size and captions are kept.
        let (t, h, w) = (3, 64, 64);
        let colour = tessera_world::eval::segment::palette_shades()[0].1;
        let mut v = vec![0f32; 3 * t * h * w];
        for c in 0..3 {
            for f in 0..t {
                for y in 0..h {
                    for x in 0..w {
                        let on = (40..48).contains(&x) && (8..16).contains(&y);
                        let byte = if on { colour[c] } else { 128.0 };
                        v[((c * t + f) * h + y) * w + x] = byte / 127.5 - 1.0;
                    }
                }
            }
        }
        let video = Tensor::from_vec(v, (1, 3, t, h, w), &Device::Cpu).unwrap();
        let bucket = Bucket { width: w, height: h, frames: t };
        for seed in 0..8 {
            let batch = Batch { bucket, video: video.clone(), captions: vec!["x".into()] };
            let out = crop_to_objects(batch, 32, &mut Rng::new(seed)).unwrap();
            assert_eq!(out.video.dims(), &[1, 3, t, 32, 32]);
            assert_eq!(out.captions, vec!["x".to_string()]);
            // Some pixel of the window is far from the grey: the object's.
            let off: f32 =
                (out.video - (128.0 / 127.5 - 1.0)).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert!(off > 0.2, "seed {seed}: the window misses the object");
        }
    }
}
