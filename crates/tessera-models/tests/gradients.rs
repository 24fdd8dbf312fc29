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
use tessera_media::rng::Rng;
use tessera_models::umt5::{UMT5Config, UMT5EncoderModel};
use tessera_models::wan::config::WanTransformerConfig;
use tessera_models::wan::transformer::WanTransformer3DModel;
use tessera_models::wan::vae::{AutoencoderKLWan, AutoencoderKLWanConfig};

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

/// Test values from the workspace's seeded generator.
struct Values(Rng);
impl Values {
    fn normal(&mut self) -> f64 {
        self.0.normals(1)[0] as f64
    }
    fn tensor(&mut self, shape: &[usize], scale: f64) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = self.0.normals(n).into_iter().map(|x| x as f64 * scale).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }
}

/// Randomises every variable (names sorted, so the values do not depend on hash order).
fn randomize(vm: &VarMap, rng: &mut Values, scale: f64) -> Vec<(String, Var)> {
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
fn check(vars: &[(String, Var)], loss: impl Fn() -> Tensor, per_var: usize, rng: &mut Values) -> usize {
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
            assert!(
                err <= 1e-6 + 1e-4 * numeric.abs().max(g[i].abs()),
                "{name}[{i}]: backward {} vs finite differences {numeric}",
                g[i]
            );
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
    let mut rng = Values(Rng::new(1));
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
    let mut rng = Values(Rng::new(2));
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
    let mut rng = Values(Rng::new(3));
    let vars = randomize(&vm, &mut rng, 0.2);
    // Encode a 5-frame 16x16 video and decode it again: every layer of both halves.
    let video = rng.tensor(&[1, 3, 5, 16, 16], 0.5);
    let out_shape = {
        let m = model();
        m.decode_unclamped(&m.encode(&video).unwrap()).unwrap().dims().to_vec()
    };
    let r = rng.tensor(&out_shape, 1.0);
    let loss = || {
        let m = model();
        (m.decode_unclamped(&m.encode(&video).unwrap()).unwrap() * &r).unwrap().sum_all().unwrap()
    };
    check(&vars, loss, 1, &mut rng);
}

/// The f32 gradients a training run gets (on the CPU, f32 takes our fused kernels and
/// their backward passes: the channel norm, SiLU, the convolutions) against the f64
/// gradients of the same model and loss (candle's composed ops, which the tests above
/// check against finite differences). `build` makes the model's loss for a dtype.
fn f32_matches_f64(vm64: &VarMap, vm32: &VarMap, loss64: impl Fn() -> Tensor, loss32: impl Fn() -> Tensor) {
    let g64 = loss64().backward().unwrap();
    let g32 = loss32().backward().unwrap();
    let d64 = vm64.data().lock().unwrap();
    let d32 = vm32.data().lock().unwrap();
    let mut names: Vec<&String> = d64.keys().collect();
    names.sort();
    for name in names {
        let a: Vec<f64> = g64
            .get(&d64[name])
            .unwrap_or_else(|| panic!("{name}: no f64 gradient"))
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let b: Vec<f64> = g32
            .get(&d32[name])
            .unwrap_or_else(|| panic!("{name}: no f32 gradient"))
            .to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let norm = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
        assert!(
            diff <= 1e-3 * norm + 1e-6,
            "{name}: f32 gradient off by {diff:.3e} (relative {:.3e}) from f64's",
            diff / norm.max(1e-30)
        );
    }
}

/// Copies every variable of `from` (f64) into a new f32 VarMap built by `build`.
fn f32_copy(from: &VarMap, build: impl Fn(VarBuilder)) -> VarMap {
    let vm = VarMap::new();
    build(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu));
    {
        let src = from.data().lock().unwrap();
        let dst = vm.data().lock().unwrap();
        for (k, v) in dst.iter() {
            v.set(&src[k].to_dtype(DType::F32).unwrap()).unwrap();
        }
    }
    vm
}

#[test]
fn vae_f32_training_kernels_match_f64_gradients() {
    for (fixture, frames) in [("wan21/vae", 5), ("wan22_ti2v/vae", 5)] {
        let cfg = AutoencoderKLWanConfig::load(&fixtures().join(fixture).join("config.json")).unwrap();
        let vm64 = VarMap::new();
        AutoencoderKLWan::new(&cfg, VarBuilder::from_varmap(&vm64, DType::F64, &Device::Cpu)).unwrap();
        let mut rng = Values(Rng::new(11));
        randomize(&vm64, &mut rng, 0.2);
        let vm32 = f32_copy(&vm64, |vb| {
            AutoencoderKLWan::new(&cfg, vb).unwrap();
        });
        // 5 x 48 x 48 positions: more than one 4096-position chunk of the fused kernels.
        let side = 48;
        let video = rng.tensor(&[1, 3, frames, side, side], 0.5);
        let m64 = || AutoencoderKLWan::new(&cfg, VarBuilder::from_varmap(&vm64, DType::F64, &Device::Cpu)).unwrap();
        let m32 = || AutoencoderKLWan::new(&cfg, VarBuilder::from_varmap(&vm32, DType::F32, &Device::Cpu)).unwrap();
        // The trainer's loss: the posterior mean decoded, squared error against the input.
        let loss64 = || {
            let m = m64();
            (m.decode_unclamped(&m.encode_posterior(&video).unwrap().0).unwrap() - &video)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let v32 = video.to_dtype(DType::F32).unwrap();
        let loss32 = || {
            let m = m32();
            (m.decode_unclamped(&m.encode_posterior(&v32).unwrap().0).unwrap() - &v32)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
        };
        f32_matches_f64(&vm64, &vm32, loss64, loss32);
    }
}
