//! Helpers shared by the parity tests of every crate (llm.c style: compare with a state
//! dumped by the reference at a stated tolerance).

use std::path::PathBuf;

use candle_core::{DType, Result, Tensor};

/// Relative L2 error ||a - b|| / ||b||, in f64; shapes must match.
pub fn rel_l2(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.dims() != b.dims() {
        candle_core::bail!("shapes differ: {:?} vs {:?}", a.dims(), b.dims());
    }
    let a = a.to_dtype(DType::F64)?;
    let b = b.to_dtype(DType::F64)?;
    let num = (&a - &b)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
    let den = b.sqr()?.sum_all()?.to_scalar::<f64>()?;
    Ok((num / den.max(1e-300)).sqrt())
}

/// The tiny diffusers-format models and module dumps of tools/make_fixtures.py.
pub fn model_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}
