//! Fast f32 convolution on the CPU for the VAE: 3D (k_t x k x k, temporal stride) and 2D
//! (k_t = 1), stride 1 in space, computed channels-last as a sum of matrix products.
//!
//! Why: candle's CPU conv2d builds its im2col tiles element by element and multiplies
//! (C_out x K) by (K x 512-pixel tiles), a shape the `gemm` crate runs at a quarter of
//! its rate here (BENCHMARKS.md). Here the input is laid out channels-last
//! (T, H+2p, W+2p, C_in), and each row of taps (dt, dy) is one product
//! (pixels x k C_in) @ (k C_in x C_out) read straight from it (the tall-skinny shape gemm
//! runs fastest; no im2col copy: see `forward`). Until 2026-12-01 this built im2col tiles
//! first; at the VAE's channel counts that copy cost as much as the products.

use candle_core::{CpuStorage, DType, Device, Result, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

/// Weights rearranged per tap: (k_t * k * k, C_in, C_out), plus the bias.
#[derive(Debug, Clone)]
pub struct ConvKernel {
    w: Vec<f32>,
    bias: Vec<f32>,
    kt: usize,
    k: usize,
    cin: usize,
    cout: usize,
}

impl ConvKernel {
    /// weight: (C_out, C_in, k_t, k, k) or (C_out, C_in, k, k); bias: (C_out).
    pub fn new(weight: &Tensor, bias: &Tensor) -> Result<Self> {
        let w = if weight.rank() == 4 { weight.unsqueeze(2)? } else { weight.clone() };
        let (cout, cin, kt, k, k2) = w.dims5()?;
        if k != k2 {
            candle_core::bail!("ConvKernel needs a square spatial kernel, got {k}x{k2}");
        }
        // (C_out, C_in, kt, k, k) -> (kt, k, k, C_in, C_out)
        let w: Vec<f32> = w.to_dtype(DType::F32)?.permute((2, 3, 4, 1, 0))?.flatten_all()?.to_vec1()?;
        let bias = bias.to_dtype(DType::F32)?.to_vec1()?;
        Ok(Self { w, bias, kt, k, cin, cout })
    }

    /// x: (B, C_in, T, H, W) f32 on the CPU, already padded in time. Spatial zero padding
    /// `pad` on each side; temporal stride `stride_t`; spatial stride 1. Returns
    /// (B, C_out, T_out, H + 2 pad - k + 1, W + 2 pad - k + 1).
    pub fn forward(&self, x: &Tensor, pad: usize, stride_t: usize) -> Result<Tensor> {
        self.forward_owned(x.clone(), pad, stride_t)
    }

    /// [`Self::forward`] that lets go of `x` once it is copied channels-last, so that
    /// where the caller holds no other handle its memory is free before the output is
    /// allocated (at the VAE's full-resolution stage, 100-150 MB less at the peak).
    pub fn forward_owned(&self, x: Tensor, pad: usize, stride_t: usize) -> Result<Tensor> {
        let (b, cin, t, h, w) = x.dims5()?;
        if cin != self.cin {
            candle_core::bail!("conv expects {} input channels, got {cin}", self.cin);
        }
        let d = Dims::new(&[b, cin, t, h, w], &[self.cout, cin, self.kt, self.k, self.k], pad, stride_t)?;
        let x = x.to_dtype(DType::F32)?.contiguous()?;
        // Another thread's convolution holding the buffer: use a fresh one.
        let mut fresh = Vec::new();
        let mut guard = SCRATCH.try_lock().ok();
        let xs = guard.as_deref_mut().unwrap_or(&mut fresh);
        {
            let (storage, layout) = x.storage_and_layout();
            let src = match (&*storage, layout.contiguous_offsets()) {
                (candle_core::Storage::Cpu(CpuStorage::F32(v)), Some((s0, s1))) => &v[s0..s1],
                _ => candle_core::bail!("conv input must be a contiguous f32 CPU tensor"),
            };
            channels_last_into(src, &d, pad, xs);
        }
        drop(x);
        let out = tap_forward(xs, &self.w, Some(&self.bias), &d, stride_t);
        Tensor::from_vec(out, (b, d.cout, d.t_out, d.ho, d.wo), &Device::Cpu)
    }
}

/// The sizes of one convolution: input (B, C_in, T, H, W), kernel (C_out, C_in, k_t, k, k),
/// spatial padding on each side, temporal stride; with the padded and output sizes.
/// Shared by this inference convolution and the training one (`conv_train`).
pub(crate) struct Dims {
    pub b: usize,
    pub cin: usize,
    pub t: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kt: usize,
    pub k: usize,
    pub hp: usize,
    pub wp: usize,
    pub ho: usize,
    pub wo: usize,
    pub t_out: usize,
}

impl Dims {
    pub fn new(x: &[usize], w: &[usize], pad: usize, stride_t: usize) -> Result<Dims> {
        let (&[b, cin, t, h, wd], &[cout, cin2, kt, k, k2]) = (x, w) else {
            candle_core::bail!("conv3d expects (B, C, T, H, W) and (C_out, C_in, kt, k, k)")
        };
        if cin != cin2 || k != k2 || t < kt {
            candle_core::bail!("conv3d shapes do not match: input {x:?}, kernel {w:?}");
        }
        let (hp, wp) = (h + 2 * pad, wd + 2 * pad);
        Ok(Dims {
            b,
            cin,
            t,
            h,
            w: wd,
            cout,
            kt,
            k,
            hp,
            wp,
            ho: hp + 1 - k,
            wo: wp + 1 - k,
            t_out: (t - kt) / stride_t + 1,
        })
    }

    /// The output rows of one frame in the padded-width layout the tap products use: row
    /// p' = y * Wp + x for x < Wp, so that every tap row's input is one strided view of
    /// the channels-last padded frame (row stride C_in). Columns x >= Wo are junk that is
    /// never read back; the last row stops at Wo so that no read runs past the frame.
    pub fn tap_rows(&self) -> usize {
        (self.ho - 1) * self.wp + self.wo
    }

    /// Offset in the channels-last padded input of tap (dt, dy, dx = 0) for output frame `to`.
    pub fn tap_offset(&self, bi: usize, to: usize, stride_t: usize, dt: usize, dy: usize) -> usize {
        ((bi * self.t + to * stride_t + dt) * self.hp * self.wp + dy * self.wp) * self.cin
    }
}

/// (B, C, T, H, W) values -> channels-last, spatially padded (B, T, Hp, Wp, C), in
/// parallel over frames.
pub(crate) fn channels_last(src: &[f32], d: &Dims, pad: usize) -> Vec<f32> {
    let mut xs = Vec::new();
    channels_last_into(src, d, pad, &mut xs);
    xs
}

/// [`channels_last`] into a reused buffer: only the padding is zeroed, every other value
/// is written.
fn channels_last_into(src: &[f32], d: &Dims, pad: usize, xs: &mut Vec<f32>) {
    let (plane, hw) = (d.hp * d.wp, d.h * d.w);
    let len = d.b * d.t * plane * d.cin;
    xs.truncate(len);
    xs.resize(len, 0.0);
    xs.par_chunks_mut(plane * d.cin).enumerate().for_each(|(bt, dst)| {
        if pad > 0 {
            let row = d.wp * d.cin;
            dst[..pad * row].fill(0.0);
            dst[(pad + d.h) * row..].fill(0.0);
            for y in pad..pad + d.h {
                dst[y * row..][..pad * d.cin].fill(0.0);
                dst[y * row + (pad + d.w) * d.cin..][..pad * d.cin].fill(0.0);
            }
        }
        let (bi, ti) = (bt / d.t, bt % d.t);
        for ci in 0..d.cin {
            let chan = &src[((bi * d.cin + ci) * d.t + ti) * hw..][..hw];
            for y in 0..d.h {
                let row = &chan[y * d.w..(y + 1) * d.w];
                let out = &mut dst[((y + pad) * d.wp + pad) * d.cin + ci..];
                for (xx, v) in row.iter().enumerate() {
                    out[xx * d.cin] = *v;
                }
            }
        }
    });
}

/// The channels-last copy's buffer, kept between convolutions: at the VAE's sizes each
/// copy is 100-200 MB, above glibc's largest mmap threshold, so a fresh one arrives as
/// page faults on zeroed pages every time (about 8% of a decode, `perf`).
/// Freed by [`release_scratch`] when a VAE is dropped.
static SCRATCH: std::sync::Mutex<Vec<f32>> = std::sync::Mutex::new(Vec::new());

/// Returns the convolutions' reused buffer to the allocator (unless a convolution is
/// using it), so that a long-lived process does not keep it between decodes.
pub fn release_scratch() {
    if let Ok(mut s) = SCRATCH.try_lock() {
        *s = Vec::new();
    }
}

/// The convolution by tap rows: for each (dt, dy), (m x C_out) += X (m x k C_in) @
/// W (k C_in x C_out), X's row p' being the k C_in contiguous values at the tap's offset
/// plus p' C_in of the channels-last input `xs`; `wk` is (k_t, k, k, C_in, C_out). Returns
/// (B, C_out, T_out, Ho, Wo), junk columns dropped, plus `bias` when given.
///
/// Work is split into bands of output rows, one task each: a band's accumulator (at most
/// `ACC_FLOATS`) stays in the core's L2 while all k_t * k tap products add into it and it
/// is written out channels-first. Until 2026-12-08 each product covered a whole frame
/// (a 25 MB accumulator at 256x256 with 96 channels, read and written back once per tap)
/// and was split between threads inside `gemm`.
pub(crate) fn tap_forward(xs: &[f32], wk: &[f32], bias: Option<&[f32]>, d: &Dims, stride_t: usize) -> Vec<f32> {
    /// Accumulator floats per band: 512 KiB.
    const ACC_FLOATS: usize = 128 << 10;
    let (m, kc, cout) = (d.tap_rows(), d.k * d.cin, d.cout);
    let frame_out = d.ho * d.wo;
    // Bands of a multiple of 64 rows (the AVX-512 microkernel's height).
    let band = ((ACC_FLOATS / cout.max(1)) / 64 * 64).clamp(64, m.next_multiple_of(64));
    let bands = m.div_ceil(band);
    // Every band reads at most rows p' < m of its tap views: check the largest offset once.
    for bi in 0..d.b {
        for to in 0..d.t_out {
            let last = d.tap_offset(bi, to, stride_t, d.kt - 1, d.k - 1);
            assert!(last + (m - 1) * d.cin + kc <= xs.len(), "conv tap rows out of bounds");
        }
    }
    assert!(wk.len() >= d.kt * d.k * kc * cout, "conv weights too short");
    let mut out = vec![0f32; d.b * cout * d.t_out * frame_out];
    let out_ptr = out.as_mut_ptr() as usize;
    (0..d.b * d.t_out * bands).into_par_iter().for_each_init(
        || vec![0f32; band * cout],
        |acc, task| {
            let (frame, bd) = (task / bands, task % bands);
            let (bi, to) = (frame / d.t_out, frame % d.t_out);
            let p0 = bd * band;
            let rows = band.min(m - p0);
            for dt in 0..d.kt {
                for dy in 0..d.k {
                    let off = d.tap_offset(bi, to, stride_t, dt, dy) + p0 * d.cin;
                    let wblock = (dt * d.k + dy) * kc * cout;
                    // SAFETY: rows p0 + p' < m read xs[off + p' cin .. + kc] (checked above
                    // for the largest tap offset; the others are smaller), the weight block
                    // is kc x cout (checked above); acc holds band >= rows rows of cout;
                    // all row-major with unit column stride, and acc aliases neither input.
                    unsafe {
                        gemm::gemm(
                            rows,
                            cout,
                            kc,
                            acc.as_mut_ptr(),
                            1,
                            cout as isize,
                            dt + dy > 0,
                            xs.as_ptr().add(off),
                            1,
                            d.cin as isize,
                            wk.as_ptr().add(wblock),
                            1,
                            cout as isize,
                            1.0,
                            1.0,
                            false,
                            false,
                            false,
                            Parallelism::None,
                        );
                    }
                }
            }
            // Channels-first, junk columns dropped, plus the bias. This task alone writes
            // output pixels p0 <= y Wp + x < p0 + rows of frame (bi, to).
            let base = bi * cout * d.t_out * frame_out + to * frame_out;
            for co in 0..cout {
                let b = bias.map_or(0.0, |b| b[co]);
                let plane = base + co * d.t_out * frame_out;
                for p in p0..p0 + rows {
                    let (y, x) = (p / d.wp, p % d.wp);
                    if x < d.wo {
                        // SAFETY: plane + y wo + x < out.len() (y < ho, x < wo); no two
                        // tasks write the same pixel, and out outlives the loop.
                        unsafe { *(out_ptr as *mut f32).add(plane + y * d.wo + x) = acc[(p - p0) * cout + co] + b };
                    }
                }
            }
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path equals candle's conv2d summed over temporal taps.
    #[test]
    fn matches_candle_conv() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (1, 5, 4, 7, 6), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (3, 5, 3, 3, 3), &dev).unwrap();
        let bias = Tensor::randn(0f32, 1.0, 3, &dev).unwrap();
        let k = ConvKernel::new(&w, &bias).unwrap();
        for stride_t in [1, 2] {
            let y = k.forward(&x, 1, stride_t).unwrap();
            let t_out = (4 - 3) / stride_t + 1;
            let mut want: Option<Tensor> = None;
            for dt in 0..3 {
                let idx: Vec<u32> = (0..t_out).map(|j| (dt + j * stride_t) as u32).collect();
                let xi = x.index_select(&Tensor::new(idx, &dev).unwrap(), 2).unwrap();
                let xi = xi.permute((0, 2, 1, 3, 4)).unwrap().reshape((t_out, 5, 7, 6)).unwrap();
                let wi = w.narrow(2, dt, 1).unwrap().squeeze(2).unwrap().contiguous().unwrap();
                let yi = xi.conv2d(&wi, 1, 1, 1, 1).unwrap();
                want = Some(match want {
                    Some(a) => (a + yi).unwrap(),
                    None => yi,
                });
            }
            let want = want
                .unwrap()
                .broadcast_add(&bias.reshape((1, 3, 1, 1)).unwrap())
                .unwrap()
                .reshape((1, t_out, 3, 7, 6))
                .unwrap()
                .permute((0, 2, 1, 3, 4))
                .unwrap();
            let d = (y - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(d < 1e-4, "stride {stride_t}: max abs diff {d}");
        }
    }
}
