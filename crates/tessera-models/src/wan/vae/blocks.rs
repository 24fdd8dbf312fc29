//! Building blocks of the Wan VAE (diffusers models/autoencoders/autoencoder_kl_wan.py):
//! causal 3D convolution with a frame cache, channel RMS norm, residual blocks, the
//! per-frame attention block, resampling, and Wan 2.2's averaging/duplicating shortcuts.
//!
//! Streaming: encode and decode run over short chunks of frames. Every causal conv with
//! temporal padding keeps the last `CACHE_T` input frames of the previous chunk (its
//! slot in [`Cache`]), so chunked results equal a whole-video pass while memory holds
//! only one chunk plus the caches.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};

use crate::conv::ConvKernel;

/// Frames of history each causal conv keeps between chunks (the reference's CACHE_T).
pub const CACHE_T: usize = 2;

/// One cache slot: nothing yet, the "Rep" marker of a first-chunk temporal upsample, or
/// the frames kept from the previous chunk.
#[derive(Debug, Clone, Default)]
pub enum Slot {
    #[default]
    Empty,
    Rep,
    Frames(Tensor),
}

/// The frame caches of one encode or decode pass. Slots are taken in traversal order;
/// `start_chunk` rewinds the cursor before each chunk.
#[derive(Debug, Default)]
pub struct Cache {
    slots: Vec<Slot>,
    cursor: usize,
}

impl Cache {
    pub fn start_chunk(&mut self) {
        self.cursor = 0;
    }

    fn next(&mut self) -> &mut Slot {
        if self.cursor == self.slots.len() {
            self.slots.push(Slot::Empty);
        }
        self.cursor += 1;
        &mut self.slots[self.cursor - 1]
    }
}

/// Last `n` frames (dim 2) of x, or all of them if fewer, as a copy of their own: a
/// narrowed view would keep the whole chunk's storage alive in the cache until the next
/// chunk, about doubling the decoder's resident activations (BENCHMARKS.md, memory).
fn last_frames(x: &Tensor, n: usize) -> Result<Tensor> {
    let t = x.dim(2)?;
    x.narrow(2, t.saturating_sub(n), t.min(n))?.force_contiguous()
}

/// x: (B, C, T, H, W) -> (B * T, C, H, W)
pub fn frames_to_batch(x: &Tensor) -> Result<Tensor> {
    let (b, c, t, h, w) = x.dims5()?;
    x.permute((0, 2, 1, 3, 4))?.reshape((b * t, c, h, w))
}

/// (B * T, C, H, W) -> (B, C, T, H, W)
pub fn batch_to_frames(x: &Tensor, b: usize) -> Result<Tensor> {
    let (bt, c, h, w) = x.dims4()?;
    x.reshape((b, bt / b, c, h, w))?.permute((0, 2, 1, 3, 4))
}

/// `WanCausalConv3d`: a Conv3d whose temporal padding is all in front (2 * p_t frames),
/// replaced by cached frames of the previous chunk when there are any. Computed as a sum
/// over the temporal taps of 2D convolutions of the frames batched together.
#[derive(Debug, Clone)]
pub struct CausalConv3d {
    /// One (C_out, C_in, kh, kw) kernel per temporal tap.
    taps: Vec<Tensor>,
    /// Trained weights (a variable): the whole (C_out, C_in, kt, kh, kw) kernel, for the
    /// differentiable gemm convolution (crate::conv_train).
    trained: Option<Tensor>,
    /// The channels-last gemm path for f32 weights on the CPU (crate::conv).
    fast: Option<ConvKernel>,
    bias: Tensor,
    stride_t: usize,
    pad_t: usize,
    pad_hw: usize,
}

impl CausalConv3d {
    /// kernel (kt, k, k), stride (st, 1, 1), padding (pt, p, p), as the reference's args.
    pub fn new(
        cin: usize,
        cout: usize,
        k: (usize, usize),
        stride_t: usize,
        pad: (usize, usize),
        vb: VarBuilder,
    ) -> Result<Self> {
        let (kt, ks) = k;
        let w = vb.get((cout, cin, kt, ks, ks), "weight")?;
        let bias = vb.get(cout, "bias")?;
        // f32 on the CPU takes the gemm path, which keeps its own copy of the weights;
        // otherwise keep one 2D kernel per temporal tap.
        // Trained weights (variables) take the differentiable paths: the gemm convolution
        // with a backward pass on the CPU in f32, else candle's conv2d per tap.
        let trained = w.is_variable().then(|| w.clone());
        let (fast, taps) = if w.dtype() == DType::F32 && w.device().is_cpu() && !w.is_variable() {
            (Some(ConvKernel::new(&w, &bias)?), Vec::new())
        } else {
            let taps = (0..kt).map(|i| w.narrow(2, i, 1)?.squeeze(2)?.contiguous()).collect::<Result<Vec<_>>>()?;
            (None, taps)
        };
        Ok(Self { taps, trained, fast, bias, stride_t, pad_t: 2 * pad.0, pad_hw: pad.1 })
    }

    /// x: (B, C, T, H, W); `cache`: frames that precede x (replacing zero padding).
    pub fn forward(&self, x: &Tensor, cache: Option<&Tensor>) -> Result<Tensor> {
        self.forward_owned(x.clone(), cache)
    }

    /// [`Self::forward`] taking x, so that the inference path can free it (and the padded
    /// copy made here) before allocating the output ([`ConvKernel::forward_owned`]).
    fn forward_owned(&self, mut x: Tensor, cache: Option<&Tensor>) -> Result<Tensor> {
        let mut pad_t = self.pad_t;
        if let (Some(c), true) = (cache, pad_t > 0) {
            let n = c.dim(2)?;
            x = Tensor::cat(&[c, &x], 2)?;
            pad_t = pad_t.saturating_sub(n);
        }
        if pad_t > 0 {
            x = x.pad_with_zeros(2, pad_t, 0)?;
        }
        if let (Some(fast), true) = (&self.fast, x.dtype() == DType::F32 && x.device().is_cpu() && !x.track_op()) {
            return fast.forward_owned(x, self.pad_hw, self.stride_t);
        }
        if let Some(w) = &self.trained {
            if let Some(y) = crate::conv_train::conv3d(&x, w, self.pad_hw, self.stride_t)? {
                return y.broadcast_add(&self.bias.reshape((1, (), 1, 1, 1))?);
            }
        }
        let (b, _, t, _, _) = x.dims5()?;
        let kt = self.taps.len();
        let t_out = (t - kt) / self.stride_t + 1;
        let mut out: Option<Tensor> = None;
        for (i, w) in self.taps.iter().enumerate() {
            // Input frames i, i + s, ..., i + s (t_out - 1) meet tap i.
            let xi = if self.stride_t == 1 {
                x.narrow(2, i, t_out)?
            } else {
                let idx: Vec<u32> = (0..t_out).map(|j| (i + j * self.stride_t) as u32).collect();
                x.contiguous()?.index_select(&Tensor::new(idx, x.device())?, 2)?
            };
            let y = frames_to_batch(&xi)?.conv2d(w, self.pad_hw, 1, 1, 1)?;
            out = Some(match out {
                Some(o) => (o + y)?,
                None => y,
            });
        }
        let out = match out {
            Some(o) => o,
            None => candle_core::bail!(
                "a tensor that tracks gradients reached a VAE convolution loaded for inference (load the VAE from variables to train it)"
            ),
        };
        let out = out.broadcast_add(&self.bias.reshape((1, (), 1, 1))?)?;
        batch_to_frames(&out, b)
    }

    /// The reference's standard cached call: keep the last CACHE_T input frames (padded
    /// with the previous slot's last frame when the chunk is a single frame), convolve with
    /// the previous slot as history, then store the kept frames.
    pub fn forward_cached(&self, x: Tensor, cache: &mut Cache) -> Result<Tensor> {
        let slot = cache.next();
        let mut keep = last_frames(&x, CACHE_T)?;
        let prev = match slot {
            Slot::Frames(p) => Some(p.clone()),
            _ => None,
        };
        if keep.dim(2)? < 2 {
            if let Some(p) = &prev {
                keep = Tensor::cat(&[&last_frames(p, 1)?, &keep], 2)?;
            }
        }
        let y = self.forward_owned(x, prev.as_ref())?;
        *slot = Slot::Frames(keep);
        Ok(y)
    }
}

/// `WanRMS_norm`: L2-normalise over channels, times sqrt(C) and gamma (no bias in Wan).
#[derive(Debug, Clone)]
pub struct ChannelRmsNorm {
    gamma: Tensor,
    scale: f64,
    /// gamma * sqrt(C) for the fused CPU path.
    gain: Vec<f32>,
}

impl ChannelRmsNorm {
    /// `images`: the 2D variant (gamma (C, 1, 1)) used by the attention block.
    pub fn new(dim: usize, images: bool, vb: VarBuilder) -> Result<Self> {
        let gamma = if images { vb.get((dim, 1, 1), "gamma")? } else { vb.get((dim, 1, 1, 1), "gamma")? };
        let gamma = gamma.flatten_all()?;
        let scale = (dim as f64).sqrt();
        let gain = (gamma.to_dtype(DType::F32)? * scale)?.to_vec1()?;
        Ok(Self { gamma, scale, gain })
    }

    /// The norm followed by SiLU, fused on the CPU.
    pub fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        match crate::fastmath::channel_rms_norm(x, &self.gain, true)? {
            Some(y) => Ok(y),
            None => crate::fastmath::silu(&self.forward(x)?),
        }
    }

    /// x: (B, C, ...) normalised over dim 1, as F.normalize (eps 1e-12 on the norm).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(y) = crate::fastmath::channel_rms_norm(x, &self.gain, false)? {
            return Ok(y);
        }
        if x.track_op() || self.gamma.track_op() {
            let gain = (&self.gamma * self.scale)?;
            if let Some(y) = crate::fastmath::channel_rms_norm_train(x, &gain)? {
                return Ok(y);
            }
        }
        let dtype = x.dtype();
        let xf = x.to_dtype(crate::ops::wide(dtype))?;
        let norm = xf.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
        let mut shape = vec![1; x.rank()];
        shape[1] = self.gamma.dim(0)?;
        let g = (self.gamma.to_dtype(crate::ops::wide(dtype))?.reshape(shape)? * self.scale)?;
        xf.broadcast_div(&norm)?.to_dtype(dtype)?.broadcast_mul(&g.to_dtype(dtype)?)
    }
}

/// `WanResidualBlock`: norm, SiLU, causal conv, norm, SiLU, causal conv, plus shortcut.
#[derive(Debug, Clone)]
pub struct ResBlock {
    norm1: ChannelRmsNorm,
    conv1: CausalConv3d,
    norm2: ChannelRmsNorm,
    conv2: CausalConv3d,
    shortcut: Option<CausalConv3d>,
}

impl ResBlock {
    pub fn new(cin: usize, cout: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: ChannelRmsNorm::new(cin, false, vb.pp("norm1"))?,
            conv1: CausalConv3d::new(cin, cout, (3, 3), 1, (1, 1), vb.pp("conv1"))?,
            norm2: ChannelRmsNorm::new(cout, false, vb.pp("norm2"))?,
            conv2: CausalConv3d::new(cout, cout, (3, 3), 1, (1, 1), vb.pp("conv2"))?,
            shortcut: if cin != cout {
                Some(CausalConv3d::new(cin, cout, (1, 1), 1, (0, 0), vb.pp("conv_shortcut"))?)
            } else {
                None
            },
        })
    }

    pub fn forward(&self, x: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        let h = match &self.shortcut {
            Some(s) => s.forward(x, None)?,
            None => x.clone(),
        };
        let y = self.conv1.forward_cached(self.norm1.forward_silu(x)?, cache)?;
        let y = self.conv2.forward_cached(self.norm2.forward_silu(&y)?, cache)?;
        y + h
    }
}

/// `WanAttentionBlock`: single-head self-attention over the pixels of each frame.
#[derive(Debug, Clone)]
pub struct AttnBlock {
    norm: ChannelRmsNorm,
    to_qkv: Conv2d,
    proj: Conv2d,
}

fn conv1x1(cin: usize, cout: usize, vb: VarBuilder) -> Result<Conv2d> {
    candle_nn::conv2d(cin, cout, 1, Conv2dConfig::default(), vb)
}

impl AttnBlock {
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm: ChannelRmsNorm::new(dim, true, vb.pp("norm"))?,
            to_qkv: conv1x1(dim, 3 * dim, vb.pp("to_qkv"))?,
            proj: conv1x1(dim, dim, vb.pp("proj"))?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, _, h, w) = x.dims5()?;
        let f = frames_to_batch(x)?; // (B*T, C, H, W)
        let qkv = self.to_qkv.forward(&self.norm.forward(&f)?)?; // (B*T, 3C, H, W)
        let bt = qkv.dim(0)?;
        let qkv = qkv.reshape((bt, 1, 3 * c, h * w))?.transpose(2, 3)?; // (BT, 1, HW, 3C)
        let q = qkv.narrow(D::Minus1, 0, c)?.contiguous()?;
        let k = qkv.narrow(D::Minus1, c, c)?.contiguous()?;
        let v = qkv.narrow(D::Minus1, 2 * c, c)?.contiguous()?;
        let o = crate::ops::attention(&q, &k, &v, None, 1.0 / (c as f64).sqrt())?; // (BT, 1, HW, C)
        let o = o.squeeze(1)?.transpose(1, 2)?.reshape((bt, c, h, w))?;
        let o = self.proj.forward(&o)?;
        batch_to_frames(&o, b)? + x
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResampleMode {
    Up2d,
    Up3d,
    Down2d,
    Down3d,
}

/// `WanResample`: spatial up/down sampling by 2, with a causal temporal conv for the 3D
/// modes (up: doubles frames after the first chunk; down: halves them).
#[derive(Debug, Clone)]
pub struct Resample {
    mode: ResampleMode,
    conv: SpatialConv,
    time_conv: Option<CausalConv3d>,
}

/// The resampler's 3x3 conv: the channels-last gemm path for the stride-1 upsampling
/// conv with f32 weights on the CPU (keeping only its own weight copy, as
/// [`CausalConv3d`] does), candle's conv2d otherwise.
#[derive(Debug, Clone)]
enum SpatialConv {
    Gemm(ConvKernel),
    /// Trained (variable) weights of the stride-1 upsampling conv: the differentiable gemm
    /// convolution (crate::conv_train), candle's conv2d where that does not apply.
    Trained(Conv2d),
    Candle(Conv2d),
}

impl Resample {
    pub fn new(dim: usize, mode: ResampleMode, up_out: usize, vb: VarBuilder) -> Result<Self> {
        let (cout, cfg) = match mode {
            ResampleMode::Up2d | ResampleMode::Up3d => (up_out, Conv2dConfig { padding: 1, ..Default::default() }),
            _ => (dim, Conv2dConfig { stride: 2, ..Default::default() }),
        };
        let conv = candle_nn::conv2d(dim, cout, 3, cfg, vb.pp("resample.1"))?;
        let time_conv = match mode {
            ResampleMode::Up3d => Some(CausalConv3d::new(dim, 2 * dim, (3, 1), 1, (1, 0), vb.pp("time_conv"))?),
            ResampleMode::Down3d => Some(CausalConv3d::new(dim, dim, (3, 1), 2, (0, 0), vb.pp("time_conv"))?),
            _ => None,
        };
        let up = matches!(mode, ResampleMode::Up2d | ResampleMode::Up3d);
        let conv = match (up, conv.bias()) {
            (true, Some(b))
                if conv.weight().dtype() == DType::F32
                    && conv.weight().device().is_cpu()
                    && !conv.weight().is_variable() =>
            {
                SpatialConv::Gemm(ConvKernel::new(conv.weight(), b)?)
            }
            (true, Some(_)) if conv.weight().is_variable() => SpatialConv::Trained(conv),
            _ => SpatialConv::Candle(conv),
        };
        Ok(Self { mode, conv, time_conv })
    }

    pub fn forward(&self, x: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        let (b, c, t, h, w) = x.dims5()?;
        let mut x = x.clone();
        if let (ResampleMode::Up3d, Some(tc)) = (self.mode, &self.time_conv) {
            let slot = cache.next();
            match slot {
                Slot::Empty => *slot = Slot::Rep,
                _ => {
                    let mut keep = last_frames(&x, CACHE_T)?;
                    if keep.dim(2)? < 2 {
                        let pre = match slot {
                            Slot::Frames(p) => last_frames(p, 1)?,
                            _ => keep.zeros_like()?,
                        };
                        keep = Tensor::cat(&[&pre, &keep], 2)?;
                    }
                    let y = match slot {
                        Slot::Frames(p) => tc.forward(&x, Some(p))?,
                        _ => tc.forward(&x, None)?,
                    };
                    *slot = Slot::Frames(keep);
                    // (B, 2C, T, H, W) -> (B, C, 2T, H, W), the two halves interleaved in time.
                    x = y.reshape((b, 2, c, t, h, w))?.permute((0, 2, 3, 1, 4, 5))?.reshape((b, c, 2 * t, h, w))?;
                }
            }
        }
        let f = frames_to_batch(&x)?;
        let f = match self.mode {
            // nearest-exact at scale 2 repeats each pixel 2x2.
            ResampleMode::Up2d | ResampleMode::Up3d => f.upsample_nearest2d(2 * h, 2 * w)?,
            // ZeroPad2d((0, 1, 0, 1)) before the stride-2 conv.
            _ => f.pad_with_zeros(3, 0, 1)?.pad_with_zeros(2, 0, 1)?,
        };
        let mut x = match &self.conv {
            // Frames as a batch of one-frame videos: (B*T, C, 1, H, W).
            SpatialConv::Gemm(k) => {
                let frames = f.unsqueeze(2)?;
                drop(f);
                batch_to_frames(&k.forward_owned(frames, 1, 1)?.squeeze(2)?, b)?
            }
            SpatialConv::Trained(c) => {
                let y = match (crate::conv_train::conv3d(&f.unsqueeze(2)?, &c.weight().unsqueeze(2)?, 1, 1)?, c.bias())
                {
                    (Some(y), Some(bias)) => y.squeeze(2)?.broadcast_add(&bias.reshape((1, (), 1, 1))?)?,
                    _ => c.forward(&f)?,
                };
                batch_to_frames(&y, b)?
            }
            SpatialConv::Candle(c) => batch_to_frames(&c.forward(&f)?, b)?,
        };
        if let (ResampleMode::Down3d, Some(tc)) = (self.mode, &self.time_conv) {
            let slot = cache.next();
            match slot {
                Slot::Frames(p) => {
                    let keep = last_frames(&x, 1)?;
                    x = tc.forward(&Tensor::cat(&[&last_frames(p, 1)?, &x], 2)?, None)?;
                    *slot = Slot::Frames(keep);
                }
                // Only its last frame is read by the next chunk.
                _ => *slot = Slot::Frames(last_frames(&x, 1)?),
            }
        }
        Ok(x)
    }
}

/// `AvgDown3D` (Wan 2.2 encoder shortcut): space/time to channels, then the mean over
/// groups of channels. x: (B, C, T, H, W) -> (B, out, T/ft, H/fs, W/fs).
pub fn avg_down(x: &Tensor, out: usize, ft: usize, fs: usize) -> Result<Tensor> {
    let t = x.dim(2)?;
    let pad = (ft - t % ft) % ft;
    let x = if pad > 0 { x.pad_with_zeros(2, pad, 0)? } else { x.clone() };
    let (b, c, t, h, w) = x.dims5()?;
    let (t2, h2, w2) = (t / ft, h / fs, w / fs);
    let group = c * ft * fs * fs / out;
    x.reshape(vec![b, c, t2, ft, h2, fs, w2, fs])?
        .permute(vec![0, 1, 3, 5, 7, 2, 4, 6])? // (B, C, ft, fs, fs, T', H', W')
        .reshape(vec![b, out, group, t2, h2, w2])?
        .mean(2)
}

/// `DupUp3D` (Wan 2.2 decoder shortcut): channels to space/time by repetition.
/// x: (B, C, T, H, W) -> (B, out, T*ft, H*fs, W*fs), dropping the first ft-1 frames of
/// the first chunk.
pub fn dup_up(x: &Tensor, out: usize, ft: usize, fs: usize, first_chunk: bool) -> Result<Tensor> {
    let (b, c, t, h, w) = x.dims5()?;
    let repeats = out * ft * fs * fs / c;
    // repeat_interleave on channels: (B, C, 1, ...) -> (B, C, repeats, ...)
    let x = x
        .unsqueeze(2)?
        .broadcast_as(vec![b, c, repeats, t, h, w])?
        .reshape(vec![b, out, ft, fs, fs, t, h, w])?
        .permute(vec![0, 1, 5, 2, 6, 3, 7, 4])? // (B, out, T, ft, H, fs, W, fs)
        .reshape((b, out, t * ft, h * fs, w * fs))?;
    if first_chunk && ft > 1 {
        x.narrow(2, ft - 1, t * ft - (ft - 1))
    } else {
        Ok(x)
    }
}
