//! CLIP's vision tower (Radford et al. 2021), as Wan 2.1's image-to-video checkpoints use
//! it: `image_encoder/` is a transformers `CLIPVisionModel`, and diffusers'
//! `WanImageToVideoPipeline.encode_image` feeds the transformer the hidden states of the
//! penultimate layer (`hidden_states[-2]`): patch embedding with a class token and learned
//! positions, a pre-norm, then pre-norm transformer layers; the last layer and the
//! post-norm are not used. Written from transformers' modeling_clip.py behaviour.
//!
//! Preprocessing follows `CLIPImageProcessor`: shortest side resized to `size`, centre
//! crop, scale to [0, 1], normalise with the CLIP mean and std. The resize is bicubic like
//! PIL's but not bit-equal to it; an image already at the crop size is not resized, so
//! parity holds exactly there.

use std::path::Path;

use crate::linear::{linear, Linear};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::loading::{check_class, in_component, read_json, var_builder};
use crate::ops::{attention, layer_norm_f32};

fn d_act() -> String {
    "quick_gelu".into()
}
fn d_eps() -> f64 {
    1e-5
}
fn d_channels() -> usize {
    3
}

#[derive(Debug, Clone, Deserialize)]
pub struct ClipVisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    #[serde(default = "d_channels")]
    pub num_channels: usize,
    #[serde(default = "d_act")]
    pub hidden_act: String,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
}

impl ClipVisionConfig {
    pub fn load(path: &Path) -> crate::Result<Self> {
        check_class(path, &["CLIPVisionModel", "CLIPVisionModelWithProjection"])?;
        let cfg: Self = read_json(path)?;
        if !matches!(cfg.hidden_act.as_str(), "quick_gelu" | "gelu" | "gelu_new" | "gelu_pytorch_tanh") {
            return Err(crate::Error::BadConfig {
                path: path.to_path_buf(),
                message: format!("`hidden_act` {:?} is not supported (quick_gelu, gelu, gelu_new)", cfg.hidden_act),
            });
        }
        Ok(cfg)
    }
}

/// `image_processor/preprocessor_config.json` (CLIPImageProcessor); defaults are CLIP's.
#[derive(Debug, Clone, Deserialize)]
pub struct ClipImageProcessorConfig {
    #[serde(default)]
    pub size: Option<serde_json::Value>,
    #[serde(default)]
    pub crop_size: Option<serde_json::Value>,
    #[serde(default = "d_mean")]
    pub image_mean: Vec<f32>,
    #[serde(default = "d_std")]
    pub image_std: Vec<f32>,
}

fn d_mean() -> Vec<f32> {
    vec![0.481_454_66, 0.457_827_5, 0.408_210_73]
}
fn d_std() -> Vec<f32> {
    vec![0.268_629_54, 0.261_302_6, 0.275_777_1]
}

impl ClipImageProcessorConfig {
    pub fn load(path: &Path) -> crate::Result<Self> {
        read_json(path)
    }

    fn side(v: &Option<serde_json::Value>, default: usize) -> usize {
        match v {
            Some(serde_json::Value::Number(n)) => n.as_u64().map_or(default, |n| n as usize),
            Some(serde_json::Value::Object(m)) => m
                .get("shortest_edge")
                .or_else(|| m.get("height"))
                .and_then(|n| n.as_u64())
                .map_or(default, |n| n as usize),
            _ => default,
        }
    }

    /// Pixel values (1, 3, S, S) for an RGB8 image (H, W): resize the shortest side to
    /// `size`, centre-crop `crop_size`, scale and normalise.
    pub fn preprocess(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
        image_size: usize,
        device: &Device,
    ) -> Result<Tensor> {
        let size = Self::side(&self.size, image_size);
        let crop = Self::side(&self.crop_size, image_size);
        let (w, h, resized) = if width.min(height) == size {
            (width, height, rgb.to_vec())
        } else {
            let s = size as f64 / width.min(height) as f64;
            let (nw, nh) = if width <= height {
                (size, (height as f64 * s).round() as usize)
            } else {
                ((width as f64 * s).round() as usize, size)
            };
            (nw, nh, bicubic(rgb, width, height, nw, nh))
        };
        let (x0, y0) = ((w.saturating_sub(crop)) / 2, (h.saturating_sub(crop)) / 2);
        let mut out = vec![0f32; 3 * crop * crop];
        for c in 0..3 {
            for y in 0..crop {
                for x in 0..crop {
                    let v = resized[((y + y0) * w + x + x0) * 3 + c] as f32 / 255.0;
                    out[(c * crop + y) * crop + x] = (v - self.image_mean[c]) / self.image_std[c];
                }
            }
        }
        Tensor::from_vec(out, (1, 3, crop, crop), device)
    }
}

/// Bicubic resampling (a = -0.5, as PIL) with a support widened by the scale when
/// shrinking (antialiasing, as PIL does).
fn bicubic(src: &[u8], w: usize, h: usize, nw: usize, nh: usize) -> Vec<u8> {
    fn cubic(x: f64) -> f64 {
        let a = -0.5;
        let x = x.abs();
        if x < 1.0 {
            ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            (((x - 5.0) * x + 8.0) * x - 4.0) * a
        } else {
            0.0
        }
    }
    // Separable: weights per output coordinate along one axis.
    fn weights(n_in: usize, n_out: usize) -> Vec<(usize, Vec<f64>)> {
        let scale = n_in as f64 / n_out as f64;
        let support = 2.0 * scale.max(1.0);
        (0..n_out)
            .map(|o| {
                let centre = (o as f64 + 0.5) * scale;
                let lo = ((centre - support).floor().max(0.0)) as usize;
                let hi = ((centre + support).ceil() as usize).min(n_in);
                let f = scale.max(1.0);
                let mut ws: Vec<f64> = (lo..hi).map(|i| cubic((i as f64 + 0.5 - centre) / f)).collect();
                let sum: f64 = ws.iter().sum();
                ws.iter_mut().for_each(|v| *v /= sum);
                (lo, ws)
            })
            .collect()
    }
    let wx = weights(w, nw);
    let wy = weights(h, nh);
    let mut tmp = vec![0f64; nw * h * 3];
    for y in 0..h {
        for (x, (lo, ws)) in wx.iter().enumerate() {
            for c in 0..3 {
                tmp[(y * nw + x) * 3 + c] =
                    ws.iter().enumerate().map(|(k, wt)| wt * src[(y * w + lo + k) * 3 + c] as f64).sum();
            }
        }
    }
    let mut out = vec![0u8; nw * nh * 3];
    for (y, (lo, ws)) in wy.iter().enumerate() {
        for x in 0..nw {
            for c in 0..3 {
                let v: f64 = ws.iter().enumerate().map(|(k, wt)| wt * tmp[((lo + k) * nw + x) * 3 + c]).sum();
                out[(y * nw + x) * 3 + c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

struct Layer {
    ln1: (Tensor, Tensor),
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    ln2: (Tensor, Tensor),
    fc1: Linear,
    fc2: Linear,
}

pub struct ClipVisionModel {
    cfg: ClipVisionConfig,
    /// Patch embedding as a matmul: (D, C * p * p), no bias.
    patch: Tensor,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_ln: (Tensor, Tensor),
    layers: Vec<Layer>,
}

impl ClipVisionModel {
    pub fn new(cfg: &ClipVisionConfig, vb: VarBuilder) -> Result<Self> {
        // Checkpoints name tensors `vision_model.…` (transformers 4) or without the prefix
        // (transformers 5 saves CLIPVisionModel flat).
        let vb = if vb.contains_tensor("vision_model.embeddings.class_embedding") { vb.pp("vision_model") } else { vb };
        let (d, p, c) = (cfg.hidden_size, cfg.patch_size, cfg.num_channels);
        let e = vb.pp("embeddings");
        let patch = e.pp("patch_embedding").get((d, c, p, p), "weight")?.reshape((d, c * p * p))?;
        let n_pos = (cfg.image_size / p).pow(2) + 1;
        let ln = |vb: VarBuilder| -> Result<(Tensor, Tensor)> { Ok((vb.get(d, "weight")?, vb.get(d, "bias")?)) };
        // Only the layers up to the penultimate are used (hidden_states[-2]).
        let used = cfg.num_hidden_layers.saturating_sub(1);
        let layers = (0..used)
            .map(|i| {
                let l = vb.pp("encoder.layers").pp(i);
                let a = l.pp("self_attn");
                Ok(Layer {
                    ln1: ln(l.pp("layer_norm1"))?,
                    q: linear(d, d, a.pp("q_proj"))?,
                    k: linear(d, d, a.pp("k_proj"))?,
                    v: linear(d, d, a.pp("v_proj"))?,
                    out: linear(d, d, a.pp("out_proj"))?,
                    ln2: ln(l.pp("layer_norm2"))?,
                    fc1: linear(d, cfg.intermediate_size, l.pp("mlp.fc1"))?,
                    fc2: linear(cfg.intermediate_size, d, l.pp("mlp.fc2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            patch,
            class_embedding: e.get(d, "class_embedding")?,
            position_embedding: e.pp("position_embedding").get((n_pos, d), "weight")?,
            pre_ln: ln(vb.pp("pre_layrnorm"))?,
            layers,
        })
    }

    /// `dir`: an image_encoder/ folder (config.json + weights).
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> crate::Result<Self> {
        let cfg = ClipVisionConfig::load(&dir.join("config.json"))?;
        let vb = var_builder(dir, dtype, device)?;
        in_component(dir, Self::new(&cfg, vb))
    }

    pub fn config(&self) -> &ClipVisionConfig {
        &self.cfg
    }

    fn act(&self, x: &Tensor) -> Result<Tensor> {
        match self.cfg.hidden_act.as_str() {
            // x * sigmoid(1.702 x)
            "quick_gelu" => x * candle_nn::ops::sigmoid(&(x * 1.702)?)?,
            "gelu" => x.gelu_erf(),
            _ => crate::fastmath::gelu(x),
        }
    }

    /// pixel_values: (B, 3, S, S) normalised. Returns the penultimate layer's hidden
    /// states (B, 1 + (S/p)^2, D), as `hidden_states[-2]`.
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let (b, c, s, _) = pixel_values.dims4()?;
        let (p, d) = (self.cfg.patch_size, self.cfg.hidden_size);
        let g = s / p;
        // Patches (B, g*g, C*p*p), channel-major within a patch as the Conv2d weight.
        let patches = pixel_values
            .reshape((b, c, g, p, g, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((b, g * g, c * p * p))?;
        let x = patches.broadcast_matmul(&self.patch.t()?)?; // (B, g*g, D)
        let cls = self.class_embedding.reshape((1, 1, d))?.broadcast_as((b, 1, d))?.to_dtype(x.dtype())?;
        let x = Tensor::cat(&[&cls, &x], 1)?.broadcast_add(&self.position_embedding.unsqueeze(0)?)?;
        let dtype = x.dtype();
        let mut x =
            layer_norm_f32(&x, Some(&self.pre_ln.0), Some(&self.pre_ln.1), self.cfg.layer_norm_eps)?.to_dtype(dtype)?;
        let heads = self.cfg.num_attention_heads;
        let hd = d / heads;
        for l in &self.layers {
            let h = layer_norm_f32(&x, Some(&l.ln1.0), Some(&l.ln1.1), self.cfg.layer_norm_eps)?.to_dtype(dtype)?;
            let n = h.dim(1)?;
            let split = |t: Tensor| -> Result<Tensor> { t.reshape((b, n, heads, hd))?.transpose(1, 2)?.contiguous() };
            let q = split(l.q.forward(&h)?)?;
            let k = split(l.k.forward(&h)?)?;
            let v = split(l.v.forward(&h)?)?;
            let a = attention(&q, &k, &v, None, 1.0 / (hd as f64).sqrt())?.transpose(1, 2)?.reshape((b, n, d))?;
            x = (x + l.out.forward(&a)?)?;
            let h = layer_norm_f32(&x, Some(&l.ln2.0), Some(&l.ln2.1), self.cfg.layer_norm_eps)?.to_dtype(dtype)?;
            let h = l.fc2.forward(&self.act(&l.fc1.forward(&h)?)?)?;
            x = (x + h)?;
        }
        Ok(x)
    }
}
