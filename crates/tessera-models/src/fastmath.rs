//! Vectorised f32 transcendentals for the CPU hot spots: softmax rows, GELU (tanh form)
//! and SiLU. candle's CPU versions call scalar libm `expf`/`tanhf` one element at a time;
//! in the transformer that was about a fifth of a denoising step.
//!
//! `exp` is Cephes' `expf` scheme (range reduction by ln 2, degree-6 polynomial), about
//! 2 ulp; the loops are plain slices so the compiler vectorises them, and an AVX2+FMA
//! build of each loop is chosen at run time where the CPU has it.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 * 2^23: adding and subtracting it rounds to the nearest integer without a branch.
const ROUND: f32 = 12_582_912.0;

/// exp(x); exactly 0 below -87 (as expf underflows), never a denormal: masked attention
/// scores (-3.4e38) must give zeros, since denormals slow the following matmul ~20x.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let tiny = x < -87.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n from t's own bits: n sits in the low mantissa bits of t (an integer below 2^22
    // added to 1.5 * 2^23), so no float-to-int conversion (Rust's saturating `as` does not
    // vectorise).
    let n_int = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let e = y * f32::from_bits(((n_int + 127) << 23) as u32);
    if tiny {
        0.0
    } else {
        e
    }
}

#[inline(always)]
fn gelu_f32(x: f32) -> f32 {
    // 0.5 x (1 + tanh(u)) = x - x / (exp(2u) + 1), u = sqrt(2/pi) (x + 0.044715 x^3)
    let u = 0.797_884_6 * (x + 0.044_715 * x * x * x);
    x - x / (exp(2.0 * u) + 1.0)
}

#[inline(always)]
fn silu_f32(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// d gelu / dx (tanh form): 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx, t = tanh(u).
#[inline(always)]
fn gelu_grad_f32(x: f32) -> f32 {
    let u = 0.797_884_6 * (x + 0.044_715 * x * x * x);
    let t = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
    let du = 0.797_884_6 * (1.0 + 3.0 * 0.044_715 * x * x);
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
}

/// d silu / dx: s (1 + x (1 - s)), s = sigmoid(x).
#[inline(always)]
fn silu_grad_f32(x: f32) -> f32 {
    let s = 1.0 / (1.0 + exp(-x));
    s * (1.0 + x * (1.0 - s))
}

/// Eight independent lanes so max and sum vectorise (a single running accumulator is a
/// serial dependency the compiler must keep in order).
#[inline(always)]
fn lanes_reduce(row: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let chunks = row.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] = f(acc[i], c[i]);
        }
    }
    let mut r = rest.iter().fold(init, |a, &b| f(a, b));
    for a in acc {
        r = f(r, a);
    }
    r
}

#[inline(always)]
fn softmax_row(row: &mut [f32]) {
    let max = lanes_reduce(row, f32::NEG_INFINITY, |a, b| if b > a { b } else { a });
    for v in row.iter_mut() {
        *v = exp(*v - max);
    }
    let inv = 1.0 / lanes_reduce(row, 0.0, |a, b| a + b);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// Element-wise loops built three ways and chosen at run time: AVX-512, AVX2 + FMA, and
/// the baseline. The body is a plain `for` loop inlined into each build (a closure or an
/// iterator's out-of-line `fold` would be compiled without the target features: the
/// softmax loop ran on 4-lane SSE with a scalar float-to-int conversion until
/// 2026-12-08, BENCHMARKS.md).
macro_rules! dispatch {
    ($name:ident, $f:ident) => {
        fn $name(data: &mut [f32]) {
            #[inline(always)]
            fn body(data: &mut [f32]) {
                for v in data.iter_mut() {
                    *v = $f(*v);
                }
            }
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn wide(data: &mut [f32]) {
                    body(data)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fast(data: &mut [f32]) {
                    body(data)
                }
                if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has the features the function was compiled for.
                    unsafe { wide(data) };
                    return;
                }
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    // SAFETY: as above.
                    unsafe { fast(data) };
                    return;
                }
            }
            body(data)
        }
    };
}

dispatch!(gelu_slice, gelu_f32);
dispatch!(silu_slice, silu_f32);
dispatch!(gelu_grad_slice, gelu_grad_f32);
dispatch!(silu_grad_slice, silu_grad_f32);

/// Softmax along each row of `n` values, in place, on the calling thread (the fused
/// attention's blocks of scores: crate::attention).
pub(crate) fn softmax_rows_in_place(data: &mut [f32], n: usize) {
    softmax_rows(data, n)
}

fn softmax_rows(data: &mut [f32], n: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        // 16 lanes where the CPU has them: softmax is most of the attention's work outside
        // its two products.
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn wide(data: &mut [f32], n: usize) {
            // A `for` loop, not `for_each`: the latter's out-of-line `fold` would be
            // compiled without this function's target features.
            for row in data.chunks_mut(n) {
                softmax_row(row)
            }
        }
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function was compiled for.
            unsafe { wide(data, n) };
            return;
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn fast(data: &mut [f32], n: usize) {
            for row in data.chunks_mut(n) {
                softmax_row(row)
            }
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            unsafe { fast(data, n) };
            return;
        }
    }
    for row in data.chunks_mut(n) {
        softmax_row(row)
    }
}

#[derive(Clone, Copy)]
enum Op {
    Gelu,
    Silu,
    Softmax,
}

impl CustomOp1 for Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Gelu => "fast-gelu",
            Op::Silu => "fast-silu",
            Op::Softmax => "fast-softmax",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(src) = storage else { candle_core::bail!("{} needs f32", self.name()) };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("{} needs a contiguous tensor", self.name())
        };
        let mut data = src[start..end].to_vec();
        let last = layout.dims().last().copied().unwrap_or(1).max(1);
        // Work in chunks of whole rows so threads split rows, not values.
        let rows_per_chunk = (16384 / last).max(1);
        let op = *self;
        data.par_chunks_mut(rows_per_chunk * last).for_each(|c| match op {
            Op::Gelu => gelu_slice(c),
            Op::Silu => silu_slice(c),
            Op::Softmax => softmax_rows(c, last),
        });
        Ok((CpuStorage::F32(data), layout.shape().clone()))
    }

    /// The gradients in one pass each, so that training takes the fused kernels too:
    /// GELU and SiLU scale the incoming gradient by their derivative at the input;
    /// softmax's is y (dy - sum(dy y)) along the row.
    fn bwd(&self, arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let g: Vec<f32> = grad_res.contiguous()?.flatten_all()?.to_vec1()?;
        let last = res.dims().last().copied().unwrap_or(1).max(1);
        let rows_per_chunk = (16384 / last).max(1);
        let out = match self {
            Op::Gelu | Op::Silu => {
                let mut d: Vec<f32> = arg.contiguous()?.flatten_all()?.to_vec1()?;
                let gelu = matches!(self, Op::Gelu);
                d.par_chunks_mut(rows_per_chunk * last).zip(g.par_chunks(rows_per_chunk * last)).for_each(|(d, g)| {
                    if gelu {
                        gelu_grad_slice(d)
                    } else {
                        silu_grad_slice(d)
                    }
                    for (d, g) in d.iter_mut().zip(g) {
                        *d *= g;
                    }
                });
                d
            }
            Op::Softmax => {
                let mut d: Vec<f32> = res.contiguous()?.flatten_all()?.to_vec1()?;
                d.par_chunks_mut(rows_per_chunk * last).zip(g.par_chunks(rows_per_chunk * last)).for_each(|(y, g)| {
                    for (y, g) in y.chunks_mut(last).zip(g.chunks(last)) {
                        let dot: f32 = y.iter().zip(g).map(|(a, b)| a * b).sum();
                        for (y, g) in y.iter_mut().zip(g) {
                            *y *= g - dot;
                        }
                    }
                });
                d
            }
        };
        Ok(Some(Tensor::from_vec(out, res.dims(), res.device())?))
    }
}

/// f32 on the CPU, nothing tracking gradients: the kernels alone.
fn fast_path(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && !x.track_op()
}

/// `op` on an f32 CPU tensor: the kernel alone, or, when x tracks gradients (training),
/// with its backward pass ([`Op::bwd`]; candle's composed ops took about a third of a
/// transformer training step: powf, tanh, exp, max/eq and their backward graphs,
/// BENCHMARKS.md, training). `None` for other dtypes and devices.
fn fused(x: &Tensor, op: Op) -> Result<Option<Tensor>> {
    if !(x.device().is_cpu() && x.dtype() == candle_core::DType::F32) {
        return Ok(None);
    }
    let x = x.contiguous()?;
    Ok(Some(if x.track_op() { x.apply_op1(op)? } else { x.apply_op1_no_bwd(&op)? }))
}

/// GELU, tanh approximation (diffusers' "gelu-approximate", transformers' "gelu_new").
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    match fused(x, Op::Gelu)? {
        Some(y) => Ok(y),
        None => x.gelu(),
    }
}

/// SiLU (swish): x * sigmoid(x).
pub fn silu(x: &Tensor) -> Result<Tensor> {
    match fused(x, Op::Silu)? {
        Some(y) => Ok(y),
        None => x.silu(),
    }
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    match fused(x, Op::Softmax)? {
        Some(y) => Ok(y),
        // candle's fused softmax_last_dim has no backward; the composed one does.
        None if x.track_op() => candle_nn::ops::softmax(x, candle_core::D::Minus1),
        None => candle_nn::ops::softmax_last_dim(x),
    }
}

/// The Wan VAE's channel RMS norm (`F.normalize` over dim 1, times `gain[c]` = gamma[c] *
/// sqrt(C)), optionally followed by SiLU, in three parallel passes over contiguous
/// channel planes. x: (B, C, ...) f32 on the CPU; `None` when x is anything else.
pub fn channel_rms_norm(x: &Tensor, gain: &[f32], then_silu: bool) -> Result<Option<Tensor>> {
    if !fast_path(x) || x.rank() < 2 {
        return Ok(None);
    }
    let x = x.contiguous()?;
    let dims = x.dims().to_vec();
    let (b, c) = (dims[0], dims[1]);
    let m: usize = dims[2..].iter().product();
    if c != gain.len() {
        candle_core::bail!("channel norm over {c} channels with {} gains", gain.len());
    }
    let (storage, layout) = x.storage_and_layout();
    let src = match (&*storage, layout.contiguous_offsets()) {
        (candle_core::Storage::Cpu(CpuStorage::F32(v)), Some((s0, s1))) => &v[s0..s1],
        _ => return Ok(None),
    };
    let mut out = vec![0f32; b * c * m];
    const CHUNK: usize = 4096;
    for bi in 0..b {
        let planes = &src[bi * c * m..(bi + 1) * c * m];
        // 1 / max(||x[:, p]||, 1e-12) for every position p.
        let mut inv = vec![0f32; m];
        inv.par_chunks_mut(CHUNK).enumerate().for_each(|(k, acc)| {
            let start = k * CHUNK;
            for ci in 0..c {
                let plane = &planes[ci * m + start..ci * m + start + acc.len()];
                for (a, v) in acc.iter_mut().zip(plane) {
                    *a += v * v;
                }
            }
            for a in acc.iter_mut() {
                *a = 1.0 / a.sqrt().max(1e-12);
            }
        });
        out[bi * c * m..(bi + 1) * c * m].par_chunks_mut(m).enumerate().for_each(|(ci, dst)| {
            let g = gain[ci];
            let plane = &planes[ci * m..(ci + 1) * m];
            for ((d, v), i) in dst.iter_mut().zip(plane).zip(&inv) {
                *d = v * i * g;
            }
            if then_silu {
                silu_slice(dst);
            }
        });
    }
    drop(storage);
    Ok(Some(Tensor::from_vec(out, dims, x.device())?))
}

/// The channel RMS norm as a differentiable op of (x, gain), gain = gamma * sqrt(C):
/// y[b, c, p] = x[b, c, p] g[c] / max(||x[b, :, p]||, 1e-12). Training's path: candle's
/// composed version (sqr, a strided sum over channels, sqrt, maximum, two broadcasts) and
/// its backward graph were about a third of a VAE training step.
struct ChannelNorm;

/// (B, C, M) planes of a contiguous (B, C, ...) tensor: the per-position inverse norms.
fn inverse_norms(x: &[f32], b: usize, c: usize, m: usize) -> Vec<f32> {
    let mut inv = vec![0f32; b * m];
    for bi in 0..b {
        let acc = &mut inv[bi * m..(bi + 1) * m];
        for ci in 0..c {
            for (a, v) in acc.iter_mut().zip(&x[(bi * c + ci) * m..][..m]) {
                *a += v * v;
            }
        }
        for a in acc.iter_mut() {
            *a = 1.0 / a.sqrt().max(1e-12);
        }
    }
    inv
}

impl candle_core::CustomOp2 for ChannelNorm {
    fn name(&self) -> &'static str {
        "channel-rms-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(xs), CpuStorage::F32(gs)) = (s1, s2) else {
            candle_core::bail!("channel-rms-norm needs f32")
        };
        let (Some((x0, x1)), Some((g0, g1))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("channel-rms-norm needs contiguous tensors")
        };
        let (x, g) = (&xs[x0..x1], &gs[g0..g1]);
        let dims = l1.dims();
        let (b, c) = (dims[0], dims[1]);
        let m: usize = dims[2..].iter().product();
        let inv = inverse_norms(x, b, c, m);
        let mut out = vec![0f32; x.len()];
        for bi in 0..b {
            for ci in 0..c {
                let o = (bi * c + ci) * m;
                for ((y, v), i) in out[o..o + m].iter_mut().zip(&x[o..o + m]).zip(&inv[bi * m..]) {
                    *y = v * i * g[ci];
                }
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, g: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dims = x.dims().to_vec();
        let (b, c) = (dims[0], dims[1]);
        let m: usize = dims[2..].iter().product();
        let xv: Vec<f32> = x.contiguous()?.flatten_all()?.to_vec1()?;
        let gv: Vec<f32> = g.contiguous()?.flatten_all()?.to_vec1()?;
        let dy: Vec<f32> = grad.contiguous()?.flatten_all()?.to_vec1()?;
        let inv = inverse_norms(&xv, b, c, m);
        // dx_c = inv g_c dy_c - x_c inv^3 sum_k g_k dy_k x_k (the second term only where
        // the norm is above its floor); dg_c = sum over positions of dy_c x_c inv.
        let mut dot = vec![0f32; b * m];
        let mut dg = vec![0f32; c];
        for bi in 0..b {
            for ci in 0..c {
                let o = (bi * c + ci) * m;
                let mut acc = 0f32;
                for (((d, v), y), i) in
                    dot[bi * m..(bi + 1) * m].iter_mut().zip(&xv[o..o + m]).zip(&dy[o..o + m]).zip(&inv[bi * m..])
                {
                    *d += gv[ci] * y * v;
                    acc += y * v * i;
                }
                dg[ci] += acc;
            }
        }
        let mut dx = vec![0f32; xv.len()];
        for bi in 0..b {
            for ci in 0..c {
                let o = (bi * c + ci) * m;
                for p in 0..m {
                    let i = inv[bi * m + p];
                    let floor = i >= 1e12;
                    let corr = if floor { 0.0 } else { xv[o + p] * i * i * i * dot[bi * m + p] };
                    dx[o + p] = i * gv[ci] * dy[o + p] - corr;
                }
            }
        }
        Ok((Some(Tensor::from_vec(dx, dims, x.device())?), Some(Tensor::from_vec(dg, g.dims(), g.device())?)))
    }
}

/// The channel RMS norm while training: x (B, C, ...) and `gain` (C) = gamma * sqrt(C)
/// as tensors that carry gradients; `None` unless both are f32 on the CPU.
pub fn channel_rms_norm_train(x: &Tensor, gain: &Tensor) -> Result<Option<Tensor>> {
    let f32_cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == candle_core::DType::F32;
    if !(f32_cpu(x) && f32_cpu(gain)) || x.rank() < 2 || gain.elem_count() != x.dim(1)? {
        return Ok(None);
    }
    Ok(Some(x.contiguous()?.apply_op2(&gain.flatten_all()?.contiguous()?, ChannelNorm)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0f64;
        assert_eq!(exp(-3.4e38), 0.0);
        assert_eq!(exp(-88.0), 0.0);
        let mut x = -80.0f32;
        while x < 80.0 {
            let e = ((exp(x) as f64) - (x as f64).exp()).abs() / (x as f64).exp();
            worst = worst.max(e);
            x += 0.0137;
        }
        assert!(worst < 5e-7, "worst relative error {worst:e}");
    }

    #[test]
    fn ops_match_candle() {
        let x = Tensor::randn(0f32, 3.0, (7, 333), &Device::Cpu).unwrap();
        let max_diff =
            |a: Tensor, b: Tensor| -> f32 { (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap() };
        assert!(max_diff(gelu(&x).unwrap(), x.gelu().unwrap()) < 1e-5);
        assert!(max_diff(silu(&x).unwrap(), x.silu().unwrap()) < 1e-5);
        let s = softmax_last_dim(&x).unwrap();
        assert!(max_diff(s, candle_nn::ops::softmax_last_dim(&x).unwrap()) < 1e-6);
    }

    /// The training channel norm's value and gradients equal the composed version's.
    #[test]
    fn channel_norm_gradients_match_candle() {
        let dev = Device::Cpu;
        let x = candle_core::Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 5, 3, 4, 6), &dev).unwrap()).unwrap();
        let g = candle_core::Var::from_tensor(&Tensor::randn(0f32, 1.0, 5, &dev).unwrap()).unwrap();
        let r = Tensor::randn(0f32, 1.0, (2, 5, 3, 4, 6), &dev).unwrap();
        let composed = |x: &Tensor, g: &Tensor| -> Tensor {
            let norm = x.sqr().unwrap().sum_keepdim(1).unwrap().sqrt().unwrap().maximum(1e-12).unwrap();
            x.broadcast_div(&norm).unwrap().broadcast_mul(&g.reshape((1, 5, 1, 1, 1)).unwrap()).unwrap()
        };
        let ours = channel_rms_norm_train(x.as_tensor(), g.as_tensor()).unwrap().unwrap();
        let theirs = composed(x.as_tensor(), g.as_tensor());
        let rel = |a: &Tensor, b: &Tensor| -> f32 {
            let d = (a - b).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().sqrt();
            d / b.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().sqrt()
        };
        assert!(rel(&ours, &theirs) < 1e-6);
        let ga = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (theirs * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in [("x", &x), ("gain", &g)] {
            let e = rel(ga.get(v).unwrap(), gb.get(v).unwrap());
            assert!(e < 1e-5, "{name}: gradient relative error {e}");
        }
    }

    /// The kernels' backward passes equal the gradients of candle's composed ops.
    #[test]
    fn gradients_match_candle() {
        let dev = Device::Cpu;
        let x = candle_core::Var::from_tensor(&Tensor::randn(0f32, 3.0, (5, 133), &dev).unwrap()).unwrap();
        let r = Tensor::randn(0f32, 1.0, (5, 133), &dev).unwrap();
        let rel = |a: &Tensor, b: &Tensor| -> f32 {
            let d = (a - b).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().sqrt();
            d / b.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().sqrt()
        };
        type F = fn(&Tensor) -> candle_core::Result<Tensor>;
        let cases: [(&str, F, F); 3] = [
            ("gelu", gelu, |x| x.gelu()),
            ("silu", silu, |x| x.silu()),
            ("softmax", softmax_last_dim, |x| candle_nn::ops::softmax(x, candle_core::D::Minus1)),
        ];
        for (name, ours, theirs) in cases {
            let a = ours(x.as_tensor()).unwrap();
            assert!(a.track_op(), "{name}: the fused op must be recorded for backprop");
            let ga = (a * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (theirs(x.as_tensor()).unwrap() * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let e = rel(ga.get(&x).unwrap(), gb.get(&x).unwrap());
            assert!(e < 1e-5, "{name}: gradient relative error {e}");
        }
    }
}
