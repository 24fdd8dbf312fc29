//! Reconstruction quality of a VAE folder on fresh world clips: mean PSNR (dB) of
//! decode(encode(video)) against the video, per size.
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
        let mut total = 0.0;
        for i in 0..clips {
            // Steps far past any training run: clips the VAE has not seen.
            let batch = tessera_train::data::world_batch(99, 1_000_000 + i, 1, &[bucket], 12.0, 0.5, &Device::Cpu)?;
            let rec = vae.decode(&vae.encode(&batch.video)?)?;
            let mse = (rec - &batch.video)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64 / 4.0; // [-1,1] -> [0,1]
            total += 10.0 * (1.0 / mse.max(1e-12)).log10();
        }
        println!("{s}: mean PSNR {:.2} dB over {clips} clips", total / clips as f64);
    }
    Ok(())
}
