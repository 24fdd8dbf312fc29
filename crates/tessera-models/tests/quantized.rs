//! The transformer with its blocks' linear layers quantized at load (Q8_0, Q4_K): close to
//! the f32 model on random weights, at the error the formats are known for, and the
//! quantized layers really are quantized.

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use tessera_media::rng::Rng;
use tessera_models::testing::rel_l2;
use tessera_models::wan::config::WanTransformerConfig;
use tessera_models::wan::transformer::WanTransformer3DModel;

fn normals(rng: &mut Rng, shape: &[usize], scale: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = rng.normals(n).into_iter().map(|x| x * scale).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn quantized_blocks_stay_close_to_f32() {
    // Widths the K formats' 256-value blocks fit: 2 heads of 128, FFN 512.
    let cfg = WanTransformerConfig {
        num_attention_heads: 2,
        attention_head_dim: 128,
        ffn_dim: 512,
        ..WanTransformerConfig::tiny()
    };
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    WanTransformer3DModel::new(&cfg, vb.clone()).unwrap();
    let mut rng = Rng::new(5);
    {
        let data = vm.data().lock().unwrap();
        let mut vars: Vec<_> = data.iter().collect();
        vars.sort_by(|a, b| a.0.cmp(b.0));
        for (name, v) in vars {
            let t = normals(&mut rng, v.dims(), 0.05);
            let t = if name.contains("norm") && !name.contains("bias") { (t + 1.0).unwrap() } else { t };
            v.set(&t).unwrap();
        }
    }
    let x = normals(&mut rng, &[1, 16, 2, 4, 4], 1.0);
    let t = Tensor::new(&[500f32], &Device::Cpu).unwrap();
    let text = normals(&mut rng, &[1, 8, 32], 1.0);
    let dense = WanTransformer3DModel::new(&cfg, vb.clone()).unwrap().forward(&x, &t, &text, None).unwrap();
    for (dtype, tol) in [(GgmlDType::Q8_0, 0.01), (GgmlDType::Q4K, 0.06)] {
        let q = WanTransformer3DModel::new_quantized(&cfg, vb.clone(), Some(dtype)).unwrap();
        // Per block: qkv and out of self-attention, q, kv and out of cross-attention, the FFN's two.
        assert_eq!(q.quantized_layers(), 2 * 7, "{dtype:?}");
        let y = q.forward(&x, &t, &text, None).unwrap();
        let e = rel_l2(&y, &dense).unwrap();
        eprintln!("{dtype:?}: rel L2 {e:.5} against f32");
        assert!(e > 0.0 && e < tol, "{dtype:?}: rel L2 {e:.4} against f32");
    }
}
