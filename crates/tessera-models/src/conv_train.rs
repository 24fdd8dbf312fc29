//! A differentiable 3D convolution for training on the CPU (f32): the same channels-last
//! im2col and `gemm` products as [`crate::conv`], with a backward pass made of two more
//! products per tile (dW += colᵀ dY, dcol = dY Wᵀ) and a col2im scatter. candle's conv2d
//! per temporal tap is differentiable too, but its small-channel products and
//! conv_transpose2d backward run at a few GFLOP/s here (BENCHMARKS.md, training).
//!
//! Spatial stride 1 and zero padding `pad` on each side; temporal stride `stride_t`, no
//! temporal padding (the causal padding is the caller's).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use gemm::Parallelism;

/// A raw pointer shared by tasks that write disjoint elements.
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

#[derive(Debug, Clone, Copy)]
pub struct Conv3dTrain {
    pub pad: usize,
    pub stride_t: usize,
}

struct Dims {
    b: usize,
    cin: usize,
    t: usize,
    h: usize,
    w: usize,
    cout: usize,
    kt: usize,
    k: usize,
    hp: usize,
    wp: usize,
    ho: usize,
    wo: usize,
    t_out: usize,
}

impl Dims {
    fn new(x: &[usize], w: &[usize], pad: usize, stride_t: usize) -> Result<Dims> {
        let (&[b, cin, t, h, wd], &[cout, cin2, kt, k, k2]) = (x, w) else {
            candle_core::bail!("conv3d expects (B, C, T, H, W) and (C_out, C_in, kt, k, k)")
        };
        if cin != cin2 || k != k2 || t < kt {
            candle_core::bail!("conv3d shapes do not match: input {x:?}, kernel {w:?}");
        }
        let (hp, wp) = (h + 2 * pad, wd + 2 * pad);
        Ok(Dims { b, cin, t, h, w: wd, cout, kt, k, hp, wp, ho: hp + 1 - k, wo: wp + 1 - k, t_out: (t - kt) / stride_t + 1 })
    }
    fn kk(&self) -> usize {
        self.kt * self.k * self.k * self.cin
    }
}

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("conv3d (training) needs contiguous f32 CPU tensors"),
    }
}

/// (B, C, T, H, W) -> channels-last, spatially padded (B, T, Hp, Wp, C).
fn to_channels_last(src: &[f32], d: &Dims, pad: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let mut xs = vec![0f32; d.b * d.t * d.hp * d.wp * d.cin];
    let hw = d.h * d.w;
    // Parallel over (batch, frame): each writes its own padded frame.
    xs.par_chunks_mut(d.hp * d.wp * d.cin).enumerate().for_each(|(bt, frame)| {
        let (bi, ti) = (bt / d.t, bt % d.t);
        {
            for ci in 0..d.cin {
                let chan = &src[((bi * d.cin + ci) * d.t + ti) * hw..][..hw];
                for y in 0..d.h {
                    for x in 0..d.w {
                        frame[((y + pad) * d.wp + x + pad) * d.cin + ci] = chan[y * d.w + x];
                    }
                }
            }
        }
    });
    xs
}

/// (C_out, C_in, kt, k, k) -> (kt, k, k, C_in, C_out) = (K x C_out).
fn weights_k_by_cout(w: &[f32], d: &Dims) -> Vec<f32> {
    let taps = d.kt * d.k * d.k;
    let mut out = vec![0f32; taps * d.cin * d.cout];
    for co in 0..d.cout {
        for ci in 0..d.cin {
            for tap in 0..taps {
                out[(tap * d.cin + ci) * d.cout + co] = w[(co * d.cin + ci) * taps + tap];
            }
        }
    }
    out
}

/// im2col of one output frame: row p (pixel) = all taps of all input channels.
fn im2col(xs: &[f32], d: &Dims, bi: usize, to: usize, stride_t: usize, col: &mut [f32]) {
    let kk = d.kk();
    let plane = d.hp * d.wp;
    for p in 0..d.ho * d.wo {
        let (y, x) = (p / d.wo, p % d.wo);
        let dst = &mut col[p * kk..(p + 1) * kk];
        for dt in 0..d.kt {
            let frame = (bi * d.t + to * stride_t + dt) * plane;
            for dy in 0..d.k {
                for dx in 0..d.k {
                    let tap = (dt * d.k + dy) * d.k + dx;
                    let src = (frame + (y + dy) * d.wp + x + dx) * d.cin;
                    dst[tap * d.cin..(tap + 1) * d.cin].copy_from_slice(&xs[src..src + d.cin]);
                }
            }
        }
    }
}

/// dst (m x n) = beta * lhs (m x k) @ rhs (k x n) (+ dst when `accumulate`), with strides
/// given as (row stride, column stride).
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(m: usize, n: usize, k: usize, dst: *mut f32, dst_rs: usize, dst_cs: usize, accumulate: bool, lhs: *const f32, lhs_rs: usize, lhs_cs: usize, rhs: *const f32, rhs_rs: usize, rhs_cs: usize) {
    gemm::gemm(m, n, k, dst, dst_cs as isize, dst_rs as isize, accumulate, lhs, lhs_cs as isize, lhs_rs as isize, rhs, rhs_cs as isize, rhs_rs as isize, 1.0, 1.0, false, false, false, Parallelism::Rayon(0));
}

impl CustomOp2 for Conv3dTrain {
    fn name(&self) -> &'static str {
        "conv3d-train"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = Dims::new(l1.dims(), l2.dims(), self.pad, self.stride_t)?;
        let (x, w) = (contiguous(s1, l1)?, contiguous(s2, l2)?);
        let xs = to_channels_last(x, &d, self.pad);
        let wk = weights_k_by_cout(w, &d);
        let (kk, frame) = (d.kk(), d.ho * d.wo);
        let mut out = vec![0f32; d.b * d.cout * d.t_out * frame];
        let mut col = vec![0f32; frame * kk];
        for bi in 0..d.b {
            for to in 0..d.t_out {
                im2col(&xs, &d, bi, to, self.stride_t, &mut col);
                let offset = (bi * d.cout * d.t_out + to) * frame;
                // SAFETY: col is frame x kk, wk is kk x cout; dst element (p, c) at
                // offset + c * t_out * frame + p lies inside `out`.
                unsafe {
                    matmul(frame, d.cout, kk, out.as_mut_ptr().add(offset), 1, d.t_out * frame, false, col.as_ptr(), kk, 1, wk.as_ptr(), d.cout, 1);
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((d.b, d.cout, d.t_out, d.ho, d.wo))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = Dims::new(x.dims(), w.dims(), self.pad, self.stride_t)?;
        let xv: Vec<f32> = x.contiguous()?.flatten_all()?.to_vec1()?;
        let wv: Vec<f32> = w.contiguous()?.flatten_all()?.to_vec1()?;
        let gv: Vec<f32> = grad.contiguous()?.flatten_all()?.to_vec1()?;
        let xs = to_channels_last(&xv, &d, self.pad);
        let wk = weights_k_by_cout(&wv, &d);
        let (kk, frame) = (d.kk(), d.ho * d.wo);
        let mut dwk = vec![0f32; kk * d.cout];
        let mut dxs = vec![0f32; xs.len()];
        let mut col = vec![0f32; frame * kk];
        let mut dcol = vec![0f32; frame * kk];
        let plane = d.hp * d.wp;
        for bi in 0..d.b {
            for to in 0..d.t_out {
                im2col(&xs, &d, bi, to, self.stride_t, &mut col);
                let g = (bi * d.cout * d.t_out + to) * frame;
                // SAFETY: as in the forward pass; every index stays inside its buffer.
                unsafe {
                    // dW (kk x cout) += colᵀ (kk x frame) @ dY (frame x cout).
                    matmul(kk, d.cout, frame, dwk.as_mut_ptr(), d.cout, 1, true, col.as_ptr(), 1, kk, gv.as_ptr().add(g), 1, d.t_out * frame);
                    // dcol (frame x kk) = dY (frame x cout) @ Wᵀ (cout x kk).
                    matmul(frame, kk, d.cout, dcol.as_mut_ptr(), kk, 1, false, gv.as_ptr().add(g), 1, d.t_out * frame, wk.as_ptr(), 1, d.cout);
                }
                // col2im: scatter the columns back onto the input they were read from.
                // Pixels overlap, channels do not: split the channels between threads.
                let threads = rayon::current_num_threads().clamp(1, d.cin);
                let per = d.cin.div_ceil(threads);
                let base = SendPtr(dxs.as_mut_ptr());
                let dcol = &dcol;
                rayon::scope(|sc| {
                    for c0 in (0..d.cin).step_by(per) {
                        let c1 = (c0 + per).min(d.cin);
                        let base = &base;
                        sc.spawn(move |_| {
                            for p in 0..frame {
                                let (y, x) = (p / d.wo, p % d.wo);
                                let src = &dcol[p * kk..(p + 1) * kk];
                                for dt in 0..d.kt {
                                    let fr = (bi * d.t + to * self.stride_t + dt) * plane;
                                    for dy in 0..d.k {
                                        for dx in 0..d.k {
                                            let tap = (dt * d.k + dy) * d.k + dx;
                                            let dst = (fr + (y + dy) * d.wp + x + dx) * d.cin;
                                            for c in c0..c1 {
                                                // SAFETY: each task writes only channels
                                                // c0..c1 of dxs (in bounds: dst + c <
                                                // dxs.len()), so no two tasks touch the
                                                // same element.
                                                unsafe { *base.0.add(dst + c) += src[tap * d.cin + c] };
                                            }
                                        }
                                    }
                                }
                            }
                        });
                    }
                });
            }
        }
        // Back to (B, C_in, T, H, W), dropping the padding; and (C_out, C_in, kt, k, k).
        let mut dx = vec![0f32; xv.len()];
        let hw = d.h * d.w;
        {
            use rayon::prelude::*;
            // Parallel over (batch, channel) planes of the result.
            dx.par_chunks_mut(d.t * hw).enumerate().for_each(|(bc, out)| {
                let (bi, ci) = (bc / d.cin, bc % d.cin);
                for ti in 0..d.t {
                    let fr = (bi * d.t + ti) * plane;
                    for y in 0..d.h {
                        for x in 0..d.w {
                            out[ti * hw + y * d.w + x] = dxs[(fr + (y + self.pad) * d.wp + x + self.pad) * d.cin + ci];
                        }
                    }
                }
            });
        }
        let taps = d.kt * d.k * d.k;
        let mut dw = vec![0f32; wv.len()];
        for co in 0..d.cout {
            for ci in 0..d.cin {
                for tap in 0..taps {
                    dw[(co * d.cin + ci) * taps + tap] = dwk[(tap * d.cin + ci) * d.cout + co];
                }
            }
        }
        Ok((Some(Tensor::from_vec(dx, x.dims(), x.device())?), Some(Tensor::from_vec(dw, w.dims(), w.device())?)))
    }
}

/// conv3d with the trainable op: f32 on the CPU, else None (the caller falls back).
pub fn conv3d(x: &Tensor, w: &Tensor, pad: usize, stride_t: usize) -> Result<Option<Tensor>> {
    use candle_core::DType;
    if !(x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32) {
        return Ok(None);
    }
    Ok(Some(x.contiguous()?.apply_op2(&w.contiguous()?, Conv3dTrain { pad, stride_t })?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The reference: candle's conv2d per temporal tap (differentiable by candle).
    fn reference(x: &Tensor, w: &Tensor, pad: usize, stride_t: usize) -> Tensor {
        let (_, _, kt, _, _) = w.dims5().unwrap();
        let (b, _, t, _, _) = x.dims5().unwrap();
        let t_out = (t - kt) / stride_t + 1;
        let mut out: Option<Tensor> = None;
        for a in 0..kt {
            let idx: Vec<u32> = (0..t_out).map(|j| (a + j * stride_t) as u32).collect();
            let xi = x.index_select(&Tensor::new(idx, x.device()).unwrap(), 2).unwrap();
            let (_, c, tt, h, ww) = xi.dims5().unwrap();
            let frames = xi.permute((0, 2, 1, 3, 4)).unwrap().reshape((b * tt, c, h, ww)).unwrap();
            let wa = w.narrow(2, a, 1).unwrap().squeeze(2).unwrap();
            let y = frames.conv2d(&wa, pad, 1, 1, 1).unwrap();
            let (_, co, ho, wo) = y.dims4().unwrap();
            let y = y.reshape((b, tt, co, ho, wo)).unwrap().permute((0, 2, 1, 3, 4)).unwrap();
            out = Some(match out {
                Some(o) => (o + y).unwrap(),
                None => y,
            });
        }
        out.unwrap()
    }

    fn rel(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().sqrt();
        d / b.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().sqrt()
    }

    #[test]
    fn forward_and_gradients_match_candle() {
        let dev = Device::Cpu;
        for (cin, cout, kt, k, pad, stride_t, t) in [(3, 5, 3, 3, 1, 1, 5), (4, 2, 3, 3, 1, 2, 7), (2, 3, 1, 1, 0, 1, 2), (3, 4, 1, 3, 1, 1, 3)] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, cin, t, 6, 7), &dev).unwrap()).unwrap();
            let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (cout, cin, kt, k, k), &dev).unwrap()).unwrap();
            let ours = conv3d(x.as_tensor(), w.as_tensor(), pad, stride_t).unwrap().unwrap();
            let theirs = reference(x.as_tensor(), w.as_tensor(), pad, stride_t);
            assert_eq!(ours.dims(), theirs.dims());
            assert!(rel(&ours, &theirs) < 1e-5, "forward {}", rel(&ours, &theirs));
            let r = Tensor::randn(0f32, 1.0, ours.dims(), &dev).unwrap();
            let g1 = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (theirs * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&x, &w] {
                let (a, b) = (g1.get(v).unwrap(), g2.get(v).unwrap());
                assert!(rel(a, b) < 1e-5, "gradient {} (cin {cin}, kt {kt}, stride {stride_t})", rel(a, b));
            }
        }
    }
}
