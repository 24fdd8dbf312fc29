//! Measures this machine's f32 matmul rate through candle (the floor for every model
//! here): `cargo run --release -p tessera-models --example matmul_rate`.
use candle_core::{Device, Tensor};
use std::time::Instant;

fn main() -> candle_core::Result<()> {
    for &(m, k, n) in &[
        (2048, 2048, 2048),
        (1280, 512, 2048),
        (96, 864, 65536),
        (65536, 864, 96),
        (65536, 96, 96),
        (16384, 1728, 192),
    ] {
        let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
        let b = Tensor::randn(0f32, 1.0, (k, n), &Device::Cpu)?;
        let _ = a.matmul(&b)?;
        let reps = 5;
        let t = Instant::now();
        for _ in 0..reps {
            let _ = a.matmul(&b)?;
        }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        println!("{m}x{k} @ {k}x{n}: {:.1} ms, {:.1} GFLOP/s", s * 1e3, 2.0 * (m * k * n) as f64 / s / 1e9);
    }
    Ok(())
}
