//! Conditioning: some frames of the video are given, the rest are generated. Every task
//! (image-to-video, last frame, keyframes, extension both ways, connecting, loops,
//! in-betweening, windows of a long video) is a choice of which frames are given.
//!
//! Two ways a model takes them:
//! - Models with the image-to-video layout (transformer `in_channels = 2 z + 4`: Wan 2.1
//!   I2V, Wan 2.2 A14B I2V, tessera's own models) read a frame mask and the latents of the
//!   given frames as extra input channels, built exactly as diffusers'
//!   `WanImageToVideoPipeline.prepare_latents` builds them (mask channels, then the VAE
//!   latents of the video with the other frames zeroed).
//! - Text-to-video models (`in_channels = z`) take them training-free: after every step the
//!   latent frames whose pixel frames are all given are replaced by the given latents,
//!   noised to the scheduler's next noise level ("replacement", as in RePaint, Lugmayr et
//!   al. 2022, and video diffusion's reconstruction-guided sampling, Ho et al. 2022).
//!
//! Video-to-video editing (SDEdit, Meng et al. 2022) starts the sampler mid-schedule from
//! the input's latents noised to the strength, as diffusers' `WanVideoToVideoPipeline`.

use candle_core::{DType, Device, Tensor};

use crate::error::invalid;
use crate::Result;

/// Frames given to a generation.
#[derive(Debug, Clone)]
pub struct Given {
    /// (1, 3, T, H, W) in [-1, 1]; frames that are not given are zero (mid-grey).
    pub video: Tensor,
    /// Per pixel frame: given (true) or generated.
    pub mask: Vec<bool>,
}

impl Given {
    /// Checks the shapes: `video` is (1, 3, T, H, W) with T = mask.len().
    pub fn new(video: Tensor, mask: Vec<bool>) -> Result<Self> {
        let dims = video.dims().to_vec();
        if dims.len() != 5 || dims[0] != 1 || dims[1] != 3 || dims[2] != mask.len() {
            return invalid(format!("given frames have shape {dims:?}; expected (1, 3, {}, H, W)", mask.len()));
        }
        let video = masked_video(&video, &mask)?;
        Ok(Given { video, mask })
    }

    pub fn frames(&self) -> usize {
        self.mask.len()
    }

    /// The video with every frame that is not given replaced by the nearest given frame
    /// (earlier on a tie): what the replacement path encodes, so the causal VAE's
    /// context before a given latent frame looks like the video rather than grey.
    pub fn filled(&self) -> Result<Tensor> {
        let given: Vec<usize> = (0..self.mask.len()).filter(|&i| self.mask[i]).collect();
        if given.is_empty() {
            return Ok(self.video.clone());
        }
        let mut frames = Vec::with_capacity(self.mask.len());
        for i in 0..self.mask.len() {
            let nearest = *given.iter().min_by_key(|&&g| (g as isize - i as isize).unsigned_abs()).unwrap();
            frames.push(self.video.narrow(2, nearest, 1)?);
        }
        Ok(Tensor::cat(&frames, 2)?)
    }
}

/// SDEdit: the video to edit and how much of it to redo.
#[derive(Debug, Clone)]
pub struct Edit {
    /// (1, 3, T, H, W) in [-1, 1].
    pub video: Tensor,
    /// 0 keeps the input, 1 generates from pure noise.
    pub strength: f64,
}

/// The latent frames whose pixel frames are all given, for a VAE that compresses time by
/// `tf` causally: latent frame 0 is pixel frame 0, latent frame j >= 1 is pixel frames
/// tf (j - 1) + 1 ..= tf j.
pub fn latent_known(mask: &[bool], tf: usize) -> Vec<bool> {
    let f = (mask.len() - 1) / tf + 1;
    (0..f).map(|j| if j == 0 { mask[0] } else { mask[tf * (j - 1) + 1..=tf * j].iter().all(|&x| x) }).collect()
}

/// Wan's mask channels for a pixel-frame mask (WanImageToVideoPipeline.prepare_latents),
/// for a VAE that compresses time by `tf` (diffusers' `vae_scale_factor_temporal`, 4 for
/// Wan): the first frame's entry repeated `tf` times, then the entries grouped by `tf` per
/// latent frame: (tf, F) with F = (T - 1) / tf + 1, broadcast to (B, tf, F, h, w).
#[allow(clippy::too_many_arguments)]
pub fn mask_channels(
    mask: &[bool],
    tf: usize,
    b: usize,
    h: usize,
    w: usize,
    device: &Device,
    dtype: DType,
) -> candle_core::Result<Tensor> {
    let mut rep: Vec<f32> = vec![mask[0] as u8 as f32; tf];
    rep.extend(mask[1..].iter().map(|&x| x as u8 as f32));
    let f = rep.len() / tf;
    let t = Tensor::from_vec(rep, (f, tf), device)?.t()?.contiguous()?; // (tf, F)
    t.reshape((1, tf, f, 1, 1))?.broadcast_as((b, tf, f, h, w))?.to_dtype(dtype)?.contiguous()
}

/// Zeroes the frames that are not given: the video the conditioning latents are encoded
/// from (zero is mid-grey in [-1, 1], as Wan's image-to-video pipeline pads).
pub fn masked_video(video: &Tensor, mask: &[bool]) -> candle_core::Result<Tensor> {
    let m: Vec<f32> = mask.iter().map(|&x| x as u8 as f32).collect();
    let m = Tensor::from_vec(m, (1, 1, mask.len(), 1, 1), video.device())?.to_dtype(video.dtype())?;
    video.broadcast_mul(&m)
}

/// Replacement for text-to-video models: latents where `known` is set are replaced by the
/// given latents noised to `sigma` with the run's own initial noise.
pub struct Replace {
    /// Normalised latents of the (filled) given video, f32.
    pub x0: Tensor,
    /// The initial noise, f32.
    pub noise: Tensor,
    /// (1, 1, F, 1, 1): 1 for known latent frames.
    pub known: Tensor,
}

impl Replace {
    pub fn apply(&self, latents: &Tensor, sigma: f64) -> candle_core::Result<Tensor> {
        let target = ((&self.x0 * (1.0 - sigma))? + (&self.noise * sigma)?)?;
        let keep = self.known.affine(-1.0, 1.0)?;
        latents.broadcast_mul(&keep)? + target.broadcast_mul(&self.known)?
    }
}

/// The number of steps SDEdit runs and the index it starts at, as diffusers'
/// `WanVideoToVideoPipeline.get_timesteps`: int(steps * strength) steps from the end.
pub fn edit_start(steps: usize, strength: f64) -> usize {
    let init = ((steps as f64 * strength) as usize).min(steps);
    steps - init
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latent_frames_known_only_when_all_their_frames_are() {
        // 9 frames: latent 0 = frame 0, latent 1 = frames 1..=4, latent 2 = frames 5..=8.
        let mut m = vec![false; 9];
        m[0] = true;
        assert_eq!(latent_known(&m, 4), vec![true, false, false]);
        m[1..5].iter_mut().for_each(|x| *x = true);
        assert_eq!(latent_known(&m, 4), vec![true, true, false]);
        m[8] = true;
        assert_eq!(latent_known(&m, 4), vec![true, true, false]);
    }

    #[test]
    fn mask_channels_follow_wan_layout() {
        // First and last of 5 frames: latent 0 = [1,1,1,1] (the first frame four times),
        // latent 1 = frames 1..=4 = [0,0,0,1].
        let mut m = vec![false; 5];
        m[0] = true;
        m[4] = true;
        let t = mask_channels(&m, 4, 1, 1, 1, &Device::Cpu, DType::F32).unwrap();
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        // (1, 4, 2, 1, 1): channel-major.
        assert_eq!(v, vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0]);
        // A VAE that compresses time 2x: two channels, latent 0 = [1, 1], latent 1 = frames
        // 1..=2 = [0, 0], latent 2 = frames 3..=4 = [0, 1].
        let t = mask_channels(&m, 2, 1, 1, 1, &Device::Cpu, DType::F32).unwrap();
        assert_eq!(t.dims(), &[1, 2, 3, 1, 1]);
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, vec![1.0, 0.0, 0.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn filled_takes_the_nearest_given_frame() {
        let v: Vec<f32> = (0..5).flat_map(|i| vec![i as f32; 3]).collect();
        let video = Tensor::from_vec(v, (5, 3, 1, 1), &Device::Cpu)
            .unwrap()
            .permute((1, 0, 2, 3))
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let g = Given::new(video, vec![true, false, false, false, true]).unwrap();
        let f: Vec<f32> = g.filled().unwrap().narrow(1, 0, 1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(f, vec![0.0, 0.0, 0.0, 4.0, 4.0]);
    }

    #[test]
    fn sdedit_start_matches_diffusers() {
        assert_eq!(edit_start(20, 0.6), 8);
        assert_eq!(edit_start(20, 1.0), 0);
        assert_eq!(edit_start(20, 0.0), 20);
        assert_eq!(edit_start(3, 0.5), 2);
    }
}
