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
        let w = if weight.rank() == 4 {
            weight.unsqueeze(2)?
        } else {
            weight.clone()
        };
        let (cout, cin, kt, k, k2) = w.dims5()?;
        if k != k2 {
            candle_core::bail!("ConvKernel needs a square spatial kernel, got {k}x{k2}");
        }
        // (C_out, C_in, kt, k, k) -> (kt, k, k, C_in, C_out)
        let w: Vec<f32> = w
            .to_dtype(DType::F32)?
            .permute((2, 3, 4, 1, 0))?
            .flatten_all()?
            .to_vec1()?;
        let bias = bias.to_dtype(DType::F32)?.to_vec1()?;
        Ok(Self {
            w,
            bias,
            kt,
            k,
            cin,
            cout,
        })
    }

    /// x: (B, C_in, T, H, W) f32 on the CPU, already padded in time. Spatial zero padding
    /// `pad` on each side; temporal stride `stride_t`; spatial stride 1. Returns
    /// (B, C_out, T_out, H + 2 pad - k + 1, W + 2 pad - k + 1).
    pub fn forward(&self, x: &Tensor, pad: usize, stride_t: usize) -> Result<Tensor> {
        let (b, cin, t, h, w) = x.dims5()?;
        if cin != self.cin {
            candle_core::bail!("conv expects {} input channels, got {cin}", self.cin);
        }
        let (k, kt, cout) = (self.k, self.kt, self.cout);
        let (hp, wp) = (h + 2 * pad, w + 2 * pad);
        let (ho, wo) = (hp + 1 - k, wp + 1 - k);
        let t_out = (t - kt) / stride_t + 1;
        // Channels-last, spatially padded copy of the input: (B, T, Hp, Wp, C_in), written
        // in one pass straight from the tensor's storage.
        let x = x.to_dtype(DType::F32)?.contiguous()?;
        let plane = hp * wp;
        let mut xs = vec![0f32; b * t * plane * cin];
        {
            let (storage, layout) = x.storage_and_layout();
            let src = match (&*storage, layout.contiguous_offsets()) {
                (candle_core::Storage::Cpu(CpuStorage::F32(v)), Some((s0, s1))) => &v[s0..s1],
                _ => candle_core::bail!("conv input must be a contiguous f32 CPU tensor"),
            };
            let hw = h * w;
            // Parallel over (batch, frame): each writes its own padded frame.
            xs.par_chunks_mut(plane * cin)
                .enumerate()
                .for_each(|(bt, dst)| {
                    let (bi, ti) = (bt / t, bt % t);
                    for ci in 0..cin {
                        let chan = &src[((bi * cin + ci) * t + ti) * hw..][..hw];
                        for y in 0..h {
                            let row = &chan[y * w..(y + 1) * w];
                            let out = &mut dst[((y + pad) * wp + pad) * cin + ci..];
                            for (xx, v) in row.iter().enumerate() {
                                out[xx * cin] = *v;
                            }
                        }
                    }
                });
        }
        // Output rows in the padded-width layout p' = y * Wp + x: every tap row (dt, dy)
        // then reads one strided view of the padded frame (row p' = the k * C_in contiguous
        // values at the tap's offset + p' C_in), so the convolution is k_t * k products
        // (pixels x k C_in) @ (k C_in x C_out) with no im2col copy. The Wp - Wo junk columns
        // of each row are dropped when the result is written channels-first; the last row
        // stops at Wo so that no read runs past the frame.
        let m = (ho - 1) * wp + wo;
        let kc = k * cin;
        let frame_out = ho * wo;
        let mut out = vec![0f32; b * cout * t_out * frame_out];
        let mut acc = vec![0f32; m * cout];
        for bi in 0..b {
            for to in 0..t_out {
                for dt in 0..kt {
                    for dy in 0..k {
                        let off = ((bi * t + to * stride_t + dt) * plane + dy * wp) * cin;
                        let wblock = (dt * k + dy) * kc * cout;
                        assert!(off + (m - 1) * cin + kc <= xs.len(), "conv tap rows out of bounds");
                        // SAFETY: rows p' < m read xs[off + p' cin .. + kc] (checked above);
                        // the weight block is kc x cout and acc m x cout, both row-major
                        // with unit column stride; acc aliases neither input.
                        unsafe {
                            gemm::gemm(
                                m,
                                cout,
                                kc,
                                acc.as_mut_ptr(),
                                1,
                                cout as isize,
                                dt + dy > 0,
                                xs.as_ptr().add(off),
                                1,
                                cin as isize,
                                self.w.as_ptr().add(wblock),
                                1,
                                cout as isize,
                                1.0,
                                1.0,
                                false,
                                false,
                                false,
                                Parallelism::Rayon(0),
                            );
                        }
                    }
                }
                // Channels-first, junk columns dropped, plus the bias.
                let acc = &acc;
                out.par_chunks_mut(t_out * frame_out)
                    .enumerate()
                    .filter(|(bc, _)| bc / cout == bi)
                    .for_each(|(bc, planes)| {
                        let co = bc % cout;
                        let bias = self.bias[co];
                        let dst = &mut planes[to * frame_out..][..frame_out];
                        for y in 0..ho {
                            for x in 0..wo {
                                dst[y * wo + x] = acc[(y * wp + x) * cout + co] + bias;
                            }
                        }
                    });
            }
        }
        Tensor::from_vec(out, (b, cout, t_out, ho, wo), &Device::Cpu)
    }
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
                let xi = xi
                    .permute((0, 2, 1, 3, 4))
                    .unwrap()
                    .reshape((t_out, 5, 7, 6))
                    .unwrap();
                let wi = w
                    .narrow(2, dt, 1)
                    .unwrap()
                    .squeeze(2)
                    .unwrap()
                    .contiguous()
                    .unwrap();
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
            let d = (y - want)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-4, "stride {stride_t}: max abs diff {d}");
        }
    }
}
