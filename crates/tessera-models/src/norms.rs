//! The transformer's row norms and gated residuals as single passes over f32 rows on the
//! CPU, each with its own backward pass:
//!
//! - layer norm (diffusers' FP32LayerNorm) and RMS norm (torch.nn.RMSNorm, T5LayerNorm)
//!   over the last dimension, times a scale (optionally `1 + scale`, adaLN's modulation)
//!   plus a shift;
//! - the gated residual `x + y * gate` of Wan's blocks.
//!
//! Scales, shifts and gates are (P, D) tables for x of R = P * per rows: row r takes row
//! r / per of the table. A (D) weight is P = 1; adaLN's (B, 1, D) modulation of (B, L, D)
//! is P = B, per = L; Wan 2.2's per-token modulation (B, L, D) is per = 1.
//!
//! Why: composed from candle's ops, a modulated layer norm is about ten graph nodes, and
//! every node costs the backward pass a zero-filled gradient buffer, an add into it, and
//! for each broadcast a strided sum; in a training step of the v3 transformer those were
//! about a third of the time (`perf`, BENCHMARKS.md, training). The formulas are the
//! standard ones (Ba et al. 2016, layer normalisation; Zhang & Sennrich 2019, RMSNorm),
//! checked against candle's composed ops and their gradients in the tests below.
//!
//! Other dtypes and devices take the composed ops ([`modulated_layer_norm`] and the others
//! fall back), with the same semantics as before (statistics in f32, result cast back).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::ops::wide;

/// Rows per parallel chunk.
const CHUNK_ROWS: usize = 32;

#[derive(Clone, Copy, Debug)]
struct RowNorm {
    eps: f32,
    /// Layer norm (subtract the mean) rather than RMS norm.
    center: bool,
    /// Multiply by `1 + scale` (adaLN) rather than `scale`.
    one_plus: bool,
}

fn f32_cpu(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { candle_core::bail!("{what} needs f32") };
    let Some((a, b)) = l.contiguous_offsets() else { candle_core::bail!("{what} needs contiguous tensors") };
    Ok(&v[a..b])
}

/// Sum of a row in 8 lanes (the compiler vectorises independent accumulators).
fn sum(row: &[f32], f: impl Fn(usize, f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = row.chunks_exact(8);
    let mut i = 0;
    for c in &mut chunks {
        for (k, v) in c.iter().enumerate() {
            acc[k] += f(i + k, *v);
        }
        i += 8;
    }
    let mut s: f32 = acc.iter().sum();
    for (k, v) in chunks.remainder().iter().enumerate() {
        s += f(i + k, *v);
    }
    s
}

impl RowNorm {
    /// Mean (0 for RMS) and inverse standard deviation of a row.
    fn stats(&self, row: &[f32]) -> (f32, f32) {
        let d = row.len() as f32;
        let mu = if self.center { sum(row, |_, v| v) / d } else { 0.0 };
        let var = sum(row, |_, v| (v - mu) * (v - mu)) / d;
        (mu, 1.0 / (var + self.eps).sqrt())
    }

    /// y = n(x) * (scale + c) + shift for R rows of length d.
    fn forward(&self, x: &[f32], d: usize, scale: Option<&[f32]>, shift: Option<&[f32]>) -> Vec<f32> {
        let rows = x.len() / d;
        let per = table_period(rows, d, scale.or(shift));
        let c = if self.one_plus { 1.0 } else { 0.0 };
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK_ROWS * d).enumerate().for_each(|(ci, o)| {
            for (k, (yo, xr)) in o.chunks_mut(d).zip(x[ci * CHUNK_ROWS * d..].chunks(d)).enumerate() {
                let r = ci * CHUNK_ROWS + k;
                let (mu, rs) = self.stats(xr);
                let s = scale.map(|s| &s[(r / per) * d..][..d]);
                let b = shift.map(|b| &b[(r / per) * d..][..d]);
                for j in 0..d {
                    let mut v = (xr[j] - mu) * rs;
                    if let Some(s) = s {
                        v *= s[j] + c;
                    }
                    if let Some(b) = b {
                        v += b[j];
                    }
                    yo[j] = v;
                }
            }
        });
        out
    }

    /// Gradients of the forward pass for dy: dx, and the tables' (sums over their rows).
    fn backward(
        &self,
        x: &[f32],
        d: usize,
        scale: Option<&[f32]>,
        want_shift: bool,
        dy: &[f32],
    ) -> (Vec<f32>, Option<Vec<f32>>, Option<Vec<f32>>) {
        let rows = x.len() / d;
        let p_rows = scale.map(|s| s.len() / d);
        let per = table_period(rows, d, scale);
        let c = if self.one_plus { 1.0 } else { 0.0 };
        let inv_d = 1.0 / d as f32;
        let mut dx = vec![0f32; x.len()];
        let want_scale = scale.is_some();
        // Each chunk returns its partial table gradients: the first table row it touches
        // and (rows touched) x d sums for the scale and the shift.
        let partials: Vec<(usize, Vec<f32>, Vec<f32>)> = dx
            .par_chunks_mut(CHUNK_ROWS * d)
            .enumerate()
            .map(|(ci, dxc)| {
                let r0 = ci * CHUNK_ROWS;
                let n = dxc.len() / d;
                let (p0, p1) = (r0 / per, (r0 + n - 1) / per + 1);
                let mut ds = vec![0f32; if want_scale { (p1 - p0) * d } else { 0 }];
                let mut db = vec![0f32; if want_shift { (p1 - p0) * d } else { 0 }];
                let mut g = vec![0f32; d];
                for k in 0..n {
                    let r = r0 + k;
                    let xr = &x[r * d..][..d];
                    let dyr = &dy[r * d..][..d];
                    let (mu, rs) = self.stats(xr);
                    let s = scale.map(|s| &s[(r / per) * d..][..d]);
                    for j in 0..d {
                        g[j] = match s {
                            Some(s) => dyr[j] * (s[j] + c),
                            None => dyr[j],
                        };
                    }
                    let mean_g = if self.center { sum(&g, |_, v| v) * inv_d } else { 0.0 };
                    let mean_gx = sum(&g, |j, v| v * (xr[j] - mu) * rs) * inv_d;
                    let o = &mut dxc[k * d..][..d];
                    for j in 0..d {
                        let xh = (xr[j] - mu) * rs;
                        o[j] = rs * (g[j] - mean_g - xh * mean_gx);
                    }
                    if want_scale || want_shift {
                        let q = (r / per - p0) * d;
                        for j in 0..d {
                            if want_scale {
                                ds[q + j] += dyr[j] * (xr[j] - mu) * rs;
                            }
                            if want_shift {
                                db[q + j] += dyr[j];
                            }
                        }
                    }
                }
                (p0, ds, db)
            })
            .collect();
        // (A shift comes only with a scale, so the scale's table gives the row count.)
        let total = p_rows.unwrap_or(0);
        // Each partial: (first table row, scale gradients, shift gradients).
        type Partial = (usize, Vec<f32>, Vec<f32>);
        let gather = |pick: fn(&Partial) -> &Vec<f32>| -> Vec<f32> {
            let mut t = vec![0f32; total * d];
            for part in &partials {
                for (a, b) in t[part.0 * d..].iter_mut().zip(pick(part)) {
                    *a += b;
                }
            }
            t
        };
        let ds = want_scale.then(|| gather(|p| &p.1));
        let db = want_shift.then(|| gather(|p| &p.2));
        (dx, ds, db)
    }
}

/// Rows of x per row of a (P, d) table (R rows in all): R / P; R when there is no table.
fn table_period(rows: usize, d: usize, table: Option<&[f32]>) -> usize {
    match table {
        Some(t) => rows / (t.len() / d).max(1),
        None => rows.max(1),
    }
}

fn last_dim(l: &Layout) -> usize {
    l.dims().last().copied().unwrap_or(1).max(1)
}

fn flat(t: &Tensor) -> Result<Vec<f32>> {
    t.contiguous()?.flatten_all()?.to_vec1()
}

impl CustomOp1 for RowNorm {
    fn name(&self) -> &'static str {
        "row-norm"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "row-norm")?;
        Ok((CpuStorage::F32(self.forward(x, last_dim(l), None, None)), l.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let d = x.dim(D::Minus1)?;
        let (dx, _, _) = self.backward(&flat(x)?, d, None, false, &flat(dy)?);
        Ok(Some(Tensor::from_vec(dx, x.dims(), x.device())?))
    }
}

impl CustomOp2 for RowNorm {
    fn name(&self) -> &'static str {
        "row-norm-scaled"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, s) = (slice(s1, l1, "row-norm")?, slice(s2, l2, "row-norm")?);
        Ok((CpuStorage::F32(self.forward(x, last_dim(l1), Some(s), None)), l1.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, s: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = x.dim(D::Minus1)?;
        let (dx, ds, _) = self.backward(&flat(x)?, d, Some(&flat(s)?), false, &flat(dy)?);
        Ok((
            Some(Tensor::from_vec(dx, x.dims(), x.device())?),
            Some(Tensor::from_vec(ds.unwrap(), s.dims(), s.device())?),
        ))
    }
}

impl CustomOp3 for RowNorm {
    fn name(&self) -> &'static str {
        "row-norm-affine"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, s, b) = (slice(s1, l1, "row-norm")?, slice(s2, l2, "row-norm")?, slice(s3, l3, "row-norm")?);
        Ok((CpuStorage::F32(self.forward(x, last_dim(l1), Some(s), Some(b))), l1.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        s: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = x.dim(D::Minus1)?;
        let (dx, ds, db) = self.backward(&flat(x)?, d, Some(&flat(s)?), true, &flat(dy)?);
        Ok((
            Some(Tensor::from_vec(dx, x.dims(), x.device())?),
            Some(Tensor::from_vec(ds.unwrap(), s.dims(), s.device())?),
            Some(Tensor::from_vec(db.unwrap(), b.dims(), b.device())?),
        ))
    }
}

/// `x + y * gate`, gate a (P, D) table over x's rows.
#[derive(Clone, Copy, Debug)]
struct Gated;

impl CustomOp3 for Gated {
    fn name(&self) -> &'static str {
        "gated-residual"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, y, g) =
            (slice(s1, l1, "gated-residual")?, slice(s2, l2, "gated-residual")?, slice(s3, l3, "gated-residual")?);
        let d = last_dim(l1);
        let per = table_period(x.len() / d, d, Some(g));
        let mut out = x.to_vec();
        out.par_chunks_mut(CHUNK_ROWS * d).enumerate().for_each(|(ci, o)| {
            for (k, row) in o.chunks_mut(d).enumerate() {
                let r = ci * CHUNK_ROWS + k;
                let (yr, gr) = (&y[r * d..][..d], &g[(r / per) * d..][..d]);
                for j in 0..d {
                    row[j] += yr[j] * gr[j];
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        y: &Tensor,
        g: &Tensor,
        _res: &Tensor,
        dout: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = x.dim(D::Minus1)?;
        let (yv, gv, dv) = (flat(y)?, flat(g)?, flat(dout)?);
        let per = table_period(yv.len() / d, d, Some(&gv));
        let mut dy = vec![0f32; yv.len()];
        let mut dg = vec![0f32; gv.len()];
        for (r, row) in dy.chunks_mut(d).enumerate() {
            let p = (r / per) * d;
            for j in 0..d {
                row[j] = dv[r * d + j] * gv[p + j];
                dg[p + j] += dv[r * d + j] * yv[r * d + j];
            }
        }
        Ok((
            Some(dout.clone()),
            Some(Tensor::from_vec(dy, y.dims(), y.device())?),
            Some(Tensor::from_vec(dg, g.dims(), g.device())?),
        ))
    }
}

/// A table for x's rows as a contiguous (P, D) tensor: `None` unless its rows divide x's
/// in order (a (D) weight, or (B, Lt, D) for x (B, L, D) with Lt 1 or L).
fn table(x: &Tensor, t: &Tensor) -> Result<Option<Tensor>> {
    let d = x.dim(D::Minus1)?;
    if t.dim(D::Minus1)? != d || !f32_cpu(t) {
        return Ok(None);
    }
    let p = t.elem_count() / d;
    let rows = x.elem_count() / d;
    let ok = p == 1 || (p == rows) || (x.rank() == 3 && t.rank() == 3 && t.dim(0)? == x.dim(0)? && t.dim(1)? == 1);
    Ok(if ok && rows.is_multiple_of(p) { Some(t.contiguous()?.reshape((p, d))?) } else { None })
}

/// The fused row norm of x with an optional scale table and, with the scale, an optional
/// shift table; `None` (the caller's composed ops) for other dtypes or devices, tables
/// whose rows do not divide x's in order, or a shift without a scale.
fn apply(x: &Tensor, op: RowNorm, scale: Option<&Tensor>, shift: Option<&Tensor>) -> Result<Option<Tensor>> {
    if !f32_cpu(x) || (scale.is_none() && shift.is_some()) {
        return Ok(None);
    }
    let x = x.contiguous()?;
    let mut tables = Vec::with_capacity(2);
    for t in scale.into_iter().chain(shift) {
        match table(&x, t)? {
            Some(t) => tables.push(t),
            None => return Ok(None),
        }
    }
    let track = x.track_op() || tables.iter().any(Tensor::track_op);
    Ok(Some(match tables.as_slice() {
        [] if track => x.apply_op1(op)?,
        [] => x.apply_op1_no_bwd(&op)?,
        [s] if track => x.apply_op2(s, op)?,
        [s] => x.apply_op2_no_bwd(s, &op)?,
        [s, b] if track => x.apply_op3(s, b, op)?,
        [s, b] => x.apply_op3_no_bwd(s, b, &op)?,
        _ => unreachable!("at most a scale and a shift"),
    }))
}

/// adaLN: `layer_norm(x) * (1 + scale) + shift` over the last dimension, the statistics in
/// f32 and the result in x's dtype. x (B, L, D); scale and shift (B, Lt, D), Lt = 1 or L.
pub fn modulated_layer_norm(x: &Tensor, scale: &Tensor, shift: &Tensor, eps: f64) -> Result<Tensor> {
    if let Some(y) = apply(x, RowNorm { eps: eps as f32, center: true, one_plus: true }, Some(scale), Some(shift))? {
        return Ok(y);
    }
    crate::ops::layer_norm_f32(x, None, None, eps)?
        .broadcast_mul(&(scale + 1.0)?)?
        .broadcast_add(shift)?
        .to_dtype(x.dtype())
}

/// Layer norm with optional affine parameters, in f32 (diffusers' FP32LayerNorm): the
/// fused pass for f32 on the CPU, `None` otherwise.
pub fn layer_norm(x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64) -> Result<Option<Tensor>> {
    apply(x, RowNorm { eps: eps as f32, center: true, one_plus: false }, weight, bias)
}

/// RMS norm times a (D) weight: the fused pass for f32 on the CPU, `None` otherwise.
pub fn rms_norm(x: &Tensor, weight: Option<&Tensor>, eps: f64) -> Result<Option<Tensor>> {
    apply(x, RowNorm { eps: eps as f32, center: false, one_plus: false }, weight, None)
}

/// Wan's gated residual `x + y * gate` in f32, the result in x's dtype; gate (B, Lt, D).
pub fn gated_residual(x: &Tensor, y: &Tensor, gate: &Tensor) -> Result<Tensor> {
    if f32_cpu(x) && f32_cpu(y) && x.dims() == y.dims() {
        if let Some(g) = table(x, gate)? {
            let (x, y) = (x.contiguous()?, y.contiguous()?);
            return if x.track_op() || y.track_op() || g.track_op() {
                x.apply_op3(&y, &g, Gated)
            } else {
                x.apply_op3_no_bwd(&y, &g, &Gated)
            };
        }
    }
    let w = wide(x.dtype());
    (x.to_dtype(w)? + y.to_dtype(w)?.broadcast_mul(gate)?)?.to_dtype(x.dtype())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn rel(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().sqrt();
        d / b.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().sqrt().max(1e-30)
    }

    fn var(shape: &[usize], std: f32) -> Var {
        Var::from_tensor(&(Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap() * std as f64).unwrap()).unwrap()
    }

    fn composed_ln(x: &Tensor, eps: f64) -> Tensor {
        let mean = x.mean_keepdim(D::Minus1).unwrap();
        let xc = x.broadcast_sub(&mean).unwrap();
        let v = xc.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        xc.broadcast_div(&(v + eps).unwrap().sqrt().unwrap()).unwrap()
    }

    fn composed_rms(x: &Tensor, eps: f64) -> Tensor {
        let v = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        x.broadcast_div(&(v + eps).unwrap().sqrt().unwrap()).unwrap()
    }

    /// Values and gradients (for a random cotangent) of `ours` and `theirs` over `vars`.
    fn check(name: &str, vars: &[&Var], ours: Tensor, theirs: Tensor) {
        assert!(ours.track_op(), "{name}: the fused op must be recorded for backprop");
        let e = rel(&ours, &theirs);
        assert!(e < 1e-5, "{name}: value relative error {e}");
        let r = Tensor::randn(0f32, 1.0, ours.dims(), &Device::Cpu).unwrap();
        let ga = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (theirs * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (i, v) in vars.iter().enumerate() {
            let e = rel(ga.get(v).unwrap(), gb.get(v).unwrap());
            assert!(e < 1e-4, "{name}: gradient {i} relative error {e}");
        }
    }

    #[test]
    fn modulated_layer_norm_matches_composed() {
        // Lt = 1 (one modulation per sample) and Lt = L (per token), rows not a multiple
        // of the chunk, a width not a multiple of 8.
        for lt in [1, 37] {
            let (x, s, b) = (var(&[3, 37, 20], 2.0), var(&[3, lt, 20], 0.5), var(&[3, lt, 20], 0.5));
            let ours = modulated_layer_norm(x.as_tensor(), s.as_tensor(), b.as_tensor(), 1e-6).unwrap();
            let theirs = composed_ln(x.as_tensor(), 1e-6)
                .broadcast_mul(&(s.as_tensor() + 1.0).unwrap())
                .unwrap()
                .broadcast_add(b.as_tensor())
                .unwrap();
            check(&format!("modulated, Lt {lt}"), &[&x, &s, &b], ours, theirs);
        }
    }

    #[test]
    fn affine_and_plain_layer_norm_match_composed() {
        let (x, w, b) = (var(&[2, 45, 24], 3.0), var(&[24], 1.0), var(&[24], 1.0));
        let ours = layer_norm(x.as_tensor(), Some(w.as_tensor()), Some(b.as_tensor()), 1e-5).unwrap().unwrap();
        let theirs = composed_ln(x.as_tensor(), 1e-5)
            .broadcast_mul(w.as_tensor())
            .unwrap()
            .broadcast_add(b.as_tensor())
            .unwrap();
        check("affine", &[&x, &w, &b], ours, theirs);
        let ours = layer_norm(x.as_tensor(), None, None, 1e-5).unwrap().unwrap();
        check("plain", &[&x], ours, composed_ln(x.as_tensor(), 1e-5));
    }

    #[test]
    fn rms_norm_matches_composed() {
        let (x, w) = (var(&[2, 70, 33], 1.5), var(&[33], 1.0));
        let ours = rms_norm(x.as_tensor(), Some(w.as_tensor()), 1e-6).unwrap().unwrap();
        let theirs = composed_rms(x.as_tensor(), 1e-6).broadcast_mul(w.as_tensor()).unwrap();
        check("rms", &[&x, &w], ours, theirs);
    }

    #[test]
    fn gated_residual_matches_composed() {
        for lt in [1, 40] {
            let (x, y, g) = (var(&[2, 40, 16], 1.0), var(&[2, 40, 16], 1.0), var(&[2, lt, 16], 1.0));
            let ours = gated_residual(x.as_tensor(), y.as_tensor(), g.as_tensor()).unwrap();
            let theirs = (x.as_tensor() + y.as_tensor().broadcast_mul(g.as_tensor()).unwrap()).unwrap();
            check(&format!("gated, Lt {lt}"), &[&x, &y, &g], ours, theirs);
        }
    }

    /// Without gradients the kernels run alone and give the same values.
    #[test]
    fn inference_path_is_the_same_kernel() {
        let x = Tensor::randn(0f32, 1.0, (2, 9, 12), &Device::Cpu).unwrap();
        let w = Tensor::randn(0f32, 1.0, 12, &Device::Cpu).unwrap();
        let y = rms_norm(&x, Some(&w), 1e-6).unwrap().unwrap();
        assert!(!y.track_op());
        assert!(rel(&y, &composed_rms(&x, 1e-6).broadcast_mul(&w).unwrap()) < 1e-6);
    }
}
