//! The inference convolution (tessera_models::conv::ConvKernel) timed on the VAE decoder's
//! shapes: the built-in model's at 128x128 and Wan 2.1's at 256x256.
//! `RAYON_NUM_THREADS=2 cargo run --release -p tessera-models --example conv_rate`
use candle_core::{Device, Tensor};
use tessera_models::conv::ConvKernel;

fn main() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    for (c_in, c_out, hw) in
        [(16, 16, 128), (32, 32, 64), (96, 96, 256), (192, 192, 128), (384, 384, 64), (384, 384, 32)]
    {
        // One decoder chunk: 4 frames after a 2-frame cache.
        let (t, kt) = (6, 3);
        let x = Tensor::randn(0f32, 1.0, (1, c_in, t, hw, hw), &dev)?;
        let w = Tensor::randn(0f32, 0.05, (c_out, c_in, kt, 3, 3), &dev)?;
        let k = ConvKernel::new(&w, &Tensor::zeros(c_out, candle_core::DType::F32, &dev)?)?;
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t0 = std::time::Instant::now();
            let _ = k.forward(&x, 1, 1)?;
            best = best.min(t0.elapsed().as_secs_f64());
        }
        let flops = 2.0 * (c_in * c_out * 27 * (t - kt + 1) * hw * hw) as f64;
        println!("{c_in:>3} -> {c_out:>3}, 4 frames of {hw}x{hw}: {best:.4} s, {:.1} GFLOP/s", flops / best / 1e9);
    }
    Ok(())
}
