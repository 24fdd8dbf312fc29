//! The linear layer of the transformer and the text encoder: candle_nn's `Linear` with
//! its inputs flattened to one matrix first.
//!
//! Why: candle_nn's `Linear` multiplies a (B, L, D) input by its weight broadcast to
//! (B, D, O), so under autograd the weight's gradient is B products summed by a strided
//! reduction over the batch (about a sixth of a transformer training step on the CPU,
//! BENCHMARKS.md, training). As (B L, D) @ (D, O) it is one product forward and one per
//! gradient; the values are the same products.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// weight: (out, in); bias: (out).
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for Linear {
    /// x: (..., in) -> (..., out).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let (lead, d) = dims.split_at(dims.len() - 1);
        let rows: usize = lead.iter().product();
        let y = x.reshape((rows, d[0]))?.matmul(&self.weight.t()?)?; // (rows, out)
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
