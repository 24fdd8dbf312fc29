//! The time of one forward pass of a randomly initialised Wan transformer of the built-in
//! model's kind, for sizing it against issue 28's speed contract (a 2-second clip in 20 s
//! on the 2-core machine: steps x 2 passes with guidance, plus decoding).
//! `cargo run --release -p tessera-train --example transformer_speed -- LAYERS WIDTH HEADS FFN Z TF PATCH F H W [TEXT_TOKENS]`
//! (F, H, W: latent frames and size; TF: the VAE's temporal factor, Wan's mask channels.)
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use tessera_models::wan::config::WanTransformerConfig;
use tessera_models::wan::transformer::WanTransformer3DModel;

fn main() -> anyhow::Result<()> {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse()).collect::<Result<_, _>>()?;
    let [layers, width, heads, ffn, z, tf, patch, f, h, w] = a[..10] else {
        anyhow::bail!("usage: LAYERS WIDTH HEADS FFN Z TF PATCH F H W [TEXT_TOKENS]")
    };
    let text_tokens = a.get(10).copied().unwrap_or(64);
    let cfg: WanTransformerConfig = serde_json::from_value(serde_json::json!({
        "patch_size": [1, patch, patch], "num_attention_heads": heads, "attention_head_dim": width / heads,
        "in_channels": 2 * z + tf, "out_channels": z, "text_dim": 128, "freq_dim": 256, "ffn_dim": ffn,
        "num_layers": layers, "cross_attn_norm": true, "qk_norm": "rms_norm_across_heads", "eps": 1e-6,
        "image_dim": null, "added_kv_proj_dim": null, "rope_max_seq_len": 1024, "pos_embed_seq_len": null
    }))?;
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let model = WanTransformer3DModel::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
    let x = Tensor::randn(0f32, 1.0, (1, 2 * z + tf, f, h, w), &dev)?;
    let ctx = Tensor::randn(0f32, 1.0, (1, text_tokens, 128), &dev)?;
    let t = Tensor::new(&[500f32], &dev)?;
    let tokens = f * (h / patch) * (w / patch);
    model.forward(&x, &t, &ctx, None)?; // warm-up
    let runs = 3;
    let start = Instant::now();
    for _ in 0..runs {
        model.forward(&x, &t, &ctx, None)?;
    }
    let per = start.elapsed().as_secs_f64() / runs as f64;
    println!("{layers} layers, width {width}, {tokens} tokens: {per:.3} s a forward pass");
    Ok(())
}
