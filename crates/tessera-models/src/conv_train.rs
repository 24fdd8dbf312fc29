//! A differentiable 3D convolution for training on the CPU (f32), as sums of `gemm`
//! products over a channels-last, spatially padded copy of the input, with no im2col.
//!
//! Channels-last, the input rows that one tap row (dt, dy) reads for output pixels
//! p' = y * Wp + x are a single strided view: row p' is the k * C_in contiguous values at
//! the tap's offset + p' * C_in (the k dx taps of a pixel sit side by side). So the
//! forward pass is k_t * k products (pixels x k C_in) @ (k C_in x C_out) straight from
//! the input, the weight gradient k_t * k products Xᵀ dY, and the input gradient one
//! product dY Wᵀ per tap accumulated at the tap's offset. The output rows carry Wp - Wo
//! junk columns per row, cropped at the end. The im2col formulation this replaced wrote
//! and read a k_t k k-times copy of every frame (28 MB per 128x128 frame at 16 channels)
//! and ran 2 to 5 times slower at the VAE's channel counts (BENCHMARKS.md, training).
//!
//! Spatial stride 1 and zero padding `pad` on each side; temporal stride `stride_t`, no
//! temporal padding (the causal padding is the caller's).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use gemm::Parallelism;

use crate::conv::{channels_last, tap_forward, Dims};

#[derive(Debug, Clone, Copy)]
pub struct Conv3dTrain {
    pub pad: usize,
    pub stride_t: usize,
}

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("conv3d (training) needs contiguous f32 CPU tensors"),
    }
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

/// dst (m x n) = beta * lhs (m x k) @ rhs (k x n) (+ dst when `accumulate`), with strides
/// given as (row stride, column stride).
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    dst_cs: usize,
    accumulate: bool,
    lhs: *const f32,
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: *const f32,
    rhs_rs: usize,
    rhs_cs: usize,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dst_cs as isize,
        dst_rs as isize,
        accumulate,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        Parallelism::Rayon(0),
    );
}

/// The forward pass: the inference convolution's tap-row products ([`tap_forward`]) on
/// the weights rearranged per tap, without a bias.
fn forward_taps(x: &[f32], w: &[f32], d: &Dims, pad: usize, stride_t: usize) -> Vec<f32> {
    tap_forward(&channels_last(x, d, pad), &weights_k_by_cout(w, d), None, d, stride_t)
}

/// Backward by tap rows: dW block (k C_in x C_out) += Xᵀ dY per (dt, dy); dX at each tap's
/// offset += dY Wᵀ per (dt, dy, dx) (one product per tap: a product's output rows must
/// not overlap, and the dx taps' would).
fn backward_taps(x: &[f32], w: &[f32], g: &[f32], d: &Dims, pad: usize, stride_t: usize) -> (Vec<f32>, Vec<f32>) {
    let xs = channels_last(x, d, pad);
    // Per tap a (C_in x C_out) block; read with transposed strides it is that tap's Wᵀ.
    let wk = weights_k_by_cout(w, d);
    let m = d.tap_rows();
    let kc = d.k * d.cin;
    let frame = d.ho * d.wo;
    let taps = d.kt * d.k * d.k;
    let mut dwk = vec![0f32; taps * d.cin * d.cout];
    let mut dxs = vec![0f32; xs.len()];
    let mut gy = vec![0f32; m * d.cout];
    for bi in 0..d.b {
        for to in 0..d.t_out {
            // dY of this frame in the padded-width layout, zero in the junk columns.
            gy.fill(0.0);
            for co in 0..d.cout {
                let src = &g[((bi * d.cout + co) * d.t_out + to) * frame..][..frame];
                for y in 0..d.ho {
                    for x in 0..d.wo {
                        gy[(y * d.wp + x) * d.cout + co] = src[y * d.wo + x];
                    }
                }
            }
            for dt in 0..d.kt {
                for dy in 0..d.k {
                    let off = d.tap_offset(bi, to, stride_t, dt, dy);
                    let row = (dt * d.k + dy) * d.k;
                    // SAFETY: as in tap_forward; dwk block is kc x cout, the wk block of tap
                    // (row + dx) is cin x cout (read as cout x cin), and dxs rows p' < m at
                    // off + dx cin + p' cin stay inside the frame.
                    unsafe {
                        matmul(
                            kc,
                            d.cout,
                            m,
                            dwk.as_mut_ptr().add(row * d.cin * d.cout),
                            d.cout,
                            1,
                            true,
                            xs.as_ptr().add(off),
                            1,
                            d.cin,
                            gy.as_ptr(),
                            d.cout,
                            1,
                        );
                        for dx in 0..d.k {
                            matmul(
                                m,
                                d.cin,
                                d.cout,
                                dxs.as_mut_ptr().add(off + dx * d.cin),
                                d.cin,
                                1,
                                true,
                                gy.as_ptr(),
                                d.cout,
                                1,
                                wk.as_ptr().add((row + dx) * d.cin * d.cout),
                                1,
                                d.cout,
                            );
                        }
                    }
                }
            }
        }
    }
    // Back to (B, C_in, T, H, W) without the padding; and (C_out, C_in, kt, k, k).
    let hw = d.h * d.w;
    let plane = d.hp * d.wp;
    let mut dx = vec![0f32; x.len()];
    for bi in 0..d.b {
        for ci in 0..d.cin {
            for ti in 0..d.t {
                let fr = (bi * d.t + ti) * plane;
                let out = &mut dx[((bi * d.cin + ci) * d.t + ti) * hw..][..hw];
                for y in 0..d.h {
                    for xx in 0..d.w {
                        out[y * d.w + xx] = dxs[(fr + (y + pad) * d.wp + xx + pad) * d.cin + ci];
                    }
                }
            }
        }
    }
    let mut dw = vec![0f32; w.len()];
    for co in 0..d.cout {
        for ci in 0..d.cin {
            for tap in 0..taps {
                dw[(co * d.cin + ci) * taps + tap] = dwk[(tap * d.cin + ci) * d.cout + co];
            }
        }
    }
    (dx, dw)
}

/// Times the op's forward and backward on one shape (the conv_train_rate example).
#[doc(hidden)]
pub fn time_op(x: &[usize], w: &[usize], pad: usize, stride_t: usize) -> Result<[f64; 2]> {
    let dev = candle_core::Device::Cpu;
    let xv: Vec<f32> = (0..x.iter().product::<usize>()).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    let wv: Vec<f32> = (0..w.iter().product::<usize>()).map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5).collect();
    let (xt, wt) = (Tensor::from_vec(xv, x, &dev)?, Tensor::from_vec(wv, w, &dev)?);
    let op = Conv3dTrain { pad, stride_t };
    let t0 = std::time::Instant::now();
    let y = xt.apply_op2(&wt, op)?;
    let t1 = std::time::Instant::now();
    let _ = op.bwd(&xt, &wt, &y, &y)?;
    Ok([(t1 - t0).as_secs_f64(), t1.elapsed().as_secs_f64()])
}

impl CustomOp2 for Conv3dTrain {
    fn name(&self) -> &'static str {
        "conv3d-train"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = Dims::new(l1.dims(), l2.dims(), self.pad, self.stride_t)?;
        let (x, w) = (contiguous(s1, l1)?, contiguous(s2, l2)?);
        let out = forward_taps(x, w, &d, self.pad, self.stride_t);
        Ok((CpuStorage::F32(out), Shape::from((d.b, d.cout, d.t_out, d.ho, d.wo))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = Dims::new(x.dims(), w.dims(), self.pad, self.stride_t)?;
        let xv: Vec<f32> = x.contiguous()?.flatten_all()?.to_vec1()?;
        let wv: Vec<f32> = w.contiguous()?.flatten_all()?.to_vec1()?;
        let gv: Vec<f32> = grad.contiguous()?.flatten_all()?.to_vec1()?;
        let (dx, dw) = backward_taps(&xv, &wv, &gv, &d, self.pad, self.stride_t);
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
        for (cin, cout, kt, k, pad, stride_t, t) in
            [(3, 5, 3, 3, 1, 1, 5), (4, 2, 3, 3, 1, 2, 7), (2, 3, 1, 1, 0, 1, 2), (3, 4, 1, 3, 1, 1, 3)]
        {
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
