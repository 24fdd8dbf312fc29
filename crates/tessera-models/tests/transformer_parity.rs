use candle_core::{DType, Device, Tensor};
use std::path::PathBuf;
use tessera_models::wan::transformer::WanTransformer3DModel;

fn fixtures() -> PathBuf {
    tessera_models::testing::model_fixtures()
}
fn check(model: &str, refname: &str) {
    let m = WanTransformer3DModel::load(&fixtures().join(model).join("transformer"), DType::F32, &Device::Cpu).unwrap();
    let r = candle_core::safetensors::load(fixtures().join("ref").join(refname), &Device::Cpu).unwrap();
    let out = m.forward(&r["hidden_states"], &r["timestep"], &r["encoder_hidden_states"], None).unwrap();
    let e = rel_l2(&out, &r["output"]);
    println!("{model}: rel L2 {e:.2e}");
    assert!(e <= 1e-4, "{model}: rel L2 {e:.3e}");
}
#[test]
fn wan21() {
    check("wan21", "transformer_wan21.safetensors");
}
#[test]
fn wan22() {
    check("wan22_ti2v", "transformer_wan22.safetensors");
}

/// Relative L2 error, see tessera_models::testing.
fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    tessera_models::testing::rel_l2(a, b).expect("comparable tensors")
}

/// Wan 2.1 I2V layout: 36 input channels and CLIP image tokens through the added
/// key/value projections of every cross-attention.
#[test]
fn wan21_i2v_image_context() {
    let m = WanTransformer3DModel::load(&fixtures().join("wan21_i2v_transformer"), DType::F32, &Device::Cpu).unwrap();
    let r =
        candle_core::safetensors::load(fixtures().join("ref/transformer_wan21_i2v.safetensors"), &Device::Cpu).unwrap();
    let out = m
        .forward(
            &r["hidden_states"],
            &r["timestep"],
            &r["encoder_hidden_states"],
            Some(&r["encoder_hidden_states_image"]),
        )
        .unwrap();
    let e = rel_l2(&out, &r["output"]);
    println!("wan21_i2v: rel L2 {e:.2e}");
    assert!(e <= 1e-4, "wan21_i2v: rel L2 {e:.3e}");
}
