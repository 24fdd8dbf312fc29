//! Does a model reproduce the clips it was trained on? For the first clips of a training
//! folder (images: the first frame), reports the flow loss at a few t (caption, no given
//! frames) and samples each caption from pure noise with a plain Euler ODE in the
//! trainer's own conventions (x_t = (1 - t) x0 + t noise, v = noise - x0, the model fed
//! t * 1000, shifted sigmas, no guidance), so a failure here is the model's and not the
//! pipeline's. Writes `frames` (N, 3, H, W, 3): sample, original, and the original's latents with
//! white noise of the sample's error, in [0, 1].
//! `cargo run --release -p tessera-train --example overfit_check -- MODEL_DIR FOLDER OUT.safetensors [N] [STEPS] [SHIFT]`
use candle_core::{DType, Device, Tensor};
use std::path::Path;
use tessera_models::umt5::encode_prompts;
use tessera_train::config::Bucket;
use tessera_train::data::Folder;
use tessera_train::flow::{mask_channels, noise, noised};
use tessera_train::train::Exported;
use tessera_world::rng::Rng;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(&args[1]);
    let folder = Folder::open(Path::new(&args[2]))?;
    let n: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(8).min(folder.items.len());
    let steps: usize = args.get(5).map(|s| s.parse()).transpose()?.unwrap_or(30);
    let shift: f64 = args.get(6).map(|s| s.parse()).transpose()?.unwrap_or(2.0);
    let dev = Device::Cpu;
    let Exported { vae, transformer: tr, text_encoder: text, tokenizer: tok, max_tokens } = Exported::load(dir, &dev)?;
    let bucket = Bucket { width: 128, height: 128, frames: 1 };
    let zeros = Tensor::zeros((1, 3, 1, 128, 128), DType::F32, &dev)?;
    let empty = vae.normalize_latents(&vae.encode(&zeros)?)?;
    let (_, z, f, h, w) = empty.dims5()?;
    let mask = mask_channels(&[false], 4, 1, h, w, &dev, DType::F32)?;
    let mut rng = Rng::new(7);
    let mut out = Vec::new();
    // Shifted sigmas as the flow schedulers: s * sigma / (1 + (s - 1) sigma).
    let sig: Vec<f64> =
        (0..=steps).map(|i| 1.0 - i as f64 / steps as f64).map(|s| shift * s / (1.0 + (shift - 1.0) * s)).collect();
    for i in 0..n {
        let one = Folder { items: vec![folder.items[i].clone()] };
        let batch = one.batch(0, 0, 1, &[bucket], 12.0, 0.0, &dev)?;
        let x0 = vae.normalize_latents(&vae.encode(&batch.video)?)?;
        let ctx = encode_prompts(&tok, &text, &[batch.captions[0].as_str()], max_tokens, &dev)?;
        let mut line = format!("clip {i}:");
        for &t in &[0.3, 0.6, 0.9, 0.98] {
            let eps = noise(&mut rng, &[1, z, f, h, w], &dev, DType::F32)?;
            let (xt, target) = noised(&x0, &eps, &[t])?;
            let v = tr.forward(
                &Tensor::cat(&[&xt, &mask, &empty], 1)?,
                &Tensor::new(&[(t * 1000.0) as f32], &dev)?,
                &ctx,
                None,
            )?;
            line += &format!(" t {t} loss {:.3}", (&v - &target)?.sqr()?.mean_all()?.to_scalar::<f32>()?);
        }
        let mut x = noise(&mut rng, &[1, z, f, h, w], &dev, DType::F32)?;
        for k in 0..steps {
            let v = tr.forward(
                &Tensor::cat(&[&x, &mask, &empty], 1)?,
                &Tensor::new(&[(sig[k] * 1000.0) as f32], &dev)?,
                &ctx,
                None,
            )?;
            x = (&x + (v * (sig[k + 1] - sig[k]))?)?;
        }
        let err = (&x - &x0)?.sqr()?.mean_all()?.to_scalar::<f32>()?;
        println!("{line}; sample's latent mse against the clip {err:.3}");
        let img = vae.decode(&vae.denormalize_latents(&x)?)?;
        // How the decoder takes an error of the sample's size spread as white noise.
        let pert = (&x0 + (noise(&mut rng, &[1, z, f, h, w], &dev, DType::F32)? * (err as f64).sqrt())?)?;
        let pimg = vae.decode(&vae.denormalize_latents(&pert)?)?;
        out.push(Tensor::stack(&[img.squeeze(0)?, batch.video.squeeze(0)?, pimg.squeeze(0)?], 0)?);
    }
    // (N, 3, 3, 1, H, W) -> (N, 3, H, W, 3) in [0, 1].
    let all = Tensor::stack(&out, 0)?.squeeze(3)?.permute((0, 1, 3, 4, 2))?;
    (((all + 1.0)? * 0.5)?.clamp(0.0, 1.0)?.contiguous()?).save_safetensors("frames", &args[3])?;
    Ok(())
}
