//! The linear layer of the transformer and the text encoder: candle_nn's `Linear` with
//! its inputs flattened to one matrix first.
//!
//! Why: candle_nn's `Linear` multiplies a (B, L, D) input by its weight broadcast to
//! (B, D, O), so under autograd the weight's gradient is B products summed by a strided
//! reduction over the batch (about a sixth of a transformer training step on the CPU,
//! BENCHMARKS.md, training). As (B L, D) @ (D, O) it is one product forward and one per
//! gradient; the values are the same products.

//!
//! A layer can also hold its weight quantized (`quantize`: 8-bit Q8_0 or 4-bit Q4_K blocks,
//! llama.cpp's formats as candle implements them), multiplied by candle's quantized matmul,
//! which quantizes the activations on the fly (docs/ARCHITECTURE.md, section 2).

use std::sync::Arc;

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::gguf::GgufFile;

#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
}

#[derive(Debug, Clone)]
enum Weight {
    /// (out, in).
    Dense(Tensor),
    /// In quantized blocks; the dense weight is released.
    Quantized(Arc<QMatMul>),
}

impl Linear {
    /// weight: (out, in); bias: (out).
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight: Weight::Dense(weight), bias }
    }

    /// A layer whose weight (out, in) stays in the block format it was stored in (a GGUF
    /// file's tensor).
    pub fn from_qtensor(weight: QTensor, bias: Option<Tensor>) -> Result<Self> {
        Ok(Self { weight: Weight::Quantized(Arc::new(QMatMul::from_qtensor(weight)?)), bias })
    }

    /// Layers reading the same input as one, their outputs side by side: the weights
    /// concatenated by rows, when they are all dense or all in the same block format (a
    /// row is whole blocks, so the bytes concatenate). `None` when the formats differ, as
    /// in GGUF files that mix formats per tensor (llama.cpp's `_K_M` mixes), or when some
    /// have a bias and some not.
    pub fn fuse(parts: &[Linear]) -> Result<Option<Linear>> {
        let bias = match parts.iter().map(|l| l.bias.clone()).collect::<Option<Vec<_>>>() {
            Some(b) => Some(Tensor::cat(&b, 0)?),
            None if parts.iter().all(|l| l.bias.is_none()) => None,
            None => return Ok(None),
        };
        if let Some(w) = parts.iter().map(|l| l.weight().ok().cloned()).collect::<Option<Vec<_>>>() {
            return Ok(Some(Linear::new(Tensor::cat(&w, 0)?, bias)));
        }
        let q: Option<Vec<&QTensor>> = parts
            .iter()
            .map(|l| match &l.weight {
                Weight::Quantized(m) => match m.as_ref() {
                    QMatMul::QTensor(t) => Some(t.as_ref()),
                    _ => None,
                },
                Weight::Dense(_) => None,
            })
            .collect();
        let Some(q) = q else { return Ok(None) };
        let dtype = q[0].dtype();
        let cols = q[0].shape().dims().last().copied().unwrap_or(0);
        if q.iter().any(|t| t.dtype() != dtype || t.shape().dims().len() != 2 || t.shape().dims()[1] != cols) {
            return Ok(None);
        }
        let rows: usize = q.iter().map(|t| t.shape().dims()[0]).sum();
        let mut bytes = Vec::new();
        for t in &q {
            bytes.extend_from_slice(&t.data()?);
        }
        let fused = qtensor_from_ggml(dtype, &bytes, vec![rows, cols], &q[0].device())?;
        Ok(Some(Linear::from_qtensor(fused, bias)?))
    }

    /// The dense weight; a quantized layer has none (fuse layers before quantizing).
    pub fn weight(&self) -> Result<&Tensor> {
        match &self.weight {
            Weight::Dense(w) => Ok(w),
            Weight::Quantized(_) => candle_core::bail!("internal: a quantized layer has no dense weight"),
        }
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    pub fn is_quantized(&self) -> bool {
        matches!(self.weight, Weight::Quantized(_))
    }

    /// Whether `dtype`'s blocks fit this layer: its input width must be a multiple of the
    /// block (32 values for Q8_0, 256 for the K formats).
    pub fn can_quantize(&self, dtype: GgmlDType) -> bool {
        match &self.weight {
            Weight::Dense(w) => w.dims().last().is_some_and(|&d| d % dtype.block_size() == 0),
            Weight::Quantized(_) => false,
        }
    }

    /// The layer with its weight quantized to `dtype` (the dense weight is released; the
    /// bias stays as it is). Layers whose width the blocks do not fit stay dense.
    pub fn quantize(self, dtype: GgmlDType) -> Result<Self> {
        let Weight::Dense(w) = &self.weight else {
            return Ok(self);
        };
        if !self.can_quantize(dtype) {
            return Ok(self);
        }
        let q = QTensor::quantize(&w.to_dtype(DType::F32)?, dtype)?;
        Ok(Self { weight: Weight::Quantized(Arc::new(QMatMul::from_qtensor(q)?)), bias: self.bias })
    }
}

impl Module for Linear {
    /// x: (..., in) -> (..., out).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let (lead, d) = dims.split_at(dims.len() - 1);
        let rows: usize = lead.iter().product();
        let x2 = x.reshape((rows, d[0]))?;
        let y = match &self.weight {
            Weight::Dense(w) => x2.matmul(&w.t()?)?, // (rows, out)
            // candle's quantized matmul wants a contiguous f32 input.
            Weight::Quantized(q) => q.forward(&x2.to_dtype(DType::F32)?.contiguous()?)?.to_dtype(x.dtype())?,
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut shape = lead.to_vec();
        shape.push(y.dim(1)?);
        y.reshape(shape)
    }
}

/// `in_dim -> out_dim` with a bias, parameters `weight` and `bias` under `vb`.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let weight = vb.get((out_dim, in_dim), "weight")?;
    let bias = vb.get(out_dim, "bias")?;
    Ok(Linear::new(weight, Some(bias)))
}

/// [`linear`], the weight kept in its block format when `gguf` stores it so (the bias and
/// dense weights come from `vb`).
pub fn linear_from(in_dim: usize, out_dim: usize, vb: VarBuilder, gguf: Option<&GgufFile>) -> Result<Linear> {
    if let Some(f) = gguf {
        let name = format!("{}.weight", vb.prefix());
        if let Some(w) = f.qtensor(&name, vb.device())? {
            if w.shape().dims() != [out_dim, in_dim] {
                candle_core::bail!(
                    "{name} has shape {:?} in this file but the model's config.json wants [{out_dim}, {in_dim}]",
                    w.shape().dims()
                );
            }
            return Linear::from_qtensor(w, Some(vb.get(out_dim, "bias")?));
        }
    }
    linear(in_dim, out_dim, vb)
}

/// `in_dim -> out_dim` without a bias.
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    Ok(Linear::new(vb.get((out_dim, in_dim), "weight")?, None))
}
