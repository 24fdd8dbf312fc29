//! The Wan diffusion transformer (Wan team 2025, "Wan: Open and Advanced Large-Scale Video
//! Generative Models"), following diffusers' `WanTransformer3DModel`
//! (models/transformers/transformer_wan.py): spacetime patches of the latent video,
//! 3-axis RoPE self-attention with RMS-normed q/k across heads, cross-attention to the
//! text (and, for I2V checkpoints, CLIP image) tokens, and DiT-style adaLN modulation
//! from the timestep (per sample, or per token for Wan 2.2 TI2V).

use std::path::Path;
use std::sync::Arc;

use crate::gguf::GgufFile;
use crate::linear::{linear_from, Linear};
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use crate::fastmath;
use crate::loading::{in_component, var_builder};
use crate::norms;
use crate::ops::{attention, layer_norm_f32, rms_norm, wide};
use crate::wan::cache::BlockCache;
use crate::wan::config::WanTransformerConfig;
use crate::wan::rope;

/// Sinusoidal timestep features (diffusers `get_timestep_embedding` with
/// flip_sin_to_cos=True, downscale_freq_shift=0): [cos(t f_i), sin(t f_i)], f_i =
/// exp(-ln(10000) i / half), computed in f32 like the reference. t: (N,) -> (N, dim).
pub fn timestep_embedding(t: &Tensor, dim: usize) -> Result<Tensor> {
    let half = dim / 2;
    let freqs: Vec<f32> = (0..half).map(|i| (-(10000f32.ln()) * i as f32 / half as f32).exp()).collect();
    let freqs = Tensor::from_vec(freqs, (1, half), t.device())?;
    let args = t.to_dtype(DType::F32)?.unsqueeze(1)?.broadcast_mul(&freqs)?; // (N, half)
    Tensor::cat(&[args.cos()?, args.sin()?], 1)
}

/// (B, C, T, H, W) -> (B, L, C * pt * ph * pw) with L = T/pt * H/ph * W/pw in (t, h, w)
/// order: the input of the patch-embedding Conv3d (kernel = stride = patch) as a matmul.
pub fn patchify(x: &Tensor, p: [usize; 3]) -> Result<Tensor> {
    let (b, c, t, h, w) = x.dims5()?;
    let (ft, fh, fw) = (t / p[0], h / p[1], w / p[2]);
    x.reshape(vec![b, c, ft, p[0], fh, p[1], fw, p[2]])?
        .permute(vec![0, 2, 4, 6, 1, 3, 5, 7])? // (B, T', H', W', C, pt, ph, pw)
        .reshape((b, ft * fh * fw, c * p[0] * p[1] * p[2]))
}

/// (B, L, pt * ph * pw * C) -> (B, C, T, H, W), the reference's
/// `reshape(B, T', H', W', pt, ph, pw, C).permute(0, 7, 1, 4, 2, 5, 3, 6)`.
pub fn unpatchify(x: &Tensor, grid: (usize, usize, usize), p: [usize; 3]) -> Result<Tensor> {
    let (b, _, n) = x.dims3()?;
    let c = n / (p[0] * p[1] * p[2]);
    let (ft, fh, fw) = grid;
    x.reshape(vec![b, ft, fh, fw, p[0], p[1], p[2], c])?
        .permute(vec![0, 7, 1, 4, 2, 5, 3, 6])? // (B, C, T', pt, H', ph, W', pw)
        .reshape((b, c, ft * p[0], fh * p[1], fw * p[2]))
}

/// Linear -> act -> Linear, the shape shared by the time, text and FFN projections.
#[derive(Debug, Clone)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    act: Act,
}

#[derive(Debug, Clone, Copy)]
enum Act {
    Silu,
    GeluTanh,
    GeluErf,
}

impl Mlp {
    fn quantize(self, dtype: GgmlDType) -> Result<Self> {
        Ok(Self { fc1: self.fc1.quantize(dtype)?, fc2: self.fc2.quantize(dtype)?, act: self.act })
    }

    fn new(
        (i, h, o): (usize, usize, usize),
        act: Act,
        vb1: VarBuilder,
        vb2: VarBuilder,
        gguf: Option<&GgufFile>,
    ) -> Result<Self> {
        Ok(Self { fc1: linear_from(i, h, vb1, gguf)?, fc2: linear_from(h, o, vb2, gguf)?, act })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.fc1.forward(x)?;
        let h = match self.act {
            Act::Silu => fastmath::silu(&h)?,
            Act::GeluTanh => fastmath::gelu(&h)?,
            Act::GeluErf => h.gelu_erf()?,
        };
        self.fc2.forward(&h)
    }
}

/// Self- or cross-attention with RMS norm of q and k across all heads.
#[derive(Debug, Clone)]
struct Attention {
    proj: Projections,
    out: Linear,
    norm_q: Tensor,
    norm_k: Tensor,
    /// I2V: projections (k, v) of the image context and its key norm.
    added: Option<(Proj, Tensor)>,
    heads: usize,
    eps: f64,
}

/// The input projections, grouped by input: q, k, v of self-attention read the same
/// tokens; k and v of cross-attention the same context.
#[derive(Debug, Clone)]
enum Projections {
    /// Self-attention: q, k, v from the same tokens.
    SelfAttn { qkv: Proj },
    /// Cross-attention: q from the tokens, k and v from the context.
    Cross { q: Linear, kv: Proj },
}

/// Linear layers of equal width reading the same input: one product where their weights'
/// formats allow (same result, fewer matmuls; the fused weights replace the parts), one
/// each where they do not (GGUF files that mix block formats per tensor).
#[derive(Debug, Clone)]
enum Proj {
    Fused { layer: Linear, parts: usize },
    Split(Vec<Linear>),
}

impl Proj {
    fn new(parts: Vec<Linear>) -> Result<Self> {
        Ok(match Linear::fuse(&parts)? {
            Some(layer) => Proj::Fused { layer, parts: parts.len() },
            None => Proj::Split(parts),
        })
    }

    /// One output per part.
    fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        match self {
            Proj::Fused { layer, parts } => {
                let y = layer.forward(x)?;
                let w = y.dim(D::Minus1)? / parts;
                (0..*parts).map(|i| y.narrow(D::Minus1, i * w, w)).collect()
            }
            Proj::Split(layers) => layers.iter().map(|l| l.forward(x)).collect(),
        }
    }

    fn quantize(self, dtype: GgmlDType) -> Result<Self> {
        Ok(match self {
            Proj::Fused { layer, parts } => Proj::Fused { layer: layer.quantize(dtype)?, parts },
            Proj::Split(layers) => Proj::Split(layers.into_iter().map(|l| l.quantize(dtype)).collect::<Result<_>>()?),
        })
    }

    fn layers(&self) -> Vec<&Linear> {
        match self {
            Proj::Fused { layer, .. } => vec![layer],
            Proj::Split(layers) => layers.iter().collect(),
        }
    }
}

impl Attention {
    fn new(
        (dim, heads, eps): (usize, usize, f64),
        cross: bool,
        added_kv: Option<usize>,
        vb: VarBuilder,
        gguf: Option<&GgufFile>,
    ) -> Result<Self> {
        let lin = |i: usize, name: &str| linear_from(i, dim, vb.pp(name), gguf);
        let (q, k, v) = (lin(dim, "to_q")?, lin(dim, "to_k")?, lin(dim, "to_v")?);
        let out = lin(dim, "to_out.0")?;
        let norm_q = vb.pp("norm_q").get(dim, "weight")?;
        let norm_k = vb.pp("norm_k").get(dim, "weight")?;
        let added = match added_kv {
            Some(a) if cross => Some((
                Proj::new(vec![lin(a, "add_k_proj")?, lin(a, "add_v_proj")?])?,
                vb.pp("norm_added_k").get(dim, "weight")?,
            )),
            _ => None,
        };
        let proj = if cross {
            Projections::Cross { kv: Proj::new(vec![k, v])?, q }
        } else {
            Projections::SelfAttn { qkv: Proj::new(vec![q, k, v])? }
        };
        Ok(Self { proj, out, norm_q, norm_k, added, heads, eps })
    }

    fn quantize(self, dtype: GgmlDType) -> Result<Self> {
        let proj = match self.proj {
            Projections::SelfAttn { qkv } => Projections::SelfAttn { qkv: qkv.quantize(dtype)? },
            Projections::Cross { q, kv } => Projections::Cross { q: q.quantize(dtype)?, kv: kv.quantize(dtype)? },
        };
        let added = match self.added {
            Some((l, n)) => Some((l.quantize(dtype)?, n)),
            None => None,
        };
        Ok(Self { proj, out: self.out.quantize(dtype)?, added, ..self })
    }

    /// (B, L, H * Dh) -> (B, H, L, Dh)
    fn heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, l, n) = x.dims3()?;
        x.reshape((b, l, self.heads, n / self.heads))?.transpose(1, 2)
    }

    /// Scaled dot-product attention of already projected, normed q, k, v (B, L, H*Dh).
    fn sdpa(&self, q: &Tensor, k: &Tensor, v: &Tensor, rope: Option<(&Tensor, &Tensor)>) -> Result<Tensor> {
        let (b, l, n) = q.dims3()?;
        let scale = 1.0 / ((n / self.heads) as f64).sqrt();
        if let Some(o) = crate::attention::attention(q, k, v, self.heads, rope, scale)? {
            return Ok(o);
        }
        let (mut q, mut k) = (self.heads(q)?, self.heads(k)?);
        if let Some((cos, sin)) = rope {
            q = rope::apply(&q, cos, sin)?;
            k = rope::apply(&k, cos, sin)?;
        }
        let o = attention(&q, &k, &self.heads(v)?, None, scale)?; // (B, H, L, Dh)
        o.transpose(1, 2)?.reshape((b, l, n))
    }

    fn forward_self(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let Projections::SelfAttn { qkv } = &self.proj else {
            candle_core::bail!("internal: cross-attention used as self-attention");
        };
        let [q, k, v]: [Tensor; 3] =
            qkv.forward(x)?.try_into().map_err(|_| candle_core::Error::Msg("internal: q, k, v".into()))?;
        let q = rms_norm(&q, Some(&self.norm_q), self.eps)?;
        let k = rms_norm(&k, Some(&self.norm_k), self.eps)?;
        self.out.forward(&self.sdpa(&q, &k, &v, Some((cos, sin)))?)
    }

    fn forward_cross(&self, x: &Tensor, ctx: &Tensor, img: Option<&Tensor>) -> Result<Tensor> {
        let Projections::Cross { q, kv } = &self.proj else {
            candle_core::bail!("internal: self-attention used as cross-attention");
        };
        let pair = |p: &Proj, input: &Tensor| -> Result<(Tensor, Tensor)> {
            let [k, v]: [Tensor; 2] =
                p.forward(input)?.try_into().map_err(|_| candle_core::Error::Msg("internal: k, v".into()))?;
            Ok((k, v))
        };
        let q = rms_norm(&q.forward(x)?, Some(&self.norm_q), self.eps)?;
        let (k, v) = pair(kv, ctx)?;
        let k = rms_norm(&k, Some(&self.norm_k), self.eps)?;
        let mut o = self.sdpa(&q, &k, &v, None)?;
        if let (Some((proj, norm)), Some(img)) = (&self.added, img) {
            let (k, v) = pair(proj, img)?;
            let k = rms_norm(&k, Some(norm), self.eps)?;
            o = (o + self.sdpa(&q, &k, &v, None)?)?;
        }
        self.out.forward(&o)
    }
}

/// One block: adaLN-modulated self-attention, cross-attention, adaLN-modulated FFN.
#[derive(Debug, Clone)]
struct Block {
    attn1: Attention,
    attn2: Attention,
    norm2: Option<(Tensor, Tensor)>,
    ffn: Mlp,
    /// (1, 1, 6, D): shift, scale, gate for attention and for the FFN.
    scale_shift_table: Tensor,
    eps: f64,
}

impl Block {
    /// The block's linear layers in quantized blocks (norms, modulation and biases stay).
    fn quantize(self, dtype: GgmlDType) -> Result<Self> {
        Ok(Self {
            attn1: self.attn1.quantize(dtype)?,
            attn2: self.attn2.quantize(dtype)?,
            ffn: self.ffn.quantize(dtype)?,
            ..self
        })
    }

    fn new(cfg: &WanTransformerConfig, vb: VarBuilder, gguf: Option<&GgufFile>) -> Result<Self> {
        let dim = cfg.inner_dim();
        let heads = cfg.num_attention_heads;
        let norm2 = if cfg.cross_attn_norm {
            Some((vb.pp("norm2").get(dim, "weight")?, vb.pp("norm2").get(dim, "bias")?))
        } else {
            None
        };
        Ok(Self {
            attn1: Attention::new((dim, heads, cfg.eps), false, None, vb.pp("attn1"), gguf)?,
            attn2: Attention::new((dim, heads, cfg.eps), true, cfg.added_kv_proj_dim, vb.pp("attn2"), gguf)?,
            norm2,
            ffn: Mlp::new((dim, cfg.ffn_dim, dim), Act::GeluTanh, vb.pp("ffn.net.0.proj"), vb.pp("ffn.net.2"), gguf)?,
            scale_shift_table: vb.get((1, 6, dim), "scale_shift_table")?.unsqueeze(0)?,
            eps: cfg.eps,
        })
    }

    /// x: (B, L, D); temb: (B, Lt, 6, D) in f32 with Lt = 1 or L; ctx: (B, Lc, D).
    fn forward(
        &self,
        x: &Tensor,
        temb: &Tensor,
        ctx: &Tensor,
        img: Option<&Tensor>,
        rope: (&Tensor, &Tensor),
    ) -> Result<Tensor> {
        let dtype = x.dtype();
        let m = self.scale_shift_table.to_dtype(wide(dtype))?.broadcast_add(temb)?;
        let part = |i: usize| m.narrow(2, i, 1)?.squeeze(2); // (B, Lt, D)
        let (shift, scale, gate) = (part(0)?, part(1)?, part(2)?);
        let (c_shift, c_scale, c_gate) = (part(3)?, part(4)?, part(5)?);
        let modulate = |x: &Tensor, shift: &Tensor, scale: &Tensor| -> Result<Tensor> {
            norms::modulated_layer_norm(x, scale, shift, self.eps)
        };
        let gated = norms::gated_residual;

        let h = self.attn1.forward_self(&modulate(x, &shift, &scale)?, rope.0, rope.1)?;
        let x = gated(x, &h, &gate)?;
        let n = match &self.norm2 {
            Some((w, b)) => layer_norm_f32(&x, Some(w), Some(b), self.eps)?.to_dtype(dtype)?,
            None => x.clone(),
        };
        let x = (&x + self.attn2.forward_cross(&n, ctx, img)?)?;
        let h = self.ffn.forward(&modulate(&x, &c_shift, &c_scale)?)?;
        gated(&x, &h, &c_gate)
    }
}

#[derive(Debug, Clone)]
pub struct WanTransformer3DModel {
    cfg: WanTransformerConfig,
    /// Patch-embedding Conv3d as a matmul: weight (D, C * pt * ph * pw), bias (D).
    patch_embedding: Linear,
    time_embedder: Mlp,
    time_proj: Linear,
    text_embedder: Mlp,
    /// I2V: norm1 (w, b), ff, norm2 (w, b), optional pos_embed.
    image_embedder: Option<ImageEmbedder>,
    blocks: Vec<Block>,
    /// (1, 1, 2, D): shift and scale of the output norm.
    scale_shift_table: Tensor,
    proj_out: Linear,
}

#[derive(Debug, Clone)]
struct ImageEmbedder {
    norm1: (Tensor, Tensor),
    ff: Mlp,
    norm2: (Tensor, Tensor),
    pos_embed: Option<Tensor>,
}

impl ImageEmbedder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let x = match &self.pos_embed {
            // Wan 2.1 FLF2V: two images' tokens side by side, each with its position.
            Some(p) => {
                let (b, l, d) = x.dims3()?;
                x.reshape((b / 2, 2 * l, d))?.broadcast_add(p)?
            }
            None => x.clone(),
        };
        let h = layer_norm_f32(&x, Some(&self.norm1.0), Some(&self.norm1.1), 1e-5)?.to_dtype(dtype)?;
        let h = self.ff.forward(&h)?;
        layer_norm_f32(&h, Some(&self.norm2.0), Some(&self.norm2.1), 1e-5)?.to_dtype(dtype)
    }
}

impl WanTransformer3DModel {
    pub fn new(cfg: &WanTransformerConfig, vb: VarBuilder) -> Result<Self> {
        Self::new_quantized(cfg, vb, None)
    }

    /// [`Self::new`] with the blocks' linear layers quantized to `quantize` as each block
    /// is built, so the dense weights of one block at a time are in memory (the
    /// embeddings, the output projection, norms and modulation stay as loaded, as the
    /// community's GGUF files of Wan keep them).
    pub fn new_quantized(cfg: &WanTransformerConfig, vb: VarBuilder, quantize: Option<GgmlDType>) -> Result<Self> {
        Self::build(cfg, vb, None, quantize)
    }

    /// The model from a GGUF file ([`crate::gguf`]): linear layers stored in a block
    /// format stay in it (fused where the parts share one), every other tensor is read
    /// as `vb`'s dtype; `quantize`, if given, quantizes the block layers stored dense.
    pub fn new_gguf(
        cfg: &WanTransformerConfig,
        gguf: &Arc<GgufFile>,
        dtype: DType,
        device: &Device,
        quantize: Option<GgmlDType>,
    ) -> Result<Self> {
        Self::build(cfg, gguf.var_builder(dtype, device), Some(gguf), quantize)
    }

    fn build(
        cfg: &WanTransformerConfig,
        vb: VarBuilder,
        gguf: Option<&GgufFile>,
        quantize: Option<GgmlDType>,
    ) -> Result<Self> {
        let d = cfg.inner_dim();
        let p = cfg.patch_size;
        let patch_in = cfg.in_channels * p[0] * p[1] * p[2];
        let pe = vb.pp("patch_embedding");
        let patch_embedding = Linear::new(
            pe.get((d, cfg.in_channels, p[0], p[1], p[2]), "weight")?.reshape((d, patch_in))?,
            Some(pe.get(d, "bias")?),
        );
        let ce = vb.pp("condition_embedder");
        let image_embedder = match cfg.image_dim {
            Some(img) => {
                let ie = ce.pp("image_embedder");
                let ln = |vb: VarBuilder, n: usize| -> Result<(Tensor, Tensor)> {
                    Ok((vb.get(n, "weight")?, vb.get(n, "bias")?))
                };
                Some(ImageEmbedder {
                    norm1: ln(ie.pp("norm1"), img)?,
                    ff: Mlp::new((img, img, d), Act::GeluErf, ie.pp("ff.net.0.proj"), ie.pp("ff.net.2"), gguf)?,
                    norm2: ln(ie.pp("norm2"), d)?,
                    pos_embed: match cfg.pos_embed_seq_len {
                        Some(n) => Some(ie.get((1, n, img), "pos_embed")?),
                        None => None,
                    },
                })
            }
            None => None,
        };
        let blocks = (0..cfg.num_layers)
            .map(|i| {
                let b = Block::new(cfg, vb.pp("blocks").pp(i), gguf)?;
                match quantize {
                    Some(q) => b.quantize(q),
                    None => Ok(b),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            patch_embedding,
            time_embedder: Mlp::new(
                (cfg.freq_dim, d, d),
                Act::Silu,
                ce.pp("time_embedder.linear_1"),
                ce.pp("time_embedder.linear_2"),
                gguf,
            )?,
            time_proj: linear_from(d, 6 * d, ce.pp("time_proj"), gguf)?,
            text_embedder: Mlp::new(
                (cfg.text_dim, d, d),
                Act::GeluTanh,
                ce.pp("text_embedder.linear_1"),
                ce.pp("text_embedder.linear_2"),
                gguf,
            )?,
            image_embedder,
            blocks,
            scale_shift_table: vb.get((1, 2, d), "scale_shift_table")?.unsqueeze(0)?,
            proj_out: linear_from(d, cfg.out_channels() * p[0] * p[1] * p[2], vb.pp("proj_out"), gguf)?,
        })
    }

    /// Loads `dir/config.json` and the folder's safetensors; errors name the folder.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> crate::Result<Self> {
        Self::load_quantized(dir, dtype, device, None)
    }

    /// [`Self::load`], the blocks' linear layers quantized at load ([`Self::new_quantized`]).
    pub fn load_quantized(
        dir: &Path,
        dtype: DType,
        device: &Device,
        quantize: Option<GgmlDType>,
    ) -> crate::Result<Self> {
        Self::load_from(dir, None, dtype, device, quantize)
    }

    /// Whether `dir` holds weights [`Self::load_from`] can read without a named GGUF file:
    /// safetensors, or one `.gguf` file.
    pub fn check_weights(dir: &Path) -> crate::Result<()> {
        match crate::loading::safetensors_files(dir) {
            Err(crate::Error::NoWeights { .. }) => match crate::gguf::find_in(dir)? {
                Some(_) => Ok(()),
                None => Err(crate::Error::BadWeights {
                    path: dir.to_path_buf(),
                    message: "no weights found (expected *.safetensors, a *.safetensors.index.json or one *.gguf \
                              file; or name a GGUF file with --gguf)"
                        .into(),
                }),
            },
            other => other.map(drop),
        }
    }

    /// Whether a GGUF file's tensors fit `cfg` (the patch embedding, the last block's FFN,
    /// no block beyond): checked before any work, where [`Self::new_gguf`] would fail
    /// only once reached.
    pub fn check_gguf(cfg: &WanTransformerConfig, file: &GgufFile) -> crate::Result<()> {
        let (d, p) = (cfg.inner_dim(), cfg.patch_size);
        file.check_shape("patch_embedding.weight", &[d, cfg.in_channels, p[0], p[1], p[2]])?;
        let last = cfg.num_layers.saturating_sub(1);
        file.check_shape(&format!("blocks.{last}.ffn.net.0.proj.weight"), &[cfg.ffn_dim, d])?;
        if file.tensors().contains_key(&format!("blocks.{}.ffn.net.0.proj.weight", cfg.num_layers)) {
            return Err(crate::Error::BadWeights {
                path: file.path().to_path_buf(),
                message: format!(
                    "has more blocks than the model's config.json ({}): the file is another model's",
                    cfg.num_layers
                ),
            });
        }
        Ok(())
    }

    /// [`Self::load_quantized`] with the weights from `gguf` if given, else from the
    /// folder: its safetensors, or its one `.gguf` file when it has no safetensors. The
    /// config is always the folder's `config.json`.
    pub fn load_from(
        dir: &Path,
        gguf: Option<&Path>,
        dtype: DType,
        device: &Device,
        quantize: Option<GgmlDType>,
    ) -> crate::Result<Self> {
        let cfg = WanTransformerConfig::load(&dir.join("config.json"))?;
        let gguf = match gguf {
            Some(g) => Some(g.to_path_buf()),
            None => match crate::loading::safetensors_files(dir) {
                Err(crate::Error::NoWeights { .. }) => crate::gguf::find_in(dir)?,
                _ => None,
            },
        };
        match gguf {
            Some(path) => {
                let file = Arc::new(GgufFile::open(&path)?);
                Self::check_gguf(&cfg, &file)?;
                in_component(&path, Self::new_gguf(&cfg, &file, dtype, device, quantize))
            }
            None => {
                let vb = var_builder(dir, dtype, device)?;
                in_component(dir, Self::new_quantized(&cfg, vb, quantize))
            }
        }
    }

    /// The text embedder's output for text-encoder states (B, L, text_dim): what every
    /// block's cross-attention reads (for diagnostics).
    pub fn text_context(&self, encoder_hidden_states: &Tensor) -> Result<Tensor> {
        self.text_embedder.forward(encoder_hidden_states)
    }

    pub fn config(&self) -> &WanTransformerConfig {
        &self.cfg
    }

    /// How many linear layers hold quantized weights.
    pub fn quantized_layers(&self) -> usize {
        let attn = |a: &Attention| {
            let mut layers = match &a.proj {
                Projections::SelfAttn { qkv } => qkv.layers(),
                Projections::Cross { q, kv } => [vec![q], kv.layers()].concat(),
            };
            layers.push(&a.out);
            if let Some((p, _)) = &a.added {
                layers.extend(p.layers());
            }
            layers.into_iter().filter(|l| l.is_quantized()).count()
        };
        self.blocks
            .iter()
            .map(|b| {
                attn(&b.attn1) + attn(&b.attn2) + [&b.ffn.fc1, &b.ffn.fc2].iter().filter(|l| l.is_quantized()).count()
            })
            .sum()
    }

    /// hidden_states: (B, C, T, H, W) latents; timestep: (B,) or (B, L) (one per patch
    /// token, Wan 2.2 TI2V); encoder_hidden_states: (B, L_text, text_dim); image: (B,
    /// L_img, image_dim) CLIP features for I2V checkpoints. Returns (B, C_out, T, H, W).
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        timestep: &Tensor,
        encoder_hidden_states: &Tensor,
        encoder_hidden_states_image: Option<&Tensor>,
    ) -> Result<Tensor> {
        self.forward_cached(hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_image, None)
    }

    /// [`Self::forward`] with step caching: `cache` is this branch's state and the
    /// scheduler step's index (see [`crate::wan::cache`]); `None` runs every block.
    pub fn forward_cached(
        &self,
        hidden_states: &Tensor,
        timestep: &Tensor,
        encoder_hidden_states: &Tensor,
        encoder_hidden_states_image: Option<&Tensor>,
        cache: Option<(&mut BlockCache, usize)>,
    ) -> Result<Tensor> {
        let p = self.cfg.patch_size;
        let (b, _, t, h, w) = hidden_states.dims5()?;
        let grid = (t / p[0], h / p[1], w / p[2]);
        let dtype = hidden_states.dtype();
        let (cos, sin) = rope::rope_tables(self.cfg.attention_head_dim, grid, hidden_states.device(), dtype)?;

        let x = self.patch_embedding.forward(&patchify(hidden_states, p)?)?; // (B, L, D)

        // Timestep conditioning: (B * Lt, freq) -> temb (B, Lt, D), proj (B, Lt, 6, D).
        let lt = if timestep.rank() == 2 { timestep.dim(1)? } else { 1 };
        let d = self.cfg.inner_dim();
        let tfreq = timestep_embedding(&timestep.flatten_all()?, self.cfg.freq_dim)?.to_dtype(dtype)?;
        let temb = self.time_embedder.forward(&tfreq)?; // (B * Lt, D)
        let tproj = self.time_proj.forward(&fastmath::silu(&temb)?)?.to_dtype(wide(dtype))?.reshape((b, lt, 6, d))?;
        let temb = temb.to_dtype(wide(dtype))?.reshape((b, lt, 1, d))?;

        let ctx = self.text_embedder.forward(encoder_hidden_states)?; // (B, L_text, D)
        let img = match (&self.image_embedder, encoder_hidden_states_image) {
            (Some(e), Some(i)) => Some(e.forward(i)?),
            _ => None,
        };

        let block = |i: usize, x: &Tensor| self.blocks[i].forward(x, &tproj, &ctx, img.as_ref(), (&cos, &sin));
        let x = match cache {
            Some((cache, step)) => cache.run(&x, step, self.blocks.len(), &block)?,
            None => {
                let mut x = x;
                for i in 0..self.blocks.len() {
                    x = block(i, &x)?;
                }
                x
            }
        };

        // Output: adaLN with the table's shift/scale plus temb, then project and unpatchify.
        let m = self.scale_shift_table.to_dtype(wide(dtype))?.broadcast_add(&temb)?; // (B, Lt, 2, D)
        let shift = m.narrow(2, 0, 1)?.squeeze(2)?;
        let scale = m.narrow(2, 1, 1)?.squeeze(2)?;
        let x = norms::modulated_layer_norm(&x, &scale, &shift, self.cfg.eps)?;
        let x = self.proj_out.forward(&x)?;
        unpatchify(&x, grid, p)
    }
}
