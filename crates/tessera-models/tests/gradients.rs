//! Gradients are right: every parameter of every model gets a gradient (candle's fused
//! kernels, and ours, carry none, so training must take differentiable paths), and that
//! gradient matches central finite differences in f64.
//!
//! Each model is built from a tiny fixture config with random variables, the loss is a
//! fixed random projection of its output, and a few entries of every parameter are
//! perturbed by +-eps. Models keep derived weights (fused q/k/v, per-tap kernels), so the
//! loss rebuilds the model from the variables each time, as the trainer does each step.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use tessera_models::umt5::{UMT5Config, UMT5EncoderModel};
use tessera_models::wan::config::WanTransformerConfig;
use tessera_models::wan::transformer::WanTransformer3DModel;
use tessera_models::wan::vae::{AutoencoderKLWan, AutoencoderKLWanConfig};

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

/// A small deterministic generator for test values.
struct Lcg(u64);
impl Lcg {
    fn normal(&mut self) -> f64 {
        let mut u = || {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let (a, b) = (u(), u());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }
    fn tensor(&mut self, shape: &[usize], scale: f64) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| self.normal() * scale).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }
}

/// Randomises every variable (names sorted, so the values do not depend on hash order).
fn randomize(vm: &VarMap, rng: &mut Lcg, scale: f64) -> Vec<(String, Var)> {
    let data = vm.data().lock().unwrap();
    let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, v) in &vars {
        // Norm gains near 1, everything else small and random.
        let t = rng.tensor(v.dims(), scale);
        let t = if name.contains("norm") && !name.contains("bias") { (t + 1.0).unwrap() } else { t };
        v.set(&t).unwrap();
    }
    vars
}

fn set_entry(v: &Var, i: usize, value: f64) {
    let mut data: Vec<f64> = v.flatten_all().unwrap().to_vec1().unwrap();
    data[i] = value;
    v.set(&Tensor::from_vec(data, v.dims(), &Device::Cpu).unwrap()).unwrap();
}

/// Checks `loss()`'s gradient against finite differences for `per_var` entries of every
/// variable. Returns the number of entries checked.
fn check(vars: &[(String, Var)], loss: impl Fn() -> Tensor, per_var: usize, rng: &mut Lcg) -> usize {
    let l = loss();
    let grads = l.backward().unwrap();
    let eps = 1e-5;
    let mut checked = 0;
    for (name, v) in vars {
        let g = grads.get(v).unwrap_or_else(|| panic!("{name} gets no gradient"));
        let g: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
        let base: Vec<f64> = v.flatten_all().unwrap().to_vec1().unwrap();
        for _ in 0..per_var.min(base.len()) {
            let i = ((rng.normal().abs() * 1e6) as usize) % base.len();
            set_entry(v, i, base[i] + eps);
            let up = loss().to_scalar::<f64>().unwrap();
            set_entry(v, i, base[i] - eps);
            let down = loss().to_scalar::<f64>().unwrap();
            set_entry(v, i, base[i]);
            let numeric = (up - down) / (2.0 * eps);
            let err = (g[i] - numeric).abs();
            assert!(err <= 1e-6 + 1e-4 * numeric.abs().max(g[i].abs()), "{name}[{i}]: backward {} vs finite differences {numeric}", g[i]);
            checked += 1;
        }
    }
    checked
}

#[test]
fn transformer_gradients_match_finite_differences() {
    let cfg = WanTransformerConfig::load(&fixtures().join("wan21/transformer/config.json")).unwrap();
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    WanTransformer3DModel::new(&cfg, vb).unwrap();
    let model = || WanTransformer3DModel::new(&cfg, VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu)).unwrap();
    let mut rng = Lcg(1);
    let vars = randomize(&vm, &mut rng, 0.3);
    let x = rng.tensor(&[1, 16, 2, 4, 4], 1.0);
    let ctx = rng.tensor(&[1, 5, 32], 1.0);
    let t = Tensor::new(&[500f64], &Device::Cpu).unwrap();
    let r = rng.tensor(&[1, 16, 2, 4, 4], 1.0);
    let loss = || (model().forward(&x, &t, &ctx, None).unwrap() * &r).unwrap().sum_all().unwrap();
    let n = check(&vars, loss, 2, &mut rng);
    assert!(n >= vars.len());
}

#[test]
fn text_encoder_gradients_match_finite_differences() {
    let cfg = UMT5Config::load(&fixtures().join("wan21/text_encoder/config.json")).unwrap();
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    UMT5EncoderModel::new(&cfg, vb).unwrap();
    let model = || UMT5EncoderModel::new(&cfg, VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu)).unwrap();
    let mut rng = Lcg(2);
    let vars = randomize(&vm, &mut rng, 0.3);
    let ids = Tensor::new(&[[3u32, 7, 1, 0, 0]], &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1, 0, 0]], &Device::Cpu).unwrap();
    let out_shape = model().forward(&ids, &mask).unwrap().dims().to_vec();
    let r = rng.tensor(&out_shape, 1.0);
    let loss = || (model().forward(&ids, &mask).unwrap() * &r).unwrap().sum_all().unwrap();
    check(&vars, loss, 2, &mut rng);
}

#[test]
fn vae_gradients_match_finite_differences() {
    let cfg = AutoencoderKLWanConfig::load(&fixtures().join("wan21/vae/config.json")).unwrap();
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    AutoencoderKLWan::new(&cfg, vb).unwrap();
    let model = || AutoencoderKLWan::new(&cfg, VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu)).unwrap();
    let mut rng = Lcg(3);
    let vars = randomize(&vm, &mut rng, 0.2);
    // Encode a 5-frame 16x16 video and decode it again: every layer of both halves.
    let video = rng.tensor(&[1, 3, 5, 16, 16], 0.5);
    let out_shape = { let m = model(); m.decode_unclamped(&m.encode(&video).unwrap()).unwrap().dims().to_vec() };
    let r = rng.tensor(&out_shape, 1.0);
    let loss = || {
        let m = model();
        (m.decode_unclamped(&m.encode(&video).unwrap()).unwrap() * &r).unwrap().sum_all().unwrap()
    };
    check(&vars, loss, 1, &mut rng);
}
