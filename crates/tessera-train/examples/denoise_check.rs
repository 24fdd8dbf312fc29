//! Does a trained model denoise world clips as it did in training? Renders world clips,
//! noises their latents at a few t, and reports the flow loss of the model's velocity
//! (text-to-video: no given frames), with the caption and with an empty prompt, and how much
//! of the noise its velocity carries (1 for the true velocity); writes
//! the one-step estimates of the clean video (x_t - t v) as a safetensors `frames` file.
//! `cargo run --release -p tessera-train --example denoise_check -- MODEL_DIR OUT.safetensors [CLIPS] [T]`
use candle_core::{DType, Device, Tensor};
use std::path::Path;
use tessera_models::umt5::encode_prompts;
use tessera_train::config::Bucket;
use tessera_train::flow::{mask_channels, noise, noised};
use tessera_train::train::Exported;
use tessera_world::rng::Rng;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(&args[1]);
    let clips: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(4);
    // Which noise level's estimates go to OUT (one of those reported): 0.5 unless given.
    let show_t: f64 = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(0.5);
    let dev = Device::Cpu;
    let Exported { vae, transformer: tr, text_encoder: text, tokenizer: tok, max_tokens } = Exported::load(dir, &dev)?;
    // How much the text encoder's output depends on the prompt: the mean square of the
    // difference between two prompts' outputs, against the outputs' own mean square.
    let a = encode_prompts(&tok, &text, &["a red ball bounces on a wooden floor"], max_tokens, &dev)?;
    let b = encode_prompts(&tok, &text, &["a blue box slides on the grass"], max_tokens, &dev)?;
    let ms = |t: &Tensor| -> anyhow::Result<f32> { Ok(t.sqr()?.mean_all()?.to_scalar::<f32>()?) };
    let cross = tr.text_context(&a)?;
    let cross_b = tr.text_context(&b)?;
    println!(
        "text encoder: outputs' mean square {:.4}, two prompts' difference {:.4}; after the transformer's text embedder {:.4} and {:.4}",
        ms(&a)?, ms(&(&a - &b)?)?, ms(&cross)?, ms(&(&cross - &cross_b)?)?
    );
    let bucket = Bucket { width: 128, height: 128, frames: 25 };
    let mut rng = Rng::new(4242);
    let mut shown = Vec::new();
    // What training gives a sample with no frames given, the same for every clip of the
    // bucket: an empty mask and the latents of an all-zero video; and the empty prompt.
    let zeros = Tensor::zeros((1, 3, bucket.frames, bucket.height, bucket.width), DType::F32, &dev)?;
    let empty = vae.normalize_latents(&vae.encode(&zeros)?)?;
    let (_, _, f, h, w) = empty.dims5()?;
    let mask = mask_channels(&vec![false; bucket.frames], vae.config().temporal_factor(), 1, h, w, &dev, DType::F32)?;
    let empty_ctx = encode_prompts(&tok, &text, &[""], max_tokens, &dev)?;
    for c in 0..clips {
        let batch = tessera_train::data::world_batch(9999, c, 1, &[bucket], 12.0, 0.0, false, &dev)?;
        let x0 = vae.normalize_latents(&vae.encode(&batch.video)?)?;
        let caption_ctx = encode_prompts(&tok, &text, &[batch.captions[0].as_str()], max_tokens, &dev)?;
        println!("clip {c}: {}", batch.captions[0]);
        for &t in &[0.2, 0.5, 0.8, 0.95, 0.99] {
            let eps = noise(&mut rng, &[1, x0.dim(1)?, f, h, w], &dev, DType::F32)?;
            let (xt, target) = noised(&x0, &eps, &[t])?;
            let input = Tensor::cat(&[&xt, &mask, &empty], 1)?;
            let ts = Tensor::new(&[(t * 1000.0) as f32], &dev)?;
            let mut line = format!("  t {t}:");
            for (name, ctx) in [("caption", &caption_ctx), ("empty", &empty_ctx)] {
                let v = tr.forward(&input, &ts, ctx, None)?;
                let loss = (&v - &target)?.sqr()?.mean_all()?.to_scalar::<f32>()?;
                line += &format!(" loss {name} {loss:.3}");
                if name == "caption" {
                    // How much of the input's noise the velocity carries: the regression
                    // coefficient of v on the noise, 1 for the true velocity (noise - x0,
                    // with x0 independent of the noise). Below 1, each sampling step leaves
                    // noise in that the next step reads as content.
                    let carried = ((&v * &eps)?.sum_all()?.to_scalar::<f32>()?
                        / eps.sqr()?.sum_all()?.to_scalar::<f32>()?) as f64;
                    line += &format!(" (noise carried {carried:.3})");
                }
                if name == "caption" && t == show_t {
                    let x0_hat = (&xt - (v * t)?)?;
                    shown.push(vae.decode(&vae.denormalize_latents(&x0_hat)?)?);
                    shown.push(batch.video.clone());
                }
            }
            line += &format!(" (predicting 0: {:.3})", target.sqr()?.mean_all()?.to_scalar::<f32>()?);
            println!("{line}");
        }
    }
    // (T, H, W, 3) in [0, 1]: the estimates and the clips, one after the other.
    let all = Tensor::cat(&shown, 2)?.squeeze(0)?.permute((1, 2, 3, 0))?;
    let frames = ((all + 1.0)? * 0.5)?.clamp(0.0, 1.0)?.contiguous()?;
    frames.save_safetensors("frames", &args[2])?;
    Ok(())
}
