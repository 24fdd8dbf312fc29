//! Reconstruction quality of a VAE folder on fresh world clips: mean PSNR (dB) of
//! decode(encode(video)) against the video, per size; and how the decoder takes latents
//! that are off as a diffusion model's samples are: the PSNR of decode(z + s n), z the
//! normalized latents (unit std per channel), n white Gaussian noise, for s = 0.1, 0.25, 0.5.
//! "objects kept": of the pixels the evaluator classifies as a palette colour (the world's
//! objects) in the clips, the share it classifies as the same colour after the round trip.
//! With `VAE_PSNR_SAVE=FILE.safetensors`, writes `frames` (rows of first frames: the clips,
//! their round trips, then the round trips off by each level), in [0, 1].
//! `cargo run --release -p tessera-train --example vae_psnr -- VAE_DIR [clips] [WxHxT ...]`
use candle_core::{DType, Device};
use tessera_models::wan::vae::AutoencoderKLWan;
use tessera_train::config::Bucket;

/// The evaluator's palette class of every pixel of a (1, 3, T, H, W) video in [-1, 1].
fn labels(video: &candle_core::Tensor) -> anyhow::Result<Vec<u8>> {
    use tessera_world::eval::segment::{classify, Image};
    let (_, _, t, h, w) = video.dims5()?;
    let v: Vec<f32> = video.flatten_all()?.to_vec1()?;
    let mut out = Vec::with_capacity(t * h * w);
    for ti in 0..t {
        let mut data = vec![0u8; h * w * 3];
        for c in 0..3 {
            for i in 0..h * w {
                data[i * 3 + c] = ((v[(c * t + ti) * h * w + i] + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8;
            }
        }
        out.extend(classify(&Image { width: w, height: h, data }));
    }
    Ok(out)
}

/// (object pixels of `a`, of them the same class in `b`).
fn kept(a: &[u8], b: &[u8]) -> (usize, usize) {
    let none = tessera_world::eval::segment::NONE;
    a.iter().zip(b).filter(|(x, _)| **x != none).fold((0, 0), |(n, k), (x, y)| (n + 1, k + (x == y) as usize))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let clips: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let sizes: Vec<String> =
        if args.len() > 3 { args[3..].to_vec() } else { vec!["64x64x9".into(), "128x128x17".into()] };
    let vae = AutoencoderKLWan::load(&dir, DType::F32, &Device::Cpu)?;
    for s in sizes {
        let p: Vec<usize> = s.split('x').map(|v| v.parse().unwrap()).collect();
        let bucket = Bucket { width: p[0], height: p[1], frames: p[2] };
        let levels = [0.1, 0.25, 0.5];
        let mut total = 0.0;
        let mut noisy = [0.0; 3];
        let (mut objects, mut same, mut same_noisy) = (0usize, 0usize, [0usize; 3]);
        let psnr = |a: &candle_core::Tensor, b: &candle_core::Tensor| -> anyhow::Result<f64> {
            let mse = (a - b)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64 / 4.0; // [-1,1] -> [0,1]
            Ok(10.0 * (1.0 / mse.max(1e-12)).log10())
        };
        let mut shown: Vec<Vec<candle_core::Tensor>> = vec![Vec::new(); 2 + levels.len()];
        let first = |v: &candle_core::Tensor| v.narrow(2, 0, 1).and_then(|f| f.squeeze(2)?.squeeze(0));
        for i in 0..clips {
            // Steps far past any training run: clips the VAE has not seen.
            let batch =
                tessera_train::data::world_batch(99, 1_000_000 + i, 1, &[bucket], 12.0, 0.5, false, &Device::Cpu)?;
            let z = vae.encode(&batch.video)?;
            let rec = vae.decode(&z)?;
            total += psnr(&rec, &batch.video)?;
            let lab = labels(&batch.video)?;
            let (n, k) = kept(&lab, &labels(&rec)?);
            objects += n;
            same += k;
            shown[0].push(first(&batch.video)?);
            shown[1].push(first(&rec)?);
            let zn = vae.normalize_latents(&z)?;
            for (k, &l) in levels.iter().enumerate() {
                let n = tessera_train::flow::noise(
                    &mut tessera_world::rng::Rng::derive(7, i as u64),
                    zn.dims(),
                    &Device::Cpu,
                    DType::F32,
                )?;
                let off = vae.denormalize_latents(&(&zn + (n * l)?)?)?;
                let dec = vae.decode(&off)?;
                noisy[k] += psnr(&dec, &batch.video)?;
                same_noisy[k] += kept(&lab, &labels(&dec)?).1;
                shown[2 + k].push(first(&dec)?);
            }
        }
        if let Ok(path) = std::env::var("VAE_PSNR_SAVE") {
            // (3, H, W) frames -> one (rows * H, clips * W, 3) sheet.
            let rows: Vec<candle_core::Tensor> =
                shown.iter().map(|r| candle_core::Tensor::cat(r, 2)).collect::<candle_core::Result<_>>()?;
            let sheet = candle_core::Tensor::cat(&rows, 1)?.permute((1, 2, 0))?;
            ((sheet + 1.0)? * 0.5)?
                .clamp(0.0, 1.0)?
                .contiguous()?
                .save_safetensors("frames", format!("{path}.{s}.safetensors"))?;
        }
        let c = clips as f64;
        let pct = |k: usize| 100.0 * k as f64 / objects.max(1) as f64;
        println!(
            "{s}: mean PSNR {:.2} dB over {clips} clips, objects kept {:.1}%; latents off by 0.1 / 0.25 / 0.5 std: {:.2} / {:.2} / {:.2} dB, objects kept {:.1} / {:.1} / {:.1}%",
            total / c, pct(same), noisy[0] / c, noisy[1] / c, noisy[2] / c, pct(same_noisy[0]), pct(same_noisy[1]), pct(same_noisy[2])
        );
    }
    Ok(())
}
