//! Samples to look at while a run trains (issue 28: "look at samples, not only losses"):
//! every `sample_every` steps a contact sheet of the EMA weights' output goes to
//! `out/samples/` (run folders are kept out of git). Frames across time left to right.

use std::path::{Path, PathBuf};

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use tessera_media::Frame;
use tessera_models::wan::vae::AutoencoderKLWan;
use tessera_world::scene::SceneOptions;

/// Gap between frames and rows of a contact sheet, in pixels (mid-grey).
const GAP: usize = 2;

/// Rows of frames as one image: row r's frame c at column c. Rows may differ in length;
/// frames in a row share a size.
pub fn contact_sheet(rows: &[Vec<Frame>]) -> Result<Frame> {
    let cell_w = rows.iter().flatten().map(|f| f.width).max().unwrap_or(1);
    let cell_h = rows.iter().flatten().map(|f| f.height).max().unwrap_or(1);
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(1).max(1);
    let (w, h) = (cols * (cell_w + GAP) + GAP, rows.len().max(1) * (cell_h + GAP) + GAP);
    let mut data = vec![128u8; w * h * 3];
    for (r, row) in rows.iter().enumerate() {
        for (c, f) in row.iter().enumerate() {
            let (x0, y0) = (GAP + c * (cell_w + GAP), GAP + r * (cell_h + GAP));
            for y in 0..f.height {
                let src = &f.data[y * f.width * 3..(y + 1) * f.width * 3];
                let at = ((y0 + y) * w + x0) * 3;
                data[at..at + src.len()].copy_from_slice(src);
            }
        }
    }
    Ok(Frame::new(w, h, data)?)
}

/// Frames 0, every, 2 every, ... (and the last) of a (3, T, H, W) video in [-1, 1].
pub fn frames_of(video: &Tensor, every: usize) -> Result<Vec<Frame>> {
    let (_, t, h, w) = video.dims4()?;
    let v: Vec<f32> =
        video.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.permute((1, 2, 3, 0))?.flatten_all()?.to_vec1()?;
    let plane = h * w * 3;
    let mut picked: Vec<usize> = (0..t).step_by(every.max(1)).collect();
    if picked.last() != Some(&(t - 1)) {
        picked.push(t - 1);
    }
    picked
        .into_iter()
        .map(|k| {
            let rgb: Vec<f32> = v[k * plane..(k + 1) * plane].iter().map(|x| (x + 1.0) * 0.5).collect();
            Ok(Frame::from_f32(w, h, &rgb)?)
        })
        .collect()
}

/// Frames 0, every, ... (and the last) of what `WanPipeline::generate` returns, (T, H, W, 3)
/// in [0, 1]. Until 2026-12-07 the sheets read it as (3, T, H, W) in [-1, 1], and every
/// transformer contact sheet was a grey texture whatever the model drew.
pub fn frames_of_generated(video: &Tensor, every: usize) -> Result<Vec<Frame>> {
    frames_of(&video.permute((3, 0, 1, 2))?.affine(2.0, -1.0)?, every)
}

/// The clips a VAE run's sheets show: four held-out world clips (seed 4242, which no
/// training run draws), 128x128, 25 frames at `fps`, as (4, 3, 25, 128, 128) in [-1, 1].
pub fn sample_clips(fps: f64, device: &Device) -> Result<Tensor> {
    let (w, h, t) = (128, 128, 25);
    let opts = SceneOptions { seconds: (t - 1) as f64 / fps, cut_probability: 0.0, hold_out: false };
    let mut data = Vec::with_capacity(4 * 3 * t * h * w);
    for i in 0..4 {
        let clip = tessera_world::sample_held_out_clip(4242, i, &opts);
        let mut r = clip.scene.renderer(w, h, fps);
        let frames: Vec<Frame> = (0..t).map(|k| r.frame(k.min(r.frame_count() - 1))).collect();
        crate::data::push_clip(&mut data, &frames);
    }
    Ok(Tensor::from_vec(data, (4, 3, t, h, w), device)?)
}

/// A VAE's round trips of `clips` (from [`sample_clips`]) as a sheet in `out/samples/`:
/// for each clip a row of the clip and a row of decode(encode(clip)), every 4th frame.
pub fn vae_sheet(vae: &AutoencoderKLWan, clips: &Tensor, out: &Path, step: usize) -> Result<PathBuf> {
    let mut rows = Vec::new();
    for i in 0..clips.dim(0)? {
        let clip = clips.narrow(0, i, 1)?;
        let (mean, _) = vae.encode_posterior(&clip)?;
        let rec = vae.decode_unclamped(&mean)?.clamp(-1f32, 1f32)?;
        rows.push(frames_of(&clip.squeeze(0)?, 4)?);
        rows.push(frames_of(&rec.squeeze(0)?, 4)?);
    }
    save_sheet(&rows, out, &format!("vae_step_{step:06}.png"))
}

/// The prompts a transformer run's sheets show: four held-out world prompts (seed 4242),
/// each with the detailed caption the CLI expands it into (seed 0).
pub fn sample_prompts(fps: f64) -> Vec<(String, String)> {
    let opts = SceneOptions { seconds: 24.0 / fps, cut_probability: 0.0, hold_out: false };
    (0..4)
        .map(|i| {
            let prompt = tessera_world::sample_held_out_clip(4242, i, &opts).prompt;
            let caption =
                tessera_world::expand(&prompt, 0, &opts).map(|c| c.caption).unwrap_or_else(|_| prompt.clone());
            (prompt, caption)
        })
        .collect()
}

/// Videos of an exported model folder `model` for [`sample_prompts`] as a sheet in
/// `out/samples/`: one row per prompt, 128x128, 25 frames, every 4th frame, with the
/// folder's own defaults (tessera.json's steps, guidance 5, seed 0), as `tessera
/// generate` makes them.
pub fn transformer_sheet(model: &Path, out: &Path, step: usize, fps: f64, device: &Device) -> Result<PathBuf> {
    use tessera_pipeline::wan::{GenerateParams, WanPipeline};
    let pipe = WanPipeline::open(model, device, DType::F32)?;
    let defaults = tessera_pipeline::defaults::ModelDefaults::read(model)?;
    let mut rows = Vec::new();
    for (_, caption) in sample_prompts(fps) {
        let p = GenerateParams {
            prompt: caption,
            width: 128,
            height: 128,
            frames: 25,
            steps: defaults.steps.unwrap_or(20),
            guidance: 5.0,
            max_sequence_length: defaults.max_sequence_length.unwrap_or(64),
            seed: 0,
            ..Default::default()
        };
        rows.push(frames_of_generated(&pipe.generate(&p, &mut |_| {})?, 4)?);
    }
    save_sheet(&rows, out, &format!("step_{step:06}.png"))
}

/// Writes a sheet to `out/samples/NAME`.
pub fn save_sheet(rows: &[Vec<Frame>], out: &Path, name: &str) -> Result<PathBuf> {
    let dir = out.join("samples");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    tessera_media::write_video(&path, &[contact_sheet(rows)?], 1.0, &Default::default())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sheet_places_each_frame_in_its_cell() {
        let solid = |v: u8| Frame::new(2, 2, vec![v; 12]).unwrap();
        let sheet = contact_sheet(&[vec![solid(10), solid(20)], vec![solid(30)]]).unwrap();
        assert_eq!((sheet.width, sheet.height), (2 * 4 + 2, 2 * 4 + 2));
        let at = |x: usize, y: usize| sheet.data[(y * sheet.width + x) * 3];
        assert_eq!(at(2, 2), 10);
        assert_eq!(at(6, 3), 20);
        assert_eq!(at(3, 6), 30);
        // The second row's missing cell and the gaps stay grey.
        assert_eq!(at(6, 6), 128);
        assert_eq!(at(0, 0), 128);
    }

    #[test]
    fn generated_frames_are_read_as_the_pipeline_writes_them() {
        // (T, H, W, 3) in [0, 1], as WanPipeline::generate returns: frame 4, pixel (x 2, y 1)
        // orange, the rest black.
        let (t, h, w) = (5, 4, 6);
        let mut v = vec![0f32; t * h * w * 3];
        let at = ((4 * h + 1) * w + 2) * 3;
        v[at..at + 3].copy_from_slice(&[1.0, 0.5, 0.0]);
        let video = Tensor::from_vec(v, (t, h, w, 3), &Device::Cpu).unwrap();
        let frames = frames_of_generated(&video, 4).unwrap();
        assert_eq!(frames.len(), 2, "frames 0 and 4");
        assert_eq!((frames[1].width, frames[1].height), (w, h));
        let px = |f: &Frame, x: usize, y: usize| f.data[(y * w + x) * 3..][..3].to_vec();
        assert_eq!(px(&frames[1], 2, 1), vec![255, 128, 0]);
        assert_eq!(px(&frames[1], 3, 1), vec![0, 0, 0]);
        assert_eq!(px(&frames[0], 2, 1), vec![0, 0, 0]);
    }
}
