//! GGUF transformers as the community publishes them for Wan, against diffusers' forward
//! with the weights the `gguf` package dequantizes from the same files
//! (`tools/make_fixtures.py ggufs`):
//! - `transformer/wan-tiny-mixed.gguf`: the original Wan key layout behind ComfyUI's
//!   `model.diffusion_model.` prefix, block linears in mixed formats (Q4_K, Q5_K, Q8_0;
//!   self-attention's q, k and v in two formats, so they stay unfused), embeddings in F16,
//!   BF16 and F32, the 5-D patch embedding;
//! - `wan-tiny-q8_0-diffusers.gguf`: diffusers' layout, Q8_0 block linears and embedders,
//!   64-byte alignment.
//!
//! Read dense (every tensor dequantized), the model must equal diffusers' on those values
//! (this checks the header, key mapping, shapes and each format's decoding); kept in its
//! block formats, it is within the error of candle's quantized matmul, which also
//! quantizes the activations (8 bits).

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use tessera_models::gguf::GgufFile;
use tessera_models::testing::rel_l2;
use tessera_models::wan::config::WanTransformerConfig;
use tessera_models::wan::transformer::WanTransformer3DModel;

fn dir() -> PathBuf {
    tessera_models::testing::model_fixtures().join("gguf")
}

fn refs() -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(dir().join("ref.safetensors"), &Device::Cpu).unwrap()
}

fn forward(m: &WanTransformer3DModel, r: &std::collections::HashMap<String, Tensor>) -> Tensor {
    m.forward(&r["x"], &r["t"], &r["text"], None).unwrap()
}

fn check(file: PathBuf, reference: &str, quantized_layers: usize, tol: f64) {
    let cfg = WanTransformerConfig::load(&dir().join("transformer/config.json")).unwrap();
    let r = refs();
    let f = Arc::new(GgufFile::open(&file).unwrap());
    let dense = WanTransformer3DModel::new(&cfg, f.var_builder(DType::F32, &Device::Cpu)).unwrap();
    assert_eq!(dense.quantized_layers(), 0);
    let e = rel_l2(&forward(&dense, &r), &r[reference]).unwrap();
    eprintln!("{reference}: dequantized, rel L2 {e:.2e} against diffusers");
    assert!(e <= 1e-4, "{reference}: dequantized weights, rel L2 {e:.3e}");

    let q = WanTransformer3DModel::new_gguf(&cfg, &f, DType::F32, &Device::Cpu, None).unwrap();
    assert_eq!(q.quantized_layers(), quantized_layers, "{reference}");
    let e = rel_l2(&forward(&q, &r), &r[reference]).unwrap();
    eprintln!("{reference}: quantized matmuls, rel L2 {e:.2e} against diffusers");
    assert!(e > 0.0 && e <= tol, "{reference}: quantized, rel L2 {e:.3e}");
}

#[test]
fn original_layout_mixed_k_quants() {
    // Per block: self-attention q, k, v unfused (Q4_K, Q4_K, Q5_K) and out; cross-attention
    // q, fused k-v and out (Q8_0); the FFN's two.
    check(dir().join("transformer/wan-tiny-mixed.gguf"), "mixed", 2 * (4 + 3 + 2), 0.03);
}

#[test]
fn diffusers_layout_q8_0() {
    // Per block: fused q-k-v and out, q, k-v and out, the FFN's two.
    check(dir().join("wan-tiny-q8_0-diffusers.gguf"), "q8_0", 2 * (2 + 3 + 2), 0.01);
}

#[test]
fn a_folder_holding_one_gguf_loads_it_and_a_named_file_wins() {
    let r = refs();
    let folder = dir().join("transformer");
    let m = WanTransformer3DModel::load(&folder, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(m.quantized_layers(), 18);
    assert!(rel_l2(&forward(&m, &r), &r["mixed"]).unwrap() < 0.03);
    let named = dir().join("wan-tiny-q8_0-diffusers.gguf");
    let m = WanTransformer3DModel::load_from(&folder, Some(&named), DType::F32, &Device::Cpu, None).unwrap();
    assert_eq!(m.quantized_layers(), 14);
    // --quantize on top of a GGUF file quantizes only what it stores dense.
    let m = WanTransformer3DModel::load_from(
        &folder,
        None,
        DType::F32,
        &Device::Cpu,
        Some(candle_core::quantized::GgmlDType::Q8_0),
    )
    .unwrap();
    assert_eq!(m.quantized_layers(), 18);
}

#[test]
fn damaged_files_are_named_errors() {
    let tmp = std::env::temp_dir().join(format!("tessera-gguf-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let bytes = std::fs::read(dir().join("wan-tiny-q8_0-diffusers.gguf")).unwrap();
    let cut = tmp.join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = GgufFile::open(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.gguf") && e.contains("cut off"), "{e}");
    let e = GgufFile::open(&dir().join("transformer/config.json")).unwrap_err().to_string();
    assert!(e.contains("not a GGUF file"), "{e}");
    std::fs::remove_dir_all(&tmp).ok();
}
