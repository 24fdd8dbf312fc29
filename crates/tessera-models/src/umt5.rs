//! The UMT5 text encoder (Chung et al. 2023, "UniMax"), as transformers'
//! `UMT5EncoderModel` (models/umt5/modeling_umt5.py): a T5 encoder whose every layer has
//! its own relative position bias. Pre-norm blocks with RMS norm (T5LayerNorm, no mean
//! subtraction, computed in f32), attention without 1/sqrt(d) scaling, gated-GELU FFN.
//! Also the prompt embedding of diffusers' Wan pipelines (`_get_t5_prompt_embeds`).

use std::path::Path;

use crate::linear::{linear_no_bias, Linear};
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{embedding, Embedding, VarBuilder};
use serde::Deserialize;

use crate::loading::{check_class, in_component, read_json, var_builder};
use crate::ops::{attention, rms_norm};
use crate::tokenizer::WanTokenizer;

fn d_buckets() -> usize {
    32
}
fn d_max_distance() -> usize {
    128
}
fn d_eps() -> f64 {
    1e-6
}
fn d_ffp() -> String {
    "gated-gelu".into()
}

#[derive(Debug, Clone, Deserialize)]
pub struct UMT5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    #[serde(default = "d_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "d_max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "d_ffp")]
    pub feed_forward_proj: String,
    #[serde(default = "d_eps")]
    pub layer_norm_epsilon: f64,
}

impl UMT5Config {
    pub fn load(path: &Path) -> crate::Result<Self> {
        check_class(path, &["UMT5EncoderModel", "UMT5Model", "UMT5ForConditionalGeneration"])?;
        let cfg: Self = read_json(path)?;
        if !matches!(cfg.feed_forward_proj.as_str(), "gated-gelu" | "relu" | "gated-relu" | "gelu") {
            return Err(crate::Error::BadConfig {
                path: path.to_path_buf(),
                message: format!(
                    "`feed_forward_proj` {:?} is not supported (gated-gelu, gelu, gated-relu, relu)",
                    cfg.feed_forward_proj
                ),
            });
        }
        Ok(cfg)
    }

    /// The fixture configuration (tools/make_fixtures.py).
    pub fn tiny(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            d_model: 32,
            d_kv: 8,
            d_ff: 64,
            num_layers: 2,
            num_heads: 4,
            relative_attention_num_buckets: 32,
            relative_attention_max_distance: 128,
            feed_forward_proj: d_ffp(),
            layer_norm_epsilon: 1e-6,
        }
    }

    fn gated(&self) -> bool {
        self.feed_forward_proj.starts_with("gated-")
    }

    fn gelu(&self) -> bool {
        self.feed_forward_proj.ends_with("gelu")
    }
}

/// T5's bidirectional relative position bucket of `k - q` (transformers
/// `_relative_position_bucket` with is_decoder=False): half the buckets for each sign,
/// exact for small distances, logarithmic up to `max_distance`.
pub fn relative_position_bucket(relative_position: i64, num_buckets: usize, max_distance: usize) -> usize {
    let half = (num_buckets / 2) as i64;
    let mut bucket = if relative_position > 0 { half } else { 0 };
    let n = relative_position.abs();
    let max_exact = half / 2;
    if n < max_exact {
        bucket += n;
    } else {
        // In f32 like the reference (`relative_position.float()`), truncated toward zero.
        let log_ratio = ((n as f32 / max_exact as f32).ln() / (max_distance as f32 / max_exact as f32).ln())
            * (half - max_exact) as f32;
        bucket += (max_exact + log_ratio as i64).min(half - 1);
    }
    bucket as usize
}

#[derive(Debug, Clone)]
struct Layer {
    ln1: Tensor,
    qkv: Linear,
    o: Linear,
    rel_bias: Embedding,
    ln2: Tensor,
    wi_0: Linear,
    wi_1: Option<Linear>,
    wo: Linear,
}

#[derive(Debug, Clone)]
pub struct UMT5EncoderModel {
    cfg: UMT5Config,
    embed: Embedding,
    layers: Vec<Layer>,
    final_ln: Tensor,
}

impl UMT5EncoderModel {
    pub fn new(cfg: &UMT5Config, vb: VarBuilder) -> Result<Self> {
        Self::new_quantized(cfg, vb, None)
    }

    /// [`Self::new`] with every layer's linear weights quantized to `quantize` as the
    /// layer is built (embeddings and norms stay as loaded).
    pub fn new_quantized(cfg: &UMT5Config, vb: VarBuilder, quantize: Option<GgmlDType>) -> Result<Self> {
        let quant = |l: Linear| match quantize {
            Some(dtype) => l.quantize(dtype),
            None => Ok(l),
        };
        // Checkpoints carry `shared.weight`, `encoder.embed_tokens.weight`, or both (tied).
        let embed = if vb.contains_tensor("shared.weight") {
            embedding(cfg.vocab_size, cfg.d_model, vb.pp("shared"))?
        } else {
            embedding(cfg.vocab_size, cfg.d_model, vb.pp("encoder.embed_tokens"))?
        };
        let inner = cfg.num_heads * cfg.d_kv;
        let layers = (0..cfg.num_layers)
            .map(|i| {
                let b = vb.pp("encoder.block").pp(i).pp("layer");
                let a = b.pp("0.SelfAttention");
                let f = b.pp("1.DenseReluDense");
                let q = linear_no_bias(cfg.d_model, inner, a.pp("q"))?;
                let k = linear_no_bias(cfg.d_model, inner, a.pp("k"))?;
                let v = linear_no_bias(cfg.d_model, inner, a.pp("v"))?;
                let w = Tensor::cat(&[q.weight()?, k.weight()?, v.weight()?], 0)?;
                let (wi_0, wi_1) = if cfg.gated() {
                    (
                        linear_no_bias(cfg.d_model, cfg.d_ff, f.pp("wi_0"))?,
                        Some(linear_no_bias(cfg.d_model, cfg.d_ff, f.pp("wi_1"))?),
                    )
                } else {
                    (linear_no_bias(cfg.d_model, cfg.d_ff, f.pp("wi"))?, None)
                };
                Ok(Layer {
                    ln1: b.pp("0.layer_norm").get(cfg.d_model, "weight")?,
                    qkv: quant(Linear::new(w, None))?,
                    o: quant(linear_no_bias(inner, cfg.d_model, a.pp("o"))?)?,
                    rel_bias: embedding(
                        cfg.relative_attention_num_buckets,
                        cfg.num_heads,
                        a.pp("relative_attention_bias"),
                    )?,
                    ln2: b.pp("1.layer_norm").get(cfg.d_model, "weight")?,
                    wi_0: quant(wi_0)?,
                    wi_1: wi_1.map(quant).transpose()?,
                    wo: quant(linear_no_bias(cfg.d_ff, cfg.d_model, f.pp("wo"))?)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            embed,
            layers,
            final_ln: vb.pp("encoder.final_layer_norm").get(cfg.d_model, "weight")?,
        })
    }

    /// `dir`: a text_encoder/ folder (config.json + model*.safetensors, maybe sharded).
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> crate::Result<Self> {
        Self::load_quantized(dir, dtype, device, None)
    }

    /// [`Self::load`] with the layers' linear weights quantized ([`Self::new_quantized`]).
    pub fn load_quantized(
        dir: &Path,
        dtype: DType,
        device: &Device,
        quantize: Option<GgmlDType>,
    ) -> crate::Result<Self> {
        let cfg = UMT5Config::load(&dir.join("config.json"))?;
        let vb = var_builder(dir, dtype, device)?;
        in_component(dir, Self::new_quantized(&cfg, vb, quantize))
    }

    pub fn config(&self) -> &UMT5Config {
        &self.cfg
    }

    /// (Lq, Lk) bucket ids as a tensor, shared by all layers (each has its own table).
    fn buckets(&self, l: usize, device: &Device) -> Result<Tensor> {
        let mut ids = Vec::with_capacity(l * l);
        for q in 0..l {
            for k in 0..l {
                ids.push(relative_position_bucket(
                    k as i64 - q as i64,
                    self.cfg.relative_attention_num_buckets,
                    self.cfg.relative_attention_max_distance,
                ) as u32);
            }
        }
        Tensor::from_vec(ids, (l, l), device)
    }

    /// input_ids: (B, L) u32; attention_mask: (B, L) of 0/1. Returns (B, L, d_model).
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let (b, l) = input_ids.dims2()?;
        let (h, dk) = (self.cfg.num_heads, self.cfg.d_kv);
        let eps = self.cfg.layer_norm_epsilon;
        let mut x = self.embed.forward(&input_ids.to_dtype(DType::U32)?)?; // (B, L, D)
        let dtype = x.dtype();
        // Padding keys get the dtype's minimum added, as transformers' bidirectional mask.
        let min = match dtype {
            DType::F16 => f16_min(),
            DType::BF16 => bf16_min(),
            _ => f32::MIN as f64,
        };
        let mask = ((attention_mask.to_dtype(DType::F32)?.affine(-1.0, 1.0)? * min)?)
            .to_dtype(dtype)?
            .reshape((b, 1, 1, l))?;
        let buckets = self.buckets(l, x.device())?;
        for layer in &self.layers {
            // (L, L, H) -> (1, H, L, L), plus the mask: (B, H, L, L)
            let bias = layer.rel_bias.forward(&buckets)?.permute((2, 0, 1))?.unsqueeze(0)?.broadcast_add(&mask)?;
            let n = rms_norm(&x, Some(&layer.ln1), eps)?;
            let qkv = layer.qkv.forward(&n)?;
            let split = |i: usize| -> Result<Tensor> {
                qkv.narrow(D::Minus1, i * h * dk, h * dk)?.reshape((b, l, h, dk))?.transpose(1, 2)
            };
            let o = attention(&split(0)?, &split(1)?, &split(2)?, Some(&bias), 1.0)?; // (B, H, L, dk)
            let o = o.transpose(1, 2)?.reshape((b, l, h * dk))?;
            x = (x + layer.o.forward(&o)?)?;
            let n = rms_norm(&x, Some(&layer.ln2), eps)?;
            let act = layer.wi_0.forward(&n)?;
            let act = if self.cfg.gelu() { crate::fastmath::gelu(&act)? } else { act.relu()? };
            let hdn = match &layer.wi_1 {
                Some(wi_1) => (act * wi_1.forward(&n)?)?,
                None => act,
            };
            x = (x + layer.wo.forward(&hdn)?)?;
        }
        rms_norm(&x, Some(&self.final_ln), eps)
    }
}

fn f16_min() -> f64 {
    -65504.0
}

fn bf16_min() -> f64 {
    -3.3895313892515355e38
}

/// Prompt embeddings as diffusers' Wan pipelines make them (`_get_t5_prompt_embeds`):
/// clean, tokenize to `max_sequence_length`, encode, then zero every position past each
/// prompt's real token count. Returns (B, max_sequence_length, d_model).
pub fn encode_prompts(
    tokenizer: &WanTokenizer,
    encoder: &UMT5EncoderModel,
    prompts: &[&str],
    max_sequence_length: usize,
    device: &Device,
) -> crate::Result<Tensor> {
    let mut ids = Vec::new();
    let mut masks = Vec::new();
    let mut lens = Vec::new();
    for p in prompts {
        let (i, m) = tokenizer.encode(p, max_sequence_length)?;
        lens.push(m.iter().filter(|&&x| x > 0).count());
        ids.extend(i);
        masks.extend(m);
    }
    let b = prompts.len();
    let ids = Tensor::from_vec(ids, (b, max_sequence_length), device)?;
    let mask = Tensor::from_vec(masks, (b, max_sequence_length), device)?;
    let hidden = encoder.forward(&ids, &mask)?;
    let keep: Vec<f32> =
        lens.iter().flat_map(|&n| (0..max_sequence_length).map(move |i| if i < n { 1.0 } else { 0.0 })).collect();
    let keep = Tensor::from_vec(keep, (b, max_sequence_length, 1), device)?.to_dtype(hidden.dtype())?;
    Ok(hidden.broadcast_mul(&keep)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hand_computed() {
        // 32 buckets, max distance 128: 16 per sign, exact below 8.
        assert_eq!(relative_position_bucket(0, 32, 128), 0);
        assert_eq!(relative_position_bucket(-3, 32, 128), 3);
        assert_eq!(relative_position_bucket(3, 32, 128), 19);
        // n = 8: 8 + floor(ln(1) ...) = 8; n = 16: 8 + floor(ln 2 / ln 16 * 8) = 8 + 2 = 10.
        assert_eq!(relative_position_bucket(-8, 32, 128), 8);
        assert_eq!(relative_position_bucket(-16, 32, 128), 10);
        // Far away saturates at the last bucket of each half.
        assert_eq!(relative_position_bucket(-1000, 32, 128), 15);
        assert_eq!(relative_position_bucket(1000, 32, 128), 31);
    }
}
