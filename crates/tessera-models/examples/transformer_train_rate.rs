//! One training step of a small WanTransformer3DModel (forward, loss, backward), timed at
//! the built-in v3 recipe's shapes: batch 4 of 25-frame 128x128 clips through a 4x VAE
//! (7 x 32 x 32 latents of 16 channels, plus mask and conditioning channels), 4x4 patches
//! (448 tokens), 4 layers of width 256.
//! `RAYON_NUM_THREADS=1 cargo run --release -p tessera-models --example transformer_train_rate -- [WIDTH PATCH BATCH]`
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::time::Instant;
use tessera_models::wan::transformer::WanTransformer3DModel;

fn main() -> anyhow::Result<()> {
    tessera_models::allocator::tune();
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let (width, patch, batch) = match args[..] {
        [w, p, b] => (w, p, b),
        _ => (256, 4, 4),
    };
    let heads = width / 32;
    let cfg: tessera_models::wan::config::WanTransformerConfig = serde_json::from_value(serde_json::json!({
        "patch_size": [1, patch, patch], "num_attention_heads": heads, "attention_head_dim": 32,
        "in_channels": 36, "out_channels": 16, "text_dim": 128, "freq_dim": 256, "ffn_dim": 4 * width,
        "num_layers": 4, "cross_attn_norm": true, "qk_norm": "rms_norm_across_heads", "eps": 1e-6,
        "rope_max_seq_len": 1024
    }))?;
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let model = WanTransformer3DModel::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
    for v in vm.all_vars() {
        let t = (Tensor::randn(0f32, 1.0, v.dims(), &dev)? * 0.02)?;
        v.set(&t)?;
    }
    let x = Tensor::randn(0f32, 1.0, (batch, 36, 7, 32, 32), &dev)?;
    let target = Tensor::randn(0f32, 1.0, (batch, 16, 7, 32, 32), &dev)?;
    let ctx = Tensor::randn(0f32, 1.0, (batch, 24, 128), &dev)?;
    let t = Tensor::new(&[500f32, 100., 900., 300.][..batch.min(4)], &dev)?
        .repeat(batch.div_ceil(4))?
        .narrow(0, 0, batch)?;
    let tokens = 7 * (32 / patch) * (32 / patch);
    let mut best = [f64::MAX; 2];
    for _ in 0..3 {
        let t0 = Instant::now();
        let pred = model.forward(&x, &t, &ctx, None)?;
        let loss = (pred - &target)?.sqr()?.mean_all()?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        assert!(grads.get(&vm.all_vars()[0]).is_some());
        best = [best[0].min((t1 - t0).as_secs_f64()), best[1].min((t2 - t1).as_secs_f64())];
    }
    println!(
        "width {width}, patch {patch}, batch {batch} x {tokens} tokens: forward {:.3} s, backward {:.3} s",
        best[0], best[1]
    );
    Ok(())
}
