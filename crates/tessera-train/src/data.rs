//! Training data: the world rendered on the fly, one bucket (size and length) per batch.
//! Everything is a function of (seed, step), so a resumed run sees the same data.

use candle_core::{Device, Result, Tensor};
use tessera_world::rng::Rng;
use tessera_world::scene::SceneOptions;

use crate::config::Bucket;

pub struct Batch {
    pub bucket: Bucket,
    /// (B, 3, T, H, W) in [-1, 1].
    pub video: Tensor,
    pub captions: Vec<String>,
}

/// The batch of `step`: a bucket drawn from `buckets`, `size` world clips rendered at it,
/// each captioned with its prompt or its detailed caption.
pub fn world_batch(seed: u64, step: usize, size: usize, buckets: &[Bucket], fps: f64, prompt_probability: f64, device: &Device) -> Result<Batch> {
    let mut rng = Rng::derive(seed ^ 0xDA7A, step as u64);
    let bucket = *rng.pick(buckets);
    let seconds = (bucket.frames.saturating_sub(1)) as f64 / fps;
    let opts = SceneOptions { seconds, cut_probability: 0.1 };
    let (w, h, t) = (bucket.width, bucket.height, bucket.frames);
    let mut data = Vec::with_capacity(size * 3 * t * h * w);
    let mut captions = Vec::with_capacity(size);
    for i in 0..size {
        let clip = tessera_world::sample_clip(seed, (step * size + i) as u64, &opts);
        let mut r = clip.scene.renderer(w, h, fps);
        let frames: Vec<_> = (0..t).map(|k| r.frame(k.min(r.frame_count() - 1))).collect();
        // (T, H, W, 3) bytes -> (3, T, H, W) in [-1, 1].
        for c in 0..3 {
            for f in &frames {
                data.extend(f.data.iter().skip(c).step_by(3).map(|&v| v as f32 / 127.5 - 1.0));
            }
        }
        captions.push(if rng.chance(prompt_probability) { clip.prompt } else { clip.caption });
    }
    let video = Tensor::from_vec(data, (size, 3, t, h, w), device)?;
    Ok(Batch { bucket, video, captions })
}
