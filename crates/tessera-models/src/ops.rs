//! Small numeric building blocks shared by the models: normalisations and attention.
//!
//! They live in one place so that inference can use candle's fused kernels while training
//! (issue "Training") can switch to differentiable compositions: candle's fused
//! `rms_norm`, `layer_norm` and `softmax_last_dim` carry no gradient.

use candle_core::{DType, Result, Tensor, D};

/// The dtype normalisations and modulations compute in: f32, or f64 when the model runs in
/// f64 (gradient checks do, so finite differences are exact enough).
pub fn wide(dtype: DType) -> DType {
    if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// RMS normalisation over the last dimension, computed in f32 (as torch.nn.RMSNorm and
/// T5LayerNorm do for half-precision inputs), then scaled by `weight` if given.
pub fn rms_norm(x: &Tensor, weight: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    if let Some(y) = crate::norms::rms_norm(x, weight, eps)? {
        return Ok(y);
    }
    let dtype = x.dtype();
    let xf = x.to_dtype(wide(dtype))?;
    let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
    let y = xf.broadcast_div(&(var + eps)?.sqrt()?)?;
    let y = y.to_dtype(dtype)?;
    match weight {
        Some(w) => y.broadcast_mul(&w.to_dtype(dtype)?),
        None => Ok(y),
    }
}

/// Layer normalisation over the last dimension in f32 (diffusers' FP32LayerNorm), with
/// optional affine parameters; the result is returned in f32.
pub fn layer_norm_f32(x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    if let Some(y) = crate::norms::layer_norm(x, weight, bias, eps)? {
        return Ok(y);
    }
    let work = wide(x.dtype());
    let xf = x.to_dtype(work)?;
    let mean = xf.mean_keepdim(D::Minus1)?;
    let xc = xf.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let mut y = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    if let Some(w) = weight {
        y = y.broadcast_mul(&w.to_dtype(work)?)?;
    }
    if let Some(b) = bias {
        y = y.broadcast_add(&b.to_dtype(work)?)?;
    }
    Ok(y)
}

/// Softmax over the last dimension, numerically stabilised.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    crate::fastmath::softmax_last_dim(x)
}

/// Scaled dot-product attention. q: (B, H, Lq, D), k and v: (B, H, Lk, D); `bias`, if
/// given, is added to the scores and broadcasts to (B, H, Lq, Lk). `scale` multiplies the
/// scores (1/sqrt(D) for most models; T5 uses 1.0).
///
/// Queries are processed in chunks so that the scores of one chunk (B x H x rows x Lk)
/// stay within `SCORE_BYTES` (16 to 4,096 rows): long videos and large images have tens
/// of thousands of tokens, and a full (Lq, Lk) matrix would not fit (Wan 2.1 1.3B at
/// 832x480x81: 12 heads x 32,760 keys, 1.6 MB of scores a query row).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>, scale: f64) -> Result<Tensor> {
    const SCORE_BYTES: usize = 256 << 20;
    let (b, h, _, _) = q.dims4()?;
    let per_row = b * h * k.dim(2)? * q.dtype().size_in_bytes();
    attention_in_chunks(q, k, v, bias, scale, (SCORE_BYTES / per_row.max(1)).clamp(16, 4096))
}

/// [`attention`] with `chunk_rows` query rows at a time.
fn attention_in_chunks(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
    scale: f64,
    chunk_rows: usize,
) -> Result<Tensor> {
    let lq = q.dim(2)?;
    let kt = k.transpose(2, 3)?.contiguous()?; // (B, H, D, Lk)
    let v = v.contiguous()?;
    let mut outs = Vec::with_capacity(lq.div_ceil(chunk_rows));
    let mut start = 0;
    while start < lq {
        let len = chunk_rows.min(lq - start);
        let qc = q.narrow(2, start, len)?.contiguous()?;
        let mut scores = (qc.matmul(&kt)? * scale)?; // (B, H, len, Lk)
        if let Some(b) = bias {
            let b = if b.dim(2)? == lq && lq > 1 { b.narrow(2, start, len)? } else { b.clone() };
            scores = scores.broadcast_add(&b)?;
        }
        let probs = softmax_last_dim(&scores)?;
        outs.push(probs.matmul(&v)?); // (B, H, len, D)
        start += len;
    }
    if outs.len() == 1 {
        Ok(outs.remove(0))
    } else {
        Tensor::cat(&outs, 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn chunked_attention_equals_one_chunk() {
        let d = &Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (1, 2, 45, 8), d).unwrap();
        let k = Tensor::randn(0f32, 1.0, (1, 2, 30, 8), d).unwrap();
        let v = Tensor::randn(0f32, 1.0, (1, 2, 30, 8), d).unwrap();
        let bias = Tensor::randn(0f32, 1.0, (1, 1, 45, 30), d).unwrap();
        for bias in [None, Some(&bias)] {
            let whole = attention_in_chunks(&q, &k, &v, bias, 0.3, 4096).unwrap();
            let parts = attention_in_chunks(&q, &k, &v, bias, 0.3, 16).unwrap();
            let e = crate::testing::rel_l2(&parts, &whole).unwrap();
            assert!(e < 1e-6, "{e}");
        }
    }
}
