//! Text-to-video with a Wan-family diffusers folder, numerically following diffusers'
//! `WanPipeline.__call__` (pipelines/wan/pipeline_wan.py): prompt embeddings zero-padded
//! to `max_sequence_length`, seeded (or given) latents, the scheduler's timesteps with
//! classifier-free guidance, the two-expert switch at `boundary_ratio`, per-token
//! timesteps for `expand_timesteps`, then latent de-normalisation and VAE decode.
//!
//! Unlike diffusers, components are loaded one at a time and dropped when done (text
//! encoder, then each expert, then the VAE), so peak memory is the largest component
//! rather than their sum, and the VAE decodes one latent frame at a time.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use tessera_models::clip_vision::{ClipImageProcessorConfig, ClipVisionModel};
use tessera_models::tokenizer::WanTokenizer;
use tessera_models::umt5::{encode_prompts, UMT5EncoderModel};
use tessera_models::wan::cache::{BlockCache, Policy};
use tessera_models::wan::config::WanTransformerConfig;
use tessera_models::wan::transformer::WanTransformer3DModel;
use tessera_models::wan::vae::{AutoencoderKLWan, AutoencoderKLWanConfig, Tiling};

use crate::cache::StepCache;
use crate::conditioning::{edit_start, latent_known, mask_channels, Edit, Given, Replace};
use crate::error::invalid;
use crate::guidance;
use crate::model_index::ModelIndex;
use crate::noise;
use crate::quant::Quantize;
use crate::sampler::{sample, Denoiser};
use crate::scheduler::Scheduler;
use crate::Result;

/// What to generate. Defaults are diffusers' `WanPipeline.__call__` defaults.
#[derive(Debug, Clone)]
pub struct GenerateParams {
    pub prompt: String,
    pub negative_prompt: String,
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    pub steps: usize,
    pub guidance: f64,
    /// Guidance for the second (low-noise) expert; defaults to `guidance`.
    pub guidance_2: Option<f64>,
    pub max_sequence_length: usize,
    pub seed: u64,
    /// Initial noise (1, C, T', H', W') instead of seeded noise.
    pub latents: Option<Tensor>,
    /// Overrides the scheduler config's shift.
    pub flow_shift: Option<f64>,
    /// Frames that are given (image-to-video, extension, keyframes...): see
    /// [`crate::conditioning`]. Same size and frame count as the generation.
    pub given: Option<Given>,
    /// Video-to-video (SDEdit) from this video at this strength.
    pub edit: Option<Edit>,
    /// Step caching (off when `None`).
    pub cache: Option<StepCache>,
    /// Record MagCache's magnitude ratios instead (nothing skipped): reported in
    /// [`Progress::Cached`].
    pub calibrate_cache: bool,
    /// Quantize the transformer's block linear layers and the text encoder's layers at
    /// load.
    pub quantize: Option<Quantize>,
    /// The transformers' weights from GGUF files instead of the folder's (`transformer`,
    /// then `transformer_2` of a two-expert model); the folder still gives their configs.
    pub gguf: Vec<PathBuf>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            negative_prompt: String::new(),
            width: 832,
            height: 480,
            frames: 81,
            steps: 50,
            guidance: 5.0,
            guidance_2: None,
            max_sequence_length: 512,
            seed: 0,
            latents: None,
            flow_shift: None,
            given: None,
            edit: None,
            cache: None,
            calibrate_cache: false,
            quantize: None,
            gguf: Vec::new(),
        }
    }
}

/// Progress events, for the binary or server to render as it likes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress<'a> {
    /// A stage starts: "load text encoder", "encode prompt", "load transformer", ...
    Stage(&'a str),
    /// Denoising step `step` of `total` is done.
    Step { step: usize, total: usize },
    /// `done` of `total` output frames are decoded.
    Decoded { done: usize, total: usize },
    /// One expert's denoising is done with a step cache (or calibration): passes through
    /// the transformer's blocks computed and skipped (guidance counts two a step), and
    /// the magnitude ratios calibration measured at each of its steps (conditional pass).
    Cached { computed: usize, skipped: usize, ratios: &'a [f64] },
}

pub struct WanPipeline {
    dir: PathBuf,
    index: ModelIndex,
    transformer_config: WanTransformerConfig,
    vae_config: AutoencoderKLWanConfig,
    device: Device,
    dtype: DType,
    vae_tiling: VaeTiling,
}

/// Whether the VAE encodes and decodes in overlapping spatial tiles (`--vae-tiling`;
/// tessera-models `wan/vae/tiling.rs`, diffusers' `enable_tiling` with its default tiles
/// of 256 pixels every 192).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VaeTiling {
    /// Tiles for frames larger than [`VaeTiling::AUTO_PIXELS`], whole frames otherwise.
    #[default]
    Auto,
    On,
    Off,
}

impl VaeTiling {
    /// Past 1280x720 (Wan's largest trained size) `auto` tiles: a 2048x2048 frame decoded
    /// whole needs tens of GB (BENCHMARKS.md).
    pub const AUTO_PIXELS: usize = 1280 * 720;
    pub const NAMES: &'static str = "auto, on, off";

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "on" => Some(Self::On),
            "off" => Some(Self::Off),
            _ => None,
        }
    }

    /// Whether frames of `height` x `width` pixels are tiled.
    pub fn tiles(self, height: usize, width: usize) -> bool {
        match self {
            Self::Auto => height * width > Self::AUTO_PIXELS,
            Self::On => true,
            Self::Off => false,
        }
    }
}

impl WanPipeline {
    /// Reads the folder's index and configs (no weights yet) and checks that every
    /// component this pipeline needs is there.
    pub fn open(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let index = ModelIndex::load(dir)?;
        for c in ["tokenizer", "text_encoder", "vae", "scheduler", "transformer"] {
            index.require(c)?;
        }
        if index.boundary_ratio.is_some() {
            index.require("transformer_2")?;
        }
        let transformer_config = WanTransformerConfig::load(&dir.join("transformer/config.json"))?;
        let vae_config = AutoencoderKLWanConfig::load(&dir.join("vae/config.json"))?;
        // Fail now, not after minutes of work, on a scheduler we cannot run or weights
        // that are not there.
        let pipeline = Self {
            dir: dir.to_path_buf(),
            index,
            transformer_config,
            vae_config,
            device: device.clone(),
            dtype,
            vae_tiling: VaeTiling::Auto,
        };
        pipeline.scheduler()?;
        // (The transformers' weights may come from `--gguf` files: `validate` checks them.)
        for c in ["text_encoder", "vae"] {
            if pipeline.index.has(c) {
                tessera_models::loading::safetensors_files(&dir.join(c))?;
            }
        }
        Ok(pipeline)
    }

    /// A fresh scheduler of the class model_index.json names (as diffusers loads it).
    pub fn scheduler(&self) -> Result<Scheduler> {
        let class = self.index.require("scheduler")?;
        Ok(Scheduler::from_file_as(&self.dir.join("scheduler/scheduler_config.json"), class)?)
    }

    /// When the VAE tiles (default [`VaeTiling::Auto`]).
    pub fn set_vae_tiling(&mut self, tiling: VaeTiling) {
        self.vae_tiling = tiling;
    }

    /// The VAE, tiling frames of `height` x `width` pixels or not as [`VaeTiling::tiles`] says;
    /// `encoder`: false loads the decoder alone (decoding needs nothing else).
    fn load_vae(&self, height: usize, width: usize, encoder: bool) -> Result<AutoencoderKLWan> {
        let dir = self.dir.join("vae");
        let mut vae = if encoder {
            AutoencoderKLWan::load(&dir, self.dtype, &self.device)?
        } else {
            AutoencoderKLWan::load_decoder(&dir, self.dtype, &self.device)?
        };
        if self.vae_tiling.tiles(height, width) {
            vae.set_tiling(Some(Tiling::default()))?;
        }
        Ok(vae)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn index(&self) -> &ModelIndex {
        &self.index
    }

    pub fn temporal_factor(&self) -> usize {
        self.vae_config.temporal_factor()
    }

    /// Pixels per latent cell times the transformer's patch: sizes must be multiples.
    pub fn size_multiple(&self) -> usize {
        let p = &self.transformer_config.patch_size;
        self.vae_config.spatial_factor() * p[1].max(p[2])
    }

    /// (1, C, T', H', W') for the requested size and frame count.
    pub fn latent_shape(&self, p: &GenerateParams) -> [usize; 5] {
        let s = self.vae_config.spatial_factor();
        [
            1,
            self.transformer_config.out_channels(),
            (p.frames - 1) / self.temporal_factor() + 1,
            p.height / s,
            p.width / s,
        ]
    }

    /// Checks every user-facing parameter before any work starts.
    pub fn validate(&self, p: &GenerateParams) -> Result<()> {
        let m = self.size_multiple();
        if p.width == 0 || p.height == 0 || !p.width.is_multiple_of(m) || !p.height.is_multiple_of(m) {
            let round = |x: usize| (x.max(1)).div_ceil(m) * m;
            return invalid(format!(
                "size {}x{} is not a multiple of {m} (the VAE's spatial stride times the patch size) in both sides; try {}x{}",
                p.width,
                p.height,
                round(p.width),
                round(p.height)
            ));
        }
        let tf = self.temporal_factor();
        if p.frames == 0 || !(p.frames - 1).is_multiple_of(tf) {
            let below = p.frames.saturating_sub(1) / tf * tf + 1;
            let above = below + tf;
            return invalid(format!(
                "--frames {} is not of the form {tf}k+1; the nearest valid counts are {below} and {above}",
                p.frames
            ));
        }
        if p.steps == 0 {
            return invalid("--steps must be at least 1");
        }
        if p.max_sequence_length == 0 {
            return invalid("--max-sequence-length must be at least 1");
        }
        let experts = if self.index.boundary_ratio.is_some() { 2 } else { 1 };
        if p.gguf.len() > experts {
            return invalid(format!(
                "--gguf is given {} times but {} has {experts} transformer{} (give one file per transformer, high-noise first)",
                p.gguf.len(),
                self.dir.display(),
                if experts == 1 { "" } else { "s" }
            ));
        }
        for (i, name) in ["transformer", "transformer_2"].into_iter().enumerate().take(experts) {
            match p.gguf.get(i) {
                Some(g) => {
                    let cfg = WanTransformerConfig::load(&self.dir.join(name).join("config.json"))?;
                    WanTransformer3DModel::check_gguf(&cfg, &tessera_models::gguf::GgufFile::open(g)?)?;
                }
                None => WanTransformer3DModel::check_weights(&self.dir.join(name))?,
            }
        }
        if let Some(c) = &p.cache {
            if let Err(e) = crate::cache::check_threshold(c.threshold()) {
                return invalid(e);
            }
            c.policy(&self.dir, p.steps)?;
        }
        for (name, g) in [("--guidance", Some(p.guidance)), ("--guidance-2", p.guidance_2)] {
            if let Some(g) = g {
                if !g.is_finite() || g < 0.0 {
                    return invalid(format!("{name} must be a finite number >= 0, got {g}"));
                }
            }
        }
        let want_video = [1, 3, p.frames, p.height, p.width];
        if let Some(g) = &p.given {
            if g.video.dims() != want_video {
                return invalid(format!("given frames have shape {:?}, expected {want_video:?}", g.video.dims()));
            }
        }
        if let Some(e) = &p.edit {
            if e.video.dims() != want_video {
                return invalid(format!("the video to edit has shape {:?}, expected {want_video:?}", e.video.dims()));
            }
            if !(0.0..=1.0).contains(&e.strength) {
                return invalid(format!("--strength must be between 0 and 1, got {}", e.strength));
            }
        }
        if let Some(l) = &p.latents {
            let want = self.latent_shape(p);
            if l.dims() != want {
                return invalid(format!(
                    "latents have shape {:?} but {}x{} with {} frames needs {:?}",
                    l.dims(),
                    p.width,
                    p.height,
                    p.frames,
                    want
                ));
            }
        }
        Ok(())
    }

    /// Prompt (and negative prompt, when guidance is on) embeddings, each (1, L, D) in the
    /// pipeline dtype. The text encoder is dropped before returning.
    pub fn encode_text(
        &self,
        p: &GenerateParams,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(Tensor, Option<Tensor>)> {
        progress(Progress::Stage("load text encoder"));
        let tokenizer = WanTokenizer::from_file(&self.dir.join("tokenizer/tokenizer.json"))?;
        let encoder = UMT5EncoderModel::load_quantized(
            &self.dir.join("text_encoder"),
            self.dtype,
            &self.device,
            p.quantize.map(Quantize::ggml),
        )?;
        progress(Progress::Stage("encode prompt"));
        let any_guidance = guidance::enabled(p.guidance) || p.guidance_2.is_some_and(guidance::enabled);
        let cond = encode_prompts(&tokenizer, &encoder, &[&p.prompt], p.max_sequence_length, &self.device)?
            .to_dtype(self.dtype)?;
        let uncond = if any_guidance {
            Some(
                encode_prompts(&tokenizer, &encoder, &[&p.negative_prompt], p.max_sequence_length, &self.device)?
                    .to_dtype(self.dtype)?,
            )
        } else {
            None
        };
        Ok((cond, uncond))
    }

    /// Initial noise: given latents or seeded Gaussian noise, as f32 (the reference keeps
    /// latents in f32 and casts only the transformer input).
    pub fn initial_latents(&self, p: &GenerateParams) -> Result<Tensor> {
        match &p.latents {
            Some(l) => Ok(l.to_dtype(DType::F32)?.to_device(&self.device)?),
            None => Ok(noise::randn(p.seed, self.latent_shape(p).to_vec(), &Device::Cpu)?.to_device(&self.device)?),
        }
    }

    /// Whether the transformer has the image-to-video layout (in_channels = 2 z + tf, tf
    /// the VAE's temporal factor: 4 for Wan): it reads a frame mask and conditioning latents.
    pub fn has_mask_channels(&self) -> bool {
        self.transformer_config.in_channels == 2 * self.transformer_config.out_channels() + self.temporal_factor()
    }

    /// Encodes a (1, 3, T, H, W) video in [-1, 1] to normalised latents (f32).
    fn encode_latents(&self, vae: &AutoencoderKLWan, video: &Tensor) -> Result<Tensor> {
        let z = vae.encode(&video.to_dtype(self.dtype)?.to_device(&self.device)?)?;
        Ok(vae.normalize_latents(&z)?.to_dtype(DType::F32)?)
    }

    /// Everything the VAE encoder contributes before denoising, with the VAE loaded once
    /// (and dropped before the transformer loads):
    /// - for image-to-video-layout transformers, the mask and conditioning channels as
    ///   WanImageToVideoPipeline builds them (with no frames given: a zero mask and the
    ///   latents of an all-zero video);
    /// - for text-to-video transformers with given frames, the replacement latents;
    /// - for an edit, the input's latents.
    fn prepare(&self, p: &GenerateParams, noise: &Tensor, progress: &mut dyn FnMut(Progress)) -> Result<Prepared> {
        let layout = self.has_mask_channels();
        // Wan 2.2 TI2V given only its first frame: diffusers' WanImageToVideoPipeline with
        // expand_timesteps (the first latent frame clean, its tokens at timestep 0).
        let ti2v_first = !layout
            && self.index.expand_timesteps
            && p.given.as_ref().is_some_and(|g| g.mask[0] && g.mask[1..].iter().all(|&m| !m));
        let replace_needed = !layout
            && !ti2v_first
            && p.given.as_ref().is_some_and(|g| latent_known(&g.mask, self.temporal_factor()).iter().any(|&k| k));
        if !layout && !replace_needed && !ti2v_first && p.edit.is_none() {
            return Ok(Prepared::default());
        }
        progress(Progress::Stage("encode conditioning"));
        let vae = self.load_vae(p.height, p.width, true)?;
        let mut out = Prepared::default();
        if layout {
            let (mask, video) = match &p.given {
                Some(g) => (g.mask.clone(), g.video.clone()),
                None => (
                    vec![false; p.frames],
                    Tensor::zeros((1, 3, p.frames, p.height, p.width), DType::F32, &self.device)?,
                ),
            };
            let cond = self.encode_latents(&vae, &video)?.to_dtype(self.dtype)?;
            let (_, _, _, h, w) = cond.dims5()?;
            let m = mask_channels(&mask, self.temporal_factor(), 1, h, w, &self.device, self.dtype)?;
            out.extra = Some(Tensor::cat(&[&m, &cond], 1)?);
        } else if let (true, Some(g)) = (ti2v_first, &p.given) {
            out.first_frame = Some(self.encode_latents(&vae, &g.video.narrow(2, 0, 1)?)?);
        } else if let (true, Some(g)) = (replace_needed, &p.given) {
            let known = latent_known(&g.mask, self.temporal_factor());
            let f = known.len();
            let known = Tensor::from_vec(
                known.iter().map(|&k| k as u8 as f32).collect::<Vec<_>>(),
                (1, 1, f, 1, 1),
                &self.device,
            )?;
            out.replace = Some(Replace { x0: self.encode_latents(&vae, &g.filled()?)?, noise: noise.clone(), known });
        }
        if let Some(e) = &p.edit {
            out.edit = Some(self.encode_latents(&vae, &e.video)?);
        }
        drop(vae);
        if self.transformer_config.image_dim.is_some() {
            out.image = Some(self.image_features(p, progress)?);
        }
        Ok(out)
    }

    /// CLIP features of the given first frame (and, for first-and-last-frame checkpoints
    /// with `pos_embed_seq_len`, the last frame), as WanImageToVideoPipeline.encode_image:
    /// the image encoder's penultimate hidden states. The frame is the one given to the
    /// video (already fitted to its size), where diffusers takes the image as passed.
    fn image_features(&self, p: &GenerateParams, progress: &mut dyn FnMut(Progress)) -> Result<Tensor> {
        let Some(g) = p.given.as_ref().filter(|g| g.mask[0]) else {
            return invalid("this model (Wan 2.1 image-to-video) needs an image: pass --image");
        };
        self.index.require("image_encoder")?;
        progress(Progress::Stage("encode image"));
        let enc = ClipVisionModel::load(&self.dir.join("image_encoder"), self.dtype, &self.device)?;
        let proc_path = self.dir.join("image_processor/preprocessor_config.json");
        let proc = if proc_path.is_file() {
            ClipImageProcessorConfig::load(&proc_path)?
        } else {
            serde_json::from_str("{}").map_err(|e| crate::Error::Invalid(e.to_string()))?
        };
        let mut frames = vec![0];
        let last = g.mask.len() - 1;
        if last > 0 && g.mask[last] && self.transformer_config.pos_embed_seq_len.is_some() {
            frames.push(last);
        }
        let mut feats = Vec::new();
        for i in frames {
            // (1, 3, 1, H, W) in [-1, 1] -> RGB8 rows, as the image the user gave.
            let f = g.video.narrow(2, i, 1)?.squeeze(2)?.squeeze(0)?.permute((1, 2, 0))?.to_dtype(DType::F32)?;
            let (h, w, _) = f.dims3()?;
            let rgb: Vec<u8> = f
                .flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .map(|v| ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8)
                .collect();
            let px = proc.preprocess(&rgb, w, h, enc.config().image_size, &self.device)?.to_dtype(self.dtype)?;
            feats.push(enc.forward(&px)?);
        }
        Ok(Tensor::cat(&feats, 0)?.to_dtype(self.dtype)?)
    }

    /// Runs the sampler and returns the final latents (1, C, T', H', W') in f32.
    pub fn denoise(
        &self,
        p: &GenerateParams,
        cond: &Tensor,
        uncond: Option<&Tensor>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Tensor> {
        let mut scheduler = self.scheduler()?;
        if let Some(shift) = p.flow_shift {
            scheduler.set_shift(shift)?;
        }
        scheduler.set_timesteps(p.steps)?;
        // A stochastic sampler's fresh noise follows the seed too (not the initial noise's stream).
        scheduler.set_noise_seed(p.seed ^ 0x5DE5_7EED);
        let noise = self.initial_latents(p)?;
        let timesteps = scheduler.timesteps().to_vec();
        let n = timesteps.len();
        let prepared = self.prepare(p, &noise, progress)?;
        let extra = prepared.extra;
        let replace = prepared.replace;
        let image = prepared.image;
        let first_frame = prepared.first_frame;

        // SDEdit: start mid-schedule from the input's latents noised to that step.
        let mut begin = 0;
        let mut latents = noise;
        if let (Some(e), Some(x0)) = (&p.edit, &prepared.edit) {
            begin = edit_start(n, e.strength);
            if begin >= n {
                return Ok(x0.clone()); // strength 0: nothing to redo
            }
            // As WanVideoToVideoPipeline: no begin index; the scheduler finds its place
            // from the first timestep it is given.
            latents = scheduler.scale_noise(x0, &latents, timesteps[begin])?;
        }
        // Noise level after i steps (sigmas has n + 1 entries, the last 0).
        let sigmas: Vec<f64> = (0..=n).map(|i| scheduler.sigma_at(i).unwrap_or(0.0)).collect();
        let sigma = |i: usize| sigmas[i.min(n)];
        if let Some(r) = &replace {
            latents = r.apply(&latents, sigma(begin))?;
        }

        // Split the steps between the experts: t >= boundary goes to `transformer`.
        let boundary = self.index.boundary_ratio.map(|r| r * scheduler.num_train_timesteps() as f64);
        let split = match boundary {
            Some(b) => timesteps.iter().take_while(|&&t| t >= b).count(),
            None => n,
        };
        let policy = match (p.calibrate_cache, &p.cache) {
            (true, _) => Some(Policy::Calibrate),
            (false, Some(c)) => Some(c.policy(&self.dir, n)?),
            (false, None) => None,
        };
        let g2 = p.guidance_2.unwrap_or(p.guidance);
        let segments =
            [("transformer", begin.min(split)..split, p.guidance), ("transformer_2", begin.max(split)..n, g2)];
        for (name, range, g) in segments {
            if range.is_empty() {
                continue;
            }
            progress(Progress::Stage(if name == "transformer" { "load transformer" } else { "load transformer_2" }));
            let model = WanTransformer3DModel::load_from(
                &self.dir.join(name),
                p.gguf.get(usize::from(name == "transformer_2")).map(PathBuf::as_path),
                self.dtype,
                &self.device,
                p.quantize.map(Quantize::ggml),
            )?;
            let denoiser = WanDenoiser {
                model: &model,
                extra: extra.as_ref(),
                image: image.as_ref(),
                first_frame: first_frame.as_ref(),
                cond,
                uncond: if guidance::enabled(g) { uncond } else { None },
                guidance: g,
                expand_timesteps: self.index.expand_timesteps,
                dtype: self.dtype,
                caches: policy
                    .as_ref()
                    .map(|pol| RefCell::new([BlockCache::new(pol.clone()), BlockCache::new(pol.clone())])),
            };
            progress(Progress::Stage("denoise"));
            latents = sample(&denoiser, &mut scheduler, latents, range, &mut |i, x| {
                progress(Progress::Step { step: i - begin, total: n - begin });
                match &replace {
                    Some(r) => Ok(r.apply(&x, sigma(i))?),
                    None => Ok(x),
                }
            })?;
            if let Some(c) = denoiser.caches {
                let [cond, uncond] = c.into_inner();
                let (computed, skipped) = (cond.computed + uncond.computed, cond.skipped + uncond.skipped);
                progress(Progress::Cached { computed, skipped, ratios: &cond.ratios });
            }
        }
        if let Some(c) = &first_frame {
            latents = with_first_frame(&latents, c)?;
        }
        Ok(latents)
    }

    /// Decodes final latents to frames (T, H, W, 3) f32 in [0, 1], exactly diffusers'
    /// `output_type="np"`. The VAE streams one latent frame at a time.
    pub fn decode(&self, latents: &Tensor, progress: &mut dyn FnMut(Progress)) -> Result<Tensor> {
        progress(Progress::Stage("load vae"));
        let s = self.vae_config.spatial_factor();
        let vae = self.load_vae(latents.dim(3)? * s, latents.dim(4)? * s, false)?;
        progress(Progress::Stage("decode"));
        let z = vae.denormalize_latents(&latents.to_dtype(self.dtype)?)?;
        let t_lat = z.dim(2)?;
        let total = (t_lat - 1) * self.temporal_factor() + 1;
        let mut chunks: Vec<Tensor> = Vec::new();
        let mut done = 0;
        vae.decode_streaming(&z, &mut |chunk: Tensor| {
            // (1, 3, t, H, W) in [-1, 1] -> (t, H, W, 3) in [0, 1]
            let frames = ((chunk.to_dtype(DType::F32)? / 2.0)? + 0.5)?
                .clamp(0f32, 1f32)?
                .squeeze(0)?
                .permute((1, 2, 3, 0))?
                .to_device(&Device::Cpu)?;
            done += frames.dim(0)?;
            chunks.push(frames);
            progress(Progress::Decoded { done, total });
            Ok(())
        })?;
        Ok(Tensor::cat(&chunks, 0)?)
    }

    /// The whole text-to-video run: frames (T, H, W, 3) in [0, 1].
    pub fn generate(&self, p: &GenerateParams, progress: &mut dyn FnMut(Progress)) -> Result<Tensor> {
        self.validate(p)?;
        let (cond, uncond) = self.encode_text(p, progress)?;
        let latents = self.denoise(p, &cond, uncond.as_ref(), progress)?;
        self.decode(&latents, progress)
    }
}

/// `x` with latent frame 0 replaced by `c` (1, z, 1, h, w), in x's dtype.
fn with_first_frame(x: &Tensor, c: &Tensor) -> Result<Tensor> {
    let t = x.dim(2)?;
    let c = c.to_dtype(x.dtype())?;
    if t == 1 {
        return Ok(c);
    }
    Ok(Tensor::cat(&[&c, &x.narrow(2, 1, t - 1)?], 2)?)
}

/// What the VAE encoder prepared: see [`WanPipeline::prepare`].
#[derive(Default)]
struct Prepared {
    extra: Option<Tensor>,
    image: Option<Tensor>,
    first_frame: Option<Tensor>,
    replace: Option<Replace>,
    edit: Option<Tensor>,
}

/// One expert with classifier-free guidance, as the body of diffusers' denoising loop.
struct WanDenoiser<'a> {
    model: &'a WanTransformer3DModel,
    /// Mask and conditioning-latent channels appended to the noisy latents, for models
    /// with the image-to-video layout.
    extra: Option<&'a Tensor>,
    /// CLIP image features for Wan 2.1 image-to-video checkpoints (`image_dim` set).
    image: Option<&'a Tensor>,
    /// Wan 2.2 TI2V image-to-video: the first frame's clean latents (1, z, 1, h, w); the
    /// model sees them in place of latent frame 0, whose tokens get timestep 0.
    first_frame: Option<&'a Tensor>,
    cond: &'a Tensor,
    uncond: Option<&'a Tensor>,
    guidance: f64,
    expand_timesteps: bool,
    dtype: DType,
    /// Step caches of the conditional and the unconditional pass.
    caches: Option<RefCell<[BlockCache; 2]>>,
}

impl Denoiser for WanDenoiser<'_> {
    fn velocity(&self, x: &Tensor, t: f64, step: usize) -> Result<Tensor> {
        let x = match self.first_frame {
            Some(c) => with_first_frame(x, c)?,
            None => x.clone(),
        };
        let x = &x;
        let x_in = match self.extra {
            Some(e) => Tensor::cat(&[&x.to_dtype(self.dtype)?, e], 1)?,
            None => x.to_dtype(self.dtype)?,
        };
        let timestep = if self.expand_timesteps {
            // Wan 2.2 TI2V: one timestep per latent token (seq_len = T' * H'/2 * W'/2),
            // `mask * t`: all t for text-to-video; 0 for latent frame 0's tokens when the
            // first frame is given.
            let (_, _, tl, hl, wl) = x.dims5()?;
            let p = &self.model.config().patch_size;
            let per_frame = (hl / p[1]) * (wl / p[2]);
            let tokens = (tl / p[0]) * per_frame;
            let mut ts = vec![t as f32; tokens];
            if self.first_frame.is_some() {
                ts[..per_frame].iter_mut().for_each(|v| *v = 0.0);
            }
            Tensor::from_vec(ts, (1, tokens), x.device())?
        } else {
            Tensor::full(t as f32, 1, x.device())?
        };
        let mut caches = self.caches.as_ref().map(|c| c.borrow_mut());
        let mut pass = |branch: usize, text: &Tensor| match caches.as_deref_mut() {
            Some(c) => self.model.forward_cached(&x_in, &timestep, text, self.image, Some((&mut c[branch], step))),
            None => self.model.forward(&x_in, &timestep, text, self.image),
        };
        let cond = pass(0, self.cond)?;
        let v = match self.uncond {
            Some(uncond) => {
                let u = pass(1, uncond)?;
                guidance::cfg(&cond, &u, self.guidance)?
            }
            None => cond,
        };
        Ok(v)
    }
}
