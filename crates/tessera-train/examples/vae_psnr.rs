//! Reconstruction quality of a VAE folder on fresh world clips: mean PSNR (dB) of
//! decode(encode(video)) against the video, per size; and how the decoder takes latents
//! that are off as a diffusion model's samples are: the PSNR of decode(z + s n), z the
//! normalized latents (unit std per channel), n white Gaussian noise, for s = 0.1, 0.25, 0.5.
//! `cargo run --release -p tessera-train --example vae_psnr -- VAE_DIR [clips] [WxHxT ...]`
use candle_core::{DType, Device};
use tessera_models::wan::vae::AutoencoderKLWan;
use tessera_train::config::Bucket;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let clips: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let sizes: Vec<String> = if args.len() > 3 { args[3..].to_vec() } else { vec!["64x64x9".into(), "128x128x17".into()] };
    let vae = AutoencoderKLWan::load(&dir, DType::F32, &Device::Cpu)?;
    for s in sizes {
        let p: Vec<usize> = s.split('x').map(|v| v.parse().unwrap()).collect();
        let bucket = Bucket { width: p[0], height: p[1], frames: p[2] };
        let levels = [0.1, 0.25, 0.5];
        let mut total = 0.0;
        let mut noisy = [0.0; 3];
        let psnr = |a: &candle_core::Tensor, b: &candle_core::Tensor| -> anyhow::Result<f64> {
            let mse = (a - b)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64 / 4.0; // [-1,1] -> [0,1]
            Ok(10.0 * (1.0 / mse.max(1e-12)).log10())
        };
        for i in 0..clips {
            // Steps far past any training run: clips the VAE has not seen.
            let batch = tessera_train::data::world_batch(99, 1_000_000 + i, 1, &[bucket], 12.0, 0.5, &Device::Cpu)?;
            let z = vae.encode(&batch.video)?;
            total += psnr(&vae.decode(&z)?, &batch.video)?;
            let zn = vae.normalize_latents(&z)?;
            for (k, &l) in levels.iter().enumerate() {
                let n = tessera_train::flow::noise(&mut tessera_world::rng::Rng::derive(7, i as u64), zn.dims(), &Device::Cpu, DType::F32)?;
                let off = vae.denormalize_latents(&(&zn + (n * l)?)?)?;
                noisy[k] += psnr(&vae.decode(&off)?, &batch.video)?;
            }
        }
        let c = clips as f64;
        println!(
            "{s}: mean PSNR {:.2} dB over {clips} clips; latents off by 0.1 / 0.25 / 0.5 std: {:.2} / {:.2} / {:.2} dB",
            total / c, noisy[0] / c, noisy[1] / c, noisy[2] / c
        );
    }
    Ok(())
}
