//! One TOML file per run. Every field has a default, and the defaults are the documented
//! recipe (README "Training"), so a config need only say what it changes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The run folder: checkpoints/, log.csv, curves.png, model/ (the exported folder).
    pub out: PathBuf,
    /// What to train: "vae" (the video autoencoder, from scratch) or "transformer" (the
    /// diffusion transformer and its text encoder, on a trained VAE's latents).
    #[serde(default)]
    pub stage: Stage,
    /// The transformer stage's frozen VAE, in the diffusers layout (a folder with
    /// config.json and weights; the VAE stage writes one in `out/model/vae`).
    #[serde(default)]
    pub vae: Option<PathBuf>,
    /// Start from another run's trained weights instead of a random initialisation: a
    /// checkpoint file of a run of the same stage and sizes (`checkpoints/step_N.safetensors`).
    /// Its weights become the new run's weights and EMA; the optimizer, the step count and
    /// the learning-rate schedule start afresh (fine-tuning). Ignored when `--resume` finds
    /// a checkpoint of this run.
    #[serde(default)]
    pub init: Option<PathBuf>,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "d_steps")]
    pub steps: usize,
    #[serde(default = "d_batch")]
    pub batch: usize,
    #[serde(default = "d_lr")]
    pub lr: f64,
    #[serde(default = "d_warmup")]
    pub warmup: usize,
    #[serde(default = "d_wd")]
    pub weight_decay: f64,
    #[serde(default = "d_clip")]
    pub grad_clip: f64,
    #[serde(default = "d_ema")]
    pub ema: f64,
    #[serde(default = "d_ckpt")]
    pub checkpoint_every: usize,
    /// Every this many steps (and at the end) a contact sheet of the EMA weights' output
    /// goes to `out/samples/` (the VAE stage: round trips of four held-out clips). 0: none.
    #[serde(default = "d_sample_every")]
    pub sample_every: usize,
    /// The precision of the exported transformer and text encoder weights: "f32", "f16"
    /// or "bf16" (training is always f32). Half precision halves the folder, which is what
    /// lets a wider built-in model fit the repository's 40 MB; the engine and diffusers
    /// load either. The VAE is copied as it is.
    #[serde(default)]
    pub export_dtype: ExportDType,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub flow: FlowConfig,
    #[serde(default)]
    pub transformer: TransformerSize,
    #[serde(default)]
    pub text: TextSize,
    #[serde(default)]
    pub autoencoder: VaeSize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportDType {
    #[default]
    F32,
    F16,
    Bf16,
}

impl ExportDType {
    pub fn dtype(self) -> candle_core::DType {
        match self {
            ExportDType::F32 => candle_core::DType::F32,
            ExportDType::F16 => candle_core::DType::F16,
            ExportDType::Bf16 => candle_core::DType::BF16,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Vae,
    #[default]
    Transformer,
}

/// The VAE stage's model: a Wan 2.1 VAE (8x spatial, 4x temporal compression).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaeSize {
    #[serde(default = "d_vae_base")]
    pub base_dim: usize,
    #[serde(default = "d_vae_z")]
    pub z_dim: usize,
    #[serde(default = "d_vae_mult")]
    pub dim_mult: Vec<usize>,
    #[serde(default = "d_vae_res")]
    pub num_res_blocks: usize,
    /// Weight of the KL term (the posterior stays near a unit Gaussian).
    #[serde(default = "d_vae_kl")]
    pub kl: f64,
    /// At the start of a run (fresh or `init`), set the bias of the encoder's log-variance
    /// outputs to this. The posterior's noise is what the decoder is trained on: at log-variance
    /// 0 (a random initialisation) it is as large as the latents themselves, the decoder
    /// learns to blur, and a tiny KL weight never pushes it down; -6 (std 0.05) starts it
    /// nearly deterministic. Unset: left as initialised.
    #[serde(default)]
    pub logvar_init: Option<f64>,
    /// Extra weight of object pixels in the reconstruction loss (world data): a pixel near a
    /// palette colour (the world's objects, which no scene colour comes near), or next to
    /// one, counts 1 + this. The objects are 1 to 3% of a frame, so under plain MSE a
    /// decoder learns floors and skies long before it learns them. 0: plain MSE.
    #[serde(default)]
    pub object_weight: f64,
    /// Wan 2.2's residual layout (`is_residual`): every down block adds a parameter-free
    /// shortcut of its input folded to the block's output size (space and time to
    /// channels, then averaged), every up block its input unfolded by repetition (diffusers'
    /// AvgDown3D / DupUp3D). From the first step a pooled copy of the frames reaches the
    /// latents and an upsampled copy of the latents the output, so a VAE trained from
    /// scratch draws colours and large shapes early and its resamplers learn only the rest.
    #[serde(default)]
    pub residual: bool,
    /// Noise-augmented decoding (RAE, Zheng et al. 2025, "Diffusion Transformers with
    /// Representation Autoencoders", sec. 3): each sample's latents get Gaussian noise of
    /// std `u * decoder_noise` times each channel's std over the batch (u uniform in 0..1,
    /// per sample) before the decoder, so the decoder learns to read latents that are
    /// off by as much as a diffusion model's samples are. Without it the decoder of a
    /// nearly deterministic posterior turns an error of a fifth of the latents' std into
    /// wrong colours everywhere (MODEL_CARD, "Known failures"). 0: off.
    #[serde(default)]
    pub decoder_noise: f64,
    /// Extra weight of the reconstruction error's green-magenta part, G - (R + B) / 2 (with
    /// the object weights). The world's colours vary least along that axis (its variance
    /// is a fifth of luminance's and a thirteenth of blue-orange's, on world frames), and
    /// an autoencoder trained by squared error learns directions in order of their variance
    /// (the linear autoencoder's dynamics, Baldi & Hornik 1989; Saxe et al. 2014): in
    /// 1,100 steps the earlier VAEs learned none of it, so green came back grey, yellow
    /// and red orange, purple blue (MODEL_CARD, "Known failures"). 0: plain RGB error.
    #[serde(default)]
    pub chroma_weight: f64,
    /// Start the residual VAE as an average-and-repeat autoencoder that keeps colour
    /// (crate::vae::init_carry): zero residual branches, carry channels through Wan 2.2's
    /// shortcuts. Needs `residual = true`. false: the plain random start.
    #[serde(default)]
    pub carry_init: bool,
    /// Which downsampling levels also halve time (diffusers' `temperal_downsample`, one
    /// entry per level after the first). Unset: the last two, 4x temporal compression as
    /// Wan's [false, true, true]. `[false, true]` on a [1, 2, 2] VAE compresses time 2x: a
    /// ball that crosses its own width in two frames at 12 fps stays two latent frames
    /// apart instead of smearing across one (issue 28).
    #[serde(default)]
    pub temporal_downsample: Option<Vec<bool>>,
    /// Weight of a second reconstruction term on the frame-to-frame differences, mean of
    /// ((x̂[t+1] - x̂[t]) - (x[t+1] - x[t]))^2 (with the object weights of the later
    /// frame). A decoder that starts by repeating each latent frame (the carry start)
    /// shows frames that repeat while things move; squared error on the frames barely
    /// notices a small object one frame late, this term counts it twice over. 0: off.
    #[serde(default)]
    pub motion_weight: f64,
    /// Width of the decoder's first level (diffusers' `decoder_base_dim`, as Wan 2.2's
    /// TI2V VAE): the decoder is 1x1 ... dim_mult times this, the encoder base_dim. The
    /// decoder draws the shapes back from the latents and the encoder only has to keep
    /// them, so width is worth more there (issue 28). Unset: base_dim.
    #[serde(default)]
    pub decoder_base_dim: Option<usize>,
    /// Train only the decoder (and post_quant_conv) of this VAE against a fixed encoder: a
    /// VAE folder (config.json and weights, e.g. a VAE run's out/model/vae) whose encoder
    /// and quant_conv are loaded and frozen, and whose latents_mean / latents_std the export
    /// keeps. Every latent is then what that VAE gives, so a transformer trained on that
    /// VAE's latents works with this run's decoder. Its sizes (base_dim, z_dim, dim_mult,
    /// num_res_blocks, temporal_downsample, residual) must match this section's.
    #[serde(default)]
    pub frozen_encoder: Option<PathBuf>,
}

impl VaeSize {
    /// The levels that halve time (see `temporal_downsample`).
    pub fn temporal(&self) -> Vec<bool> {
        let downs = self.dim_mult.len().saturating_sub(1);
        match &self.temporal_downsample {
            Some(t) => t.clone(),
            None => (0..downs).map(|i| i + 2 >= downs).collect(),
        }
    }

    /// Frames per latent frame after the first.
    pub fn temporal_factor(&self) -> usize {
        1 << self.temporal().iter().filter(|&&t| t).count()
    }
}

fn d_vae_base() -> usize {
    32
}
fn d_vae_z() -> usize {
    16
}
fn d_vae_mult() -> Vec<usize> {
    vec![1, 2, 4, 4]
}
fn d_vae_res() -> usize {
    1
}
fn d_vae_kl() -> f64 {
    1e-6
}

impl Default for VaeSize {
    fn default() -> Self {
        VaeSize {
            base_dim: d_vae_base(),
            z_dim: d_vae_z(),
            dim_mult: d_vae_mult(),
            num_res_blocks: d_vae_res(),
            kl: d_vae_kl(),
            logvar_init: None,
            object_weight: 0.0,
            residual: false,
            decoder_noise: 0.0,
            chroma_weight: 0.0,
            carry_init: false,
            temporal_downsample: None,
            motion_weight: 0.0,
            decoder_base_dim: None,
            frozen_encoder: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Sizes to train at, as "WIDTHxHEIGHTxFRAMES" (frames 4k+1; 1 = images). Each step
    /// draws one bucket, so a batch has one shape.
    #[serde(default = "d_buckets")]
    pub buckets: Vec<String>,
    #[serde(default = "d_fps")]
    pub fps: f64,
    /// Probability of training on the short prompt rather than the detailed caption.
    #[serde(default = "d_half")]
    pub prompt_probability: f64,
    /// Train on a folder of videos (mp4, gif) with caption sidecars (`NAME.txt`, or
    /// `NAME.json` with `caption` and optionally `prompt`) instead of the world.
    #[serde(default)]
    pub folder: Option<PathBuf>,
    /// Transformer stage: each rendered and encoded batch (clips, masks, conditioning
    /// latents) trains this many consecutive steps, each with fresh noise, timesteps and
    /// caption dropout. Encoding costs more than the transformer's step on a CPU, so this
    /// buys steps for the same compute; 1 draws new clips every step.
    #[serde(default = "d_reuse")]
    pub reuse: usize,
    /// World data: draw no clip that combines a colour-shape or size-shape pair the
    /// benchmark holds out (tessera-world's holdout.rs), so its held-out split is never
    /// seen in training. Off by default: runs before 2026-12-07 trained on every pair.
    #[serde(default)]
    pub hold_out: bool,
    /// Train on CROP x CROP windows of each clip instead of the whole frame (the VAE stage:
    /// it is convolutional, so a window costs a fraction of a frame and teaches the same
    /// kernels). The clip is rendered at its bucket's size, so objects keep the size in
    /// pixels they have there, and each window is centred near a pixel of an object (a
    /// palette colour, as the evaluator segments them), so the windows are mostly about the
    /// objects, which are 1-3% of a frame. Unset: whole frames.
    #[serde(default)]
    pub crop: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    /// Timestep shift (as the sampler's flow shift).
    #[serde(default = "d_shift")]
    pub shift: f64,
    /// Probability of an empty caption (classifier-free guidance learns the unconditional).
    #[serde(default = "d_dropout")]
    pub text_dropout: f64,
    /// Probability that some frames are given (a conditioning mask other than none).
    #[serde(default = "d_half")]
    pub cond_probability: f64,
    /// Extra weight, in the flow loss, of the latent cells that hold an object (world
    /// data: a cell any of whose pixels, in any of its frames, is a palette colour or next
    /// to one, as the VAE stage's `object_weight`): they count 1 + this. Objects are 1 to 3%
    /// of a frame, and all that the prompt says of them is in those cells; under the plain
    /// loss the floor and sky, which the noisy latents mostly show, are nearly all of it.
    /// 0: the plain flow loss.
    #[serde(default)]
    pub object_weight: f64,
    /// `object_weight` applies only to the samples whose timestep t (0 clean, 1 noise) is at
    /// most this; the others take the plain loss. The weights come from the clean video,
    /// which the model does not see at high noise: there the weighted loss's minimiser is
    /// E[w v | x_t, c] / E[w | x_t, c], which leans towards the object's colour wherever an
    /// object may be (MODEL_CARD.md, "Known failures"). Where x_t still shows the objects,
    /// w is known from x_t and the minimiser is the posterior mean again. 1: every t.
    #[serde(default = "d_one")]
    pub object_weight_max_t: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerSize {
    #[serde(default = "d_layers")]
    pub layers: usize,
    #[serde(default = "d_heads")]
    pub heads: usize,
    #[serde(default = "d_head_dim")]
    pub head_dim: usize,
    #[serde(default = "d_ffn")]
    pub ffn: usize,
    /// Spatial patch size (tokens are 1 x patch x patch latent cells). Bucket sizes must be
    /// multiples of the VAE's stride times this.
    #[serde(default = "d_patch")]
    pub patch: usize,
    /// Initialise the transformer's weight matrices at N(0, 1/fan_in) (LeCun) instead of
    /// N(0, 0.02). At the small widths trained here 0.02 is far below 1/sqrt(fan_in), and
    /// the text embedder (two linear layers from the text encoder's width) starts with
    /// outputs of mean square about 1e-4, so cross-attention reads nearly nothing and the
    /// model learns to ignore the prompt (measured on the v3 run of 2026-12-01 with the
    /// `denoise_check` example). Off by default so that the shipped recipe reproduces.
    #[serde(default)]
    pub fan_in_init: bool,
    /// Start the velocity at v = x_t, so that it carries all of the input's noise from the
    /// first step: the patch embedding's weights on the noisy latents become an orthonormal
    /// map into the width and the output projection its transpose (instead of 0). The width
    /// must be at least a token's values (latent channels x patch^2). Measured on the v3
    /// width-512 transformer (4x4 patches, 256 values a token): after 300 steps it carried
    /// 0.22-0.96 of the noise (t = 0.2-0.99) against 0.01-0.17 from the plain start.
    #[serde(default)]
    pub carry_init: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextSize {
    #[serde(default = "d_text_dim")]
    pub dim: usize,
    #[serde(default = "d_text_layers")]
    pub layers: usize,
    #[serde(default = "d_text_heads")]
    pub heads: usize,
    /// Tokens per caption (the captions of the world fit in 96).
    #[serde(default = "d_tokens")]
    pub max_tokens: usize,
    /// Initialise the text path so that the prompt reaches the video from the first step:
    /// the text encoder's token embeddings at N(0, 1) (T5's own initialisation), the
    /// transformer's text embedder and cross-attention query, key and value projections
    /// at N(0, 1/fan_in), and cross-attention's output projection at 0. With everything at
    /// N(0, 0.02) the context that cross-attention reads has a mean square near 1e-4 and
    /// the four small matrices between the prompt and the video stall together: the v3
    /// transformers of 2026-12-01 ignored their prompts after 1,600 steps. The zeroed
    /// output lets cross-attention start as a no-op and grow from a gradient that, with
    /// the other three large, is informative at once (as ControlNet's zero convolutions).
    #[serde(default)]
    pub informative_init: bool,
}

fn d_steps() -> usize {
    20_000
}
fn d_batch() -> usize {
    4
}
fn d_lr() -> f64 {
    3e-4
}
fn d_warmup() -> usize {
    500
}
fn d_wd() -> f64 {
    0.01
}
fn d_clip() -> f64 {
    1.0
}
fn d_ema() -> f64 {
    0.999
}
fn d_ckpt() -> usize {
    500
}
fn d_sample_every() -> usize {
    250
}
fn d_buckets() -> Vec<String> {
    ["128x128x17", "160x96x17", "96x160x17", "128x128x1"].map(String::from).to_vec()
}
fn d_fps() -> f64 {
    12.0
}
fn d_reuse() -> usize {
    4
}
fn d_one() -> f64 {
    1.0
}
fn d_half() -> f64 {
    0.5
}
fn d_shift() -> f64 {
    3.0
}
fn d_dropout() -> f64 {
    0.1
}
fn d_layers() -> usize {
    4
}
fn d_heads() -> usize {
    4
}
fn d_head_dim() -> usize {
    32
}
fn d_ffn() -> usize {
    512
}
fn d_patch() -> usize {
    2
}
fn d_text_dim() -> usize {
    128
}
fn d_text_layers() -> usize {
    2
}
fn d_text_heads() -> usize {
    4
}
fn d_tokens() -> usize {
    96
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            buckets: d_buckets(),
            fps: d_fps(),
            prompt_probability: d_half(),
            folder: None,
            reuse: d_reuse(),
            hold_out: false,
            crop: None,
        }
    }
}
impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            shift: d_shift(),
            text_dropout: d_dropout(),
            cond_probability: d_half(),
            object_weight: 0.0,
            object_weight_max_t: d_one(),
        }
    }
}
impl Default for TransformerSize {
    fn default() -> Self {
        TransformerSize {
            layers: d_layers(),
            heads: d_heads(),
            head_dim: d_head_dim(),
            ffn: d_ffn(),
            patch: d_patch(),
            fan_in_init: false,
            carry_init: false,
        }
    }
}
impl Default for TextSize {
    fn default() -> Self {
        TextSize {
            dim: d_text_dim(),
            layers: d_text_layers(),
            heads: d_text_heads(),
            max_tokens: d_tokens(),
            informative_init: false,
        }
    }
}

/// A training size: width, height, frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub width: usize,
    pub height: usize,
    pub frames: usize,
}

/// The keys holding paths, as (table, key); "" is the top level.
const PATH_KEYS: [(&str, &str); 5] =
    [("", "out"), ("", "vae"), ("", "init"), ("data", "folder"), ("autoencoder", "frozen_encoder")];

/// One line: where, and what (toml's own message spans several lines).
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let at = line.map_or(String::new(), |l| format!(" line {l}"));
    anyhow::anyhow!("{}{at}: {}", path.display(), e.message().trim())
}

fn read(path: &Path) -> anyhow::Result<(String, toml::Table)> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let table = text.parse().map_err(|e| toml_error(path, &text, &e))?;
    Ok((text, table))
}

/// A config file as a TOML table, with what it `extends` merged under it, and every path
/// made absolute from the folder of the file that set it (so the merge keeps each path
/// relative to its own file).
fn load_table(path: &Path, table: toml::Table, depth: usize) -> anyhow::Result<toml::Table> {
    if depth > 8 {
        anyhow::bail!("{}: `extends` goes more than 8 files deep (a cycle?)", path.display());
    }
    let mut table = table;
    let dir = path.parent().unwrap_or(Path::new("."));
    absolute_paths(&mut table, dir)?;
    let Some(parent) = table.remove("extends") else { return Ok(table) };
    let toml::Value::String(parent) = parent else {
        anyhow::bail!("{}: `extends` must be a file name (a string)", path.display())
    };
    let parent_path = dir.join(&parent);
    let mut base = read(&parent_path)
        .and_then(|(_, t)| load_table(&parent_path, t, depth + 1))
        .map_err(|e| anyhow::anyhow!("{}: extends {parent:?}: {e}", path.display()))?;
    merge(&mut base, table);
    Ok(base)
}

/// The table's relative paths (`PATH_KEYS`) joined to `dir`, made absolute.
fn absolute_paths(table: &mut toml::Table, dir: &Path) -> anyhow::Result<()> {
    let dir = std::path::absolute(dir)?;
    for (section, key) in PATH_KEYS {
        let slot = if section.is_empty() {
            Some(&mut *table)
        } else {
            table.get_mut(section).and_then(toml::Value::as_table_mut)
        };
        if let Some(toml::Value::String(p)) = slot.and_then(|t| t.get_mut(key)) {
            if Path::new(p.as_str()).is_relative() {
                *p = dir.join(&*p).to_string_lossy().into_owned();
            }
        }
    }
    Ok(())
}

/// `over` on top of `base`: tables merged key by key, any other value replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl TrainConfig {
    /// Reads a run's config. A config may start from another with `extends = "FILE"`
    /// (relative to itself): the other file's settings, with this file's on top (tables
    /// merged key by key, any other value replaced), so a recipe that resumes or varies
    /// another states only what differs. Paths are relative to the file that sets them.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let (text, table) = read(path)?;
        let mut cfg: TrainConfig = if table.contains_key("extends") {
            // Merged from several files: no one line to point at.
            toml::Value::Table(load_table(path, table, 0)?).try_into().map_err(|e: toml::de::Error| {
                anyhow::anyhow!("{} (with what it extends): {}", path.display(), e.message().trim())
            })?
        } else {
            toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?
        };
        // Relative paths are relative to the config file (those from an extended file
        // were made relative to it already, as absolute paths).
        let base = path.parent().unwrap_or(Path::new("."));
        for p in std::iter::once(&mut cfg.out)
            .chain(cfg.vae.as_mut())
            .chain(cfg.init.as_mut())
            .chain(cfg.data.folder.as_mut())
            .chain(cfg.autoencoder.frozen_encoder.as_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if cfg.stage == Stage::Transformer && cfg.vae.is_none() {
            anyhow::bail!(
                "{}: the transformer stage needs `vae = \"FOLDER\"` (a trained VAE, e.g. a VAE run's out/model/vae)",
                path.display()
            );
        }
        if cfg.stage == Stage::Vae && cfg.autoencoder.dim_mult.len() < 3 {
            // The last two of its downsamplings halve time: 4x temporal compression.
            anyhow::bail!(
                "{}: [autoencoder] dim_mult needs at least 3 levels (4 as Wan: 8x spatial; 3: 4x)",
                path.display()
            );
        }
        if let Some(t) = &cfg.autoencoder.temporal_downsample {
            if t.len() + 1 != cfg.autoencoder.dim_mult.len() {
                anyhow::bail!(
                    "{}: [autoencoder] temporal_downsample needs one entry per downsampling level ({} for dim_mult {:?}), not {}",
                    path.display(),
                    cfg.autoencoder.dim_mult.len().saturating_sub(1),
                    cfg.autoencoder.dim_mult,
                    t.len()
                );
            }
        }
        let m = &cfg.autoencoder.dim_mult;
        if cfg.stage == Stage::Vae && cfg.autoencoder.residual && m.len() >= 2 && m[m.len() - 1] != m[m.len() - 2] {
            // The last block has no resampler, so its shortcut can only average groups of
            // channels: diffusers' AvgDown3D asserts in * factor % out == 0.
            anyhow::bail!("{}: [autoencoder] residual = true needs the last two dim_mult equal (as Wan 2.2's [1, 2, 4, 4]; 4x: [1, 2, 2]), not {m:?}", path.display());
        }
        if let Some(c) = cfg.data.crop {
            if c == 0 || c % 16 != 0 {
                anyhow::bail!("{}: data.crop must be a positive multiple of 16, not {c}", path.display());
            }
        }
        cfg.buckets()?;
        if cfg.data.reuse == 0 {
            anyhow::bail!("{}: data.reuse must be at least 1", path.display());
        }
        Ok(cfg)
    }

    /// The buckets, checked: sizes multiples of 16 (the transformer stage also checks them
    /// against its VAE's stride times the patch), frames 4k+1.
    pub fn buckets(&self) -> anyhow::Result<Vec<Bucket>> {
        let mut out = Vec::new();
        for b in &self.data.buckets {
            let parts: Vec<usize> = b
                .split('x')
                .map(|p| p.trim().parse())
                .collect::<Result<_, _>>()
                .map_err(|_| anyhow::anyhow!("bucket {b:?} is not WIDTHxHEIGHTxFRAMES"))?;
            let [width, height, frames] = parts[..] else { anyhow::bail!("bucket {b:?} is not WIDTHxHEIGHTxFRAMES") };
            if width % 16 != 0 || height % 16 != 0 || width == 0 || height == 0 {
                anyhow::bail!("bucket {b:?}: width and height must be multiples of 16");
            }
            if frames % 4 != 1 {
                anyhow::bail!("bucket {b:?}: frames must be 4k+1 (1, 5, 9, 13, 17, ...)");
            }
            out.push(Bucket { width, height, frames });
        }
        if out.is_empty() {
            anyhow::bail!("no buckets");
        }
        Ok(out)
    }

    /// The bucket an exported model generates by default: the longest clip (the first of
    /// the longest on ties, so a recipe orders its sizes by preference). Images and short
    /// clips in a recipe teach looks cheaply; what it is for is its longest clips.
    pub fn main_bucket(&self) -> anyhow::Result<Bucket> {
        let buckets = self.buckets()?;
        let longest = buckets.iter().map(|b| b.frames).max().unwrap_or(1);
        Ok(*buckets.iter().find(|b| b.frames == longest).expect("buckets() is never empty"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn the_main_bucket_is_the_first_longest() {
        let dir = std::env::temp_dir().join(format!("tessera-config-main-bucket-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = write(
            &dir,
            "t.toml",
            "out = \"runs/t\"\nstage = \"transformer\"\nvae = \"v\"\n[data]\n\
             buckets = [\"128x128x1\", \"128x128x9\", \"128x128x25\", \"176x96x25\", \"96x176x25\"]\n",
        );
        let mut cfg = TrainConfig::load(&p).unwrap();
        assert_eq!(cfg.main_bucket().unwrap(), Bucket { width: 128, height: 128, frames: 25 });
        cfg.data.buckets = vec!["64x64x1".into()];
        assert_eq!(cfg.main_bucket().unwrap().frames, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn extends_merges_and_keeps_paths_relative_to_their_file() {
        let dir = std::env::temp_dir().join(format!("tessera-config-extends-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write(
            &dir,
            "a/base.toml",
            "out = \"../runs/a\"\nstage = \"transformer\"\nvae = \"../vaes/v\"\nsteps = 100\nlr = 5e-4\n\
             [data]\nbuckets = [\"32x32x5\"]\nreuse = 3\n[transformer]\nlayers = 3\n",
        );
        let child = write(
            &dir,
            "b/child.toml",
            "extends = \"../a/base.toml\"\nout = \"../runs/b\"\nsteps = 250\n[data]\nreuse = 1\n",
        );
        let cfg = TrainConfig::load(&child).unwrap();
        let abs = |p: &str| std::path::absolute(dir.join(p)).unwrap();
        // The child's own settings on top; the base's elsewhere, tables merged key by key.
        assert_eq!((cfg.steps, cfg.lr, cfg.data.reuse, cfg.transformer.layers), (250, 5e-4, 1, 3));
        assert_eq!(cfg.data.buckets, vec!["32x32x5".to_string()]);
        // Paths: each relative to the file that set it.
        assert_eq!(cfg.out, abs("b/../runs/b"));
        // (The base is reached as b/../a, and paths are not normalised.)
        assert_eq!(cfg.vae.as_deref(), Some(abs("b/../a/../vaes/v").as_path()));
        // Two levels, and the file alone loads as before (paths joined to its folder).
        let grandchild = write(&dir, "c/g.toml", "extends = \"../b/child.toml\"\nlr = 1e-4\n");
        let g = TrainConfig::load(&grandchild).unwrap();
        assert_eq!((g.steps, g.lr, g.out.clone()), (250, 1e-4, abs("c/../b/../runs/b")));
        let base = TrainConfig::load(&dir.join("a/base.toml")).unwrap();
        assert_eq!(base.out, dir.join("a").join("../runs/a"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn temporal_downsample_sets_the_temporal_factor() {
        let dir = std::env::temp_dir().join(format!("tessera-config-temporal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let vae = |extra: &str| format!("stage = \"vae\"\nout = \"x\"\n[autoencoder]\ndim_mult = [1, 2, 2]\n{extra}");
        // Unset: the last two levels halve time, as Wan (4x).
        let cfg = TrainConfig::load(&write(&dir, "a.toml", &vae(""))).unwrap();
        assert_eq!((cfg.autoencoder.temporal(), cfg.autoencoder.temporal_factor()), (vec![true, true], 4));
        let cfg = TrainConfig::load(&write(&dir, "b.toml", &vae("temporal_downsample = [false, true]"))).unwrap();
        assert_eq!((cfg.autoencoder.temporal(), cfg.autoencoder.temporal_factor()), (vec![false, true], 2));
        // One entry per downsampling level, and crops in multiples of 16.
        let e = TrainConfig::load(&write(&dir, "c.toml", &vae("temporal_downsample = [true]"))).unwrap_err();
        assert!(e.to_string().contains("one entry per downsampling level"), "{e}");
        let e = TrainConfig::load(&write(&dir, "d.toml", "out = \"x\"\nvae = \"v\"\n[data]\ncrop = 40\n")).unwrap_err();
        assert!(e.to_string().contains("data.crop"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn extends_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("tessera-config-extends-err-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let missing = write(&dir, "m.toml", "extends = \"nope.toml\"\nout = \"x\"\n");
        let e = TrainConfig::load(&missing).unwrap_err().to_string();
        assert!(e.contains("m.toml") && e.contains("nope.toml"), "{e}");
        let cycle = write(&dir, "c.toml", "extends = \"c.toml\"\nout = \"x\"\n");
        let e = TrainConfig::load(&cycle).unwrap_err().to_string();
        assert!(e.contains("more than 8 files deep"), "{e}");
        write(&dir, "ok.toml", "out = \"x\"\n");
        let typo = write(&dir, "t.toml", "extends = \"ok.toml\"\nstepz = 3\n");
        let e = TrainConfig::load(&typo).unwrap_err().to_string();
        assert!(e.contains("t.toml") && e.contains("stepz"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
