//! Fused multi-head attention for inference on the CPU in f32 (docs/ARCHITECTURE.md,
//! engine: the transformer's attention).
//!
//! The reference (PyTorch's `scaled_dot_product_attention`) never materialises all
//! scores at once on the CPU; tessera's composed path (`ops::attention`) did: a copy of q
//! per chunk, K transposed, the score matrix, a scaling pass over it, softmax, the
//! product with V, the concatenation of chunks, the heads transposed back, and for the
//! self-attention the rotary embedding as five whole-tensor passes. Here one task per
//! (batch, head, block of query rows) does it all in cache: the rotary embedding and the
//! scale applied while q and k are packed per head (one pass each), `S = q K^T` for the
//! block into a per-thread buffer (block rows x keys), softmax in place, and `S V`
//! written straight into the output's (B, L, H * D) layout, which the output projection
//! reads as is. Memory: one block of scores per thread, never L x L.
//!
//! Softmax over a whole row of keys per block (not FlashAttention's online rescaling over
//! key blocks): the block's scores are at most `BLOCK_ROWS` x keys, 8 MiB for the 32,760
//! tokens of an 832x480x81 Wan video, and each row is normalised exactly as the composed
//! path does, so both agree to rounding.
//!
//! Not for training: tensors that track gradients take the composed, differentiable path.

use candle_core::{CpuStorage, DType, Device, Layout, Result, Storage, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

/// Query rows per task: enough that packing K for the product is a small share of its
/// work (1 / (2 * rows)), few enough that the block's scores stay in L2 at a few thousand
/// keys and that two threads get several tasks even for one head.
const BLOCK_ROWS: usize = 256;

/// A (B, L, N) f32 tensor on the CPU with unit stride along N, read in place.
struct Rows<'a> {
    data: &'a [f32],
    offset: usize,
    batch_stride: usize,
    row_stride: usize,
    len: usize,
    width: usize,
}

fn rows<'a>(storage: &'a Storage, layout: &Layout) -> Option<Rows<'a>> {
    let Storage::Cpu(CpuStorage::F32(data)) = storage else { return None };
    let dims = layout.dims();
    let stride = layout.stride();
    if dims.len() != 3 || stride[2] != 1 {
        return None;
    }
    Some(Rows {
        data,
        offset: layout.start_offset(),
        batch_stride: stride[0],
        row_stride: stride[1],
        len: dims[1],
        width: dims[2],
    })
}

impl Rows<'_> {
    fn at(&self, b: usize, l: usize, c: usize) -> usize {
        self.offset + b * self.batch_stride + l * self.row_stride + c
    }
}

/// Packs one tensor per head, (B, H, L, D) contiguous, times `scale`, with the
/// interleaved rotary embedding (`wan::rope::apply`'s formula) when `rope` is given.
fn pack(x: &Rows, batch: usize, heads: usize, rope: Option<(&[f32], &[f32])>, scale: f32) -> Vec<f32> {
    let d = x.width / heads;
    let mut out = vec![0f32; batch * heads * x.len * d];
    out.par_chunks_mut(d).with_min_len(64).enumerate().for_each(|(i, o)| {
        let l = i % x.len;
        let h = (i / x.len) % heads;
        let b = i / (x.len * heads);
        let src = &x.data[x.at(b, l, h * d)..][..d];
        match rope {
            Some((cos, sin)) => {
                let (cos, sin) = (&cos[l * d..][..d], &sin[l * d..][..d]);
                for p in 0..d / 2 {
                    let (x1, x2) = (src[2 * p], src[2 * p + 1]);
                    o[2 * p] = (x1 * cos[2 * p] + -x2 * sin[2 * p]) * scale;
                    o[2 * p + 1] = (x2 * cos[2 * p + 1] + x1 * sin[2 * p + 1]) * scale;
                }
            }
            None => o.iter_mut().zip(src).for_each(|(o, s)| *o = s * scale),
        }
    });
    out
}

fn f32_table(t: &Tensor, len: usize, d: usize) -> Result<Option<Vec<f32>>> {
    if t.dims() != [len, d] {
        return Ok(None);
    }
    Ok(Some(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?))
}

/// Multi-head attention `softmax(scale q k^T) v` with q: (B, Lq, H * D), k and v:
/// (B, Lk, H * D) (any row strides, unit stride along the channels: the halves of a
/// fused projection are read in place), and optionally the interleaved rotary embedding
/// of tables cos, sin: (Lq, D) applied to q and k first (self-attention, Lq = Lk).
/// Returns (B, Lq, H * D), or `None` where this path does not apply (not f32 on the CPU,
/// or tracking gradients): the caller then composes it from tensor ops.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    rope: Option<(&Tensor, &Tensor)>,
    scale: f64,
) -> Result<Option<Tensor>> {
    let cpu_f32 = |t: &Tensor| t.dtype() == DType::F32 && t.device().is_cpu() && !t.track_op();
    if !(cpu_f32(q) && cpu_f32(k) && cpu_f32(v)) || heads == 0 {
        return Ok(None);
    }
    let (qs, ql) = q.storage_and_layout();
    let (ks, kl) = k.storage_and_layout();
    let (vs, vl) = v.storage_and_layout();
    let (Some(qr), Some(kr), Some(vr)) = (rows(&qs, ql), rows(&ks, kl), rows(&vs, vl)) else {
        return Ok(None);
    };
    let batch = ql.dims()[0];
    let n = qr.width;
    if n % heads != 0 || kr.width != n || vr.width != n || kl.dims()[0] != batch || vl.dims()[0] != batch {
        return Ok(None);
    }
    let (d, lq, lk) = (n / heads, qr.len, kr.len);
    if vr.len != lk || lk == 0 || d % 2 != 0 {
        return Ok(None);
    }
    let tables = match rope {
        Some((cos, sin)) => {
            if lq != lk {
                return Ok(None);
            }
            match (f32_table(cos, lq, d)?, f32_table(sin, lq, d)?) {
                (Some(c), Some(s)) => Some((c, s)),
                _ => return Ok(None),
            }
        }
        None => None,
    };
    let rope = tables.as_ref().map(|(c, s)| (c.as_slice(), s.as_slice()));
    // q carries the scale; k is packed only when it needs the rotary embedding (otherwise
    // the product reads it in place).
    let qp = pack(&qr, batch, heads, rope, scale as f32);
    let kp = rope.map(|r| pack(&kr, batch, heads, Some(r), 1.0));

    let mut out = vec![0f32; batch * lq * n];
    let out_ptr = out.as_mut_ptr() as usize;
    let blocks = lq.div_ceil(BLOCK_ROWS);
    (0..batch * heads * blocks).into_par_iter().for_each_init(
        || vec![0f32; BLOCK_ROWS * lk],
        |scores, task| {
            let blk = task % blocks;
            let h = (task / blocks) % heads;
            let b = task / (blocks * heads);
            let r0 = blk * BLOCK_ROWS;
            let m = BLOCK_ROWS.min(lq - r0);
            let qblk = &qp[((b * heads + h) * lq + r0) * d..][..m * d];
            // k as the (D x Lk) right-hand side: element (c, j) of k^T is k[j, c].
            let (kptr, k_rs) = match &kp {
                Some(kp) => (kp[(b * heads + h) * lk * d..].as_ptr(), d as isize),
                None => (kr.data[kr.at(b, 0, h * d)..].as_ptr(), kr.row_stride as isize),
            };
            let s = &mut scores[..m * lk];
            // SAFETY: every pointer is in bounds for the extents and strides given: q's block
            // is m x d, k spans lk rows of d channels from its head's first channel, and the
            // scores buffer is m x lk; the buffer aliases neither input.
            unsafe {
                gemm::gemm(
                    m,
                    lk,
                    d,
                    s.as_mut_ptr(),
                    1,
                    lk as isize,
                    false,
                    qblk.as_ptr(),
                    1,
                    d as isize,
                    kptr,
                    k_rs,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
            crate::fastmath::softmax_rows_in_place(s, lk);
            // SAFETY: v spans lk rows of d channels from its head's first channel; this
            // task alone writes rows r0..r0 + m, channels h d..(h + 1) d of batch b of the
            // output, which outlives the parallel loop.
            unsafe {
                let dst = (out_ptr as *mut f32).add((b * lq + r0) * n + h * d);
                gemm::gemm(
                    m,
                    d,
                    lk,
                    dst,
                    1,
                    n as isize,
                    false,
                    s.as_ptr(),
                    1,
                    lk as isize,
                    vr.data[vr.at(b, 0, h * d)..].as_ptr(),
                    1,
                    vr.row_stride as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        },
    );
    drop((qs, ks, vs));
    Ok(Some(Tensor::from_vec(out, (batch, lq, n), &Device::Cpu)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::rel_l2;
    use candle_core::D;

    /// The composed reference: heads split, rope, `ops::attention`, heads merged.
    fn composed(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, rope: Option<(&Tensor, &Tensor)>) -> Tensor {
        let split = |x: &Tensor| {
            let (b, l, n) = x.dims3().unwrap();
            x.reshape((b, l, heads, n / heads)).unwrap().transpose(1, 2).unwrap()
        };
        let (mut qh, mut kh) = (split(q), split(k));
        if let Some((c, s)) = rope {
            qh = crate::wan::rope::apply(&qh, c, s).unwrap();
            kh = crate::wan::rope::apply(&kh, c, s).unwrap();
        }
        let (b, l, n) = q.dims3().unwrap();
        let scale = 1.0 / ((n / heads) as f64).sqrt();
        let o = crate::ops::attention(&qh, &kh, &split(v), None, scale).unwrap();
        o.transpose(1, 2).unwrap().reshape((b, l, n)).unwrap()
    }

    #[test]
    fn equals_the_composed_path() {
        let dev = &Device::Cpu;
        // Query lengths on and off the block size; keys fewer and more than queries; v and
        // k read in place from a fused projection (row stride 3n), as the transformer does.
        for (b, lq, lk, heads, d, with_rope) in
            [(1, 70, 70, 2, 8, true), (2, 64, 64, 3, 4, true), (1, 130, 20, 2, 6, false), (2, 5, 129, 1, 8, false)]
        {
            let n = heads * d;
            let q = Tensor::randn(0f32, 1.0, (b, lq, n), dev).unwrap();
            let kv = Tensor::randn(0f32, 1.0, (b, lk, 3 * n), dev).unwrap();
            let (k, v) = (kv.narrow(D::Minus1, n, n).unwrap(), kv.narrow(D::Minus1, 2 * n, n).unwrap());
            let tables = with_rope.then(|| {
                let c = Tensor::randn(0f32, 1.0, (lq, d), dev).unwrap();
                let s = Tensor::randn(0f32, 1.0, (lq, d), dev).unwrap();
                (c, s)
            });
            let rope = tables.as_ref().map(|(c, s)| (c, s));
            let scale = 1.0 / (d as f64).sqrt();
            let fused = attention(&q, &k, &v, heads, rope, scale).unwrap().expect("fused path applies");
            let want = composed(&q, &k, &v, heads, rope);
            let e = rel_l2(&fused, &want).unwrap();
            assert!(e < 1e-6, "b {b} lq {lq} lk {lk} heads {heads}: rel L2 {e}");
        }
    }

    #[test]
    fn declines_what_it_does_not_handle() {
        let dev = &Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (1, 4, 8), dev).unwrap();
        // f64, gradients tracked, heads that do not divide the width: the composed path.
        let q64 = q.to_dtype(DType::F64).unwrap();
        assert!(attention(&q64, &q64, &q64, 2, None, 1.0).unwrap().is_none());
        let var = candle_core::Var::from_tensor(&q).unwrap();
        assert!(attention(var.as_tensor(), &q, &q, 2, None, 1.0).unwrap().is_none());
        assert!(attention(&q, &q, &q, 3, None, 1.0).unwrap().is_none());
    }
}
