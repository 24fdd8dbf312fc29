//! Fast f32 convolution on the CPU for the VAE: 3D (k_t x k x k, temporal stride) and 2D
//! (k_t = 1), stride 1 in space, computed channels-last as a sum of matrix products.
//!
//! Why: candle's CPU conv2d builds its im2col tiles element by element and multiplies
//! (C_out x K) by (K x 512-pixel tiles), a shape the `gemm` crate runs at a quarter of
//! its rate here (BENCHMARKS.md). Here the input is laid out channels-last
//! (T, H+2p, W+2p, C_in), so an im2col row (one output pixel, all taps) is k_t*k*k
//! memcpys of C_in floats, built in parallel for a band of rows; the product
//! (pixels x K) @ (K x C_out) is the tall-skinny shape gemm runs fastest, and it lands
//! directly in the output rows, which start as the bias.

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
        let taps = kt * k * k;
        let kk = taps * cin;
        // Rows of output per tile, so that one im2col tile stays around 32 MB.
        let rows = ((8 << 20) / (kk * wo).max(1)).clamp(1, ho);
        let frame_out = ho * wo;
        // Output in (B, C_out, T_out, Ho, Wo), each channel plane starting as its bias.
        let mut out = vec![0f32; b * cout * t_out * frame_out];
        out.par_chunks_mut(t_out * frame_out)
            .enumerate()
            .for_each(|(bc, plane_out)| {
                plane_out.fill(self.bias[bc % cout]);
            });
        let mut col = vec![0f32; rows * wo * kk];
        for bi in 0..b {
            for to in 0..t_out {
                let mut y0 = 0;
                while y0 < ho {
                    let y1 = (y0 + rows).min(ho);
                    let n = (y1 - y0) * wo;
                    // im2col: row p = pixel, columns = (tap, C_in); one memcpy per tap.
                    col[..n * kk]
                        .par_chunks_mut(kk)
                        .enumerate()
                        .for_each(|(p, dst)| {
                            let (y, x) = (y0 + p / wo, p % wo);
                            for dt in 0..kt {
                                let frame = (bi * t + to * stride_t + dt) * plane;
                                for dy in 0..k {
                                    for dx in 0..k {
                                        let tap = (dt * k + dy) * k + dx;
                                        let src = (frame + (y + dy) * wp + x + dx) * cin;
                                        dst[tap * cin..(tap + 1) * cin]
                                            .copy_from_slice(&xs[src..src + cin]);
                                    }
                                }
                            }
                        });
                    // (pixels x C_out) written transposed into the channel planes:
                    // pixel stride 1, channel stride T_out * Ho * Wo.
                    let offset = (bi * cout * t_out + to) * frame_out + y0 * wo;
                    let last = offset + (cout - 1) * t_out * frame_out + n;
                    assert!(last <= out.len(), "conv output tile out of bounds");
                    // SAFETY: col is n x kk and w is kk x cout, row-major with unit column
                    // stride; every dst element (offset + c * t_out * frame_out + p for
                    // p < n, c < cout) is inside `out` (checked above), which aliases
                    // neither input.
                    unsafe {
                        gemm::gemm(
                            n,
                            cout,
                            kk,
                            out.as_mut_ptr().add(offset),
                            (t_out * frame_out) as isize,
                            1,
                            true,
                            col.as_ptr(),
                            1,
                            kk as isize,
                            self.w.as_ptr(),
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
                    y0 = y1;
                }
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
