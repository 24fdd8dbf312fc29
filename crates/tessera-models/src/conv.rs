//! Fast f32 convolution on the CPU for the VAE: 3D (k_t x k x k, temporal stride) and 2D
//! (k_t = 1), stride 1 in space, computed channels-last as a sum of matrix products.
//!
//! Why: candle's CPU conv2d builds its im2col tiles pixel by pixel and multiplies
//! (C_out x K) by (K x 512-pixel tiles); on this class of machine that runs at a quarter
//! of the matmul rate. Here the input is laid out (T, H+2p, W+2p, C_in), so for every
//! kernel tap the pixels it meets form a contiguous (N x C_in) matrix when outputs are
//! computed over the padded row pitch (the few columns between rows are discarded):
//! out (N x C_out) += X_tap (N x C_in) @ W_tap (C_in x C_out), accumulated in place by
//! the `gemm` crate (the one candle uses). No im2col copy is made.

use candle_core::{DType, Device, Result, Tensor};
use gemm::Parallelism;

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
        // Channels-last, spatially padded input: (B, T, Hp, Wp, C_in).
        let mut xc = x.to_dtype(DType::F32)?.permute((0, 2, 3, 4, 1))?;
        if pad > 0 {
            xc = xc
                .pad_with_zeros(2, pad, pad)?
                .pad_with_zeros(3, pad, pad)?;
        }
        let xs: Vec<f32> = xc.flatten_all()?.to_vec1()?;
        let plane = hp * wp;
        // Output pixels computed over the padded pitch: rows 0..ho, each wp wide, the last
        // row only wo wide.
        let n = (ho - 1) * wp + wo;
        let mut out = vec![0f32; b * t_out * ho * wo * cout];
        let mut full = vec![0f32; n * cout];
        for bi in 0..b {
            for to in 0..t_out {
                for dt in 0..kt {
                    let frame = (bi * t + to * stride_t + dt) * plane;
                    for dy in 0..k {
                        for dx in 0..k {
                            let tap = (dt * k + dy) * k + dx;
                            let lhs = &xs[(frame + dy * wp + dx) * cin..];
                            let rhs = &self.w[tap * cin * cout..(tap + 1) * cin * cout];
                            debug_assert!(lhs.len() >= n * cin);
                            // SAFETY: lhs covers n rows of cin (checked above), rhs is
                            // cin x cout, full is n x cout; all row-major with unit
                            // column stride, and nothing else aliases `full`.
                            unsafe {
                                gemm::gemm(
                                    n,
                                    cout,
                                    cin,
                                    full.as_mut_ptr(),
                                    1,
                                    cout as isize,
                                    tap > 0,
                                    lhs.as_ptr(),
                                    1,
                                    cin as isize,
                                    rhs.as_ptr(),
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
                }
                // Keep the valid columns of each row and add the bias.
                let base = (bi * t_out + to) * ho * wo * cout;
                for y in 0..ho {
                    for xx in 0..wo {
                        let src = &full[(y * wp + xx) * cout..(y * wp + xx + 1) * cout];
                        let dst =
                            &mut out[base + (y * wo + xx) * cout..base + (y * wo + xx + 1) * cout];
                        for ((d, s), bb) in dst.iter_mut().zip(src).zip(&self.bias) {
                            *d = s + bb;
                        }
                    }
                }
            }
        }
        Tensor::from_vec(out, (b, t_out, ho, wo, cout), &Device::Cpu)?
            .permute((0, 4, 1, 2, 3))?
            .contiguous()
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
