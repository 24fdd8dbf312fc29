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

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

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

/// `in_dim -> out_dim` without a bias.
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    Ok(Linear::new(vb.get((out_dim, in_dim), "weight")?, None))
}
