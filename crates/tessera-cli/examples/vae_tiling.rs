//! The VAE decode with and without tiling (`--vae-tiling`), for BENCHMARKS.md:
//!
//!   vae_tiling time VAE_DIR WIDTHxHEIGHT FRAMES whole|tiled
//!       decodes seeded random latents of that size; prints the seconds (peak memory:
//!       run it under `/usr/bin/time -f %M`).
//!   vae_tiling compare VAE_DIR VIDEO [FRAMES]
//!       encodes the video's first FRAMES (4k+1, default 9) whole, decodes the latents whole
//!       and tiled, and prints each decode's PSNR against the input and the tiled decode's
//!       PSNR and largest difference against the whole one (pixels in [0, 1]); TILE=t,s
//!       sets the tile and stride in pixels (diffusers' 256,192 by default).

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use tessera_models::wan::vae::{AutoencoderKLWan, Tiling};

fn psnr(a: &Tensor, b: &Tensor) -> f64 {
    // [-1, 1] -> [0, 1]: MSE scales by 1/4.
    let mse = (a - b).unwrap().sqr().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap() as f64 / 4.0;
    10.0 * (1.0 / mse.max(1e-20)).log10()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: vae_tiling time VAE_DIR WxH FRAMES whole|tiled | vae_tiling compare VAE_DIR VIDEO [FRAMES]";
    let dev = Device::Cpu;
    match args.first().map(String::as_str) {
        Some("time") if args.len() == 5 => {
            let mut vae = AutoencoderKLWan::load_decoder(Path::new(&args[1]), DType::F32, &dev).unwrap();
            let (w, h) = args[2].split_once('x').expect(usage);
            let (w, h): (usize, usize) = (w.parse().unwrap(), h.parse().unwrap());
            let frames: usize = args[3].parse().unwrap();
            if args[4] == "tiled" {
                vae.set_tiling(Some(Tiling::default())).unwrap();
            }
            let (s, t) = (vae.spatial_factor(), vae.temporal_factor());
            let z_dim = vae.config().z_dim;
            let z = Tensor::randn(0f32, 1.0, (1, z_dim, (frames - 1) / t + 1, h / s, w / s), &dev).unwrap();
            let start = Instant::now();
            let mut n = 0;
            vae.decode_streaming(&z, &mut |c| {
                n += c.dim(2)?;
                Ok(())
            })
            .unwrap();
            println!("{} {w}x{h}x{n}: decode {:.1} s", args[4], start.elapsed().as_secs_f64());
        }
        Some("compare") if args.len() >= 3 => {
            let mut vae = AutoencoderKLWan::load(Path::new(&args[1]), DType::F32, &dev).unwrap();
            let (frames, _) = tessera_media::read_video(Path::new(&args[2])).unwrap();
            let n: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(9).min(frames.len());
            let (w, h) = (frames[0].width, frames[0].height);
            let data: Vec<f32> =
                frames[..n].iter().flat_map(|f| f.data.iter().map(|&v| v as f32 / 127.5 - 1.0)).collect();
            // (T, H, W, 3) -> (1, 3, T, H, W)
            let video = Tensor::from_vec(data, (n, h, w, 3), &dev).unwrap().permute((3, 0, 1, 2)).unwrap();
            let video = video.unsqueeze(0).unwrap().contiguous().unwrap();
            let z = vae.encode(&video).unwrap();
            let whole = vae.decode(&z).unwrap();
            let tiling = match std::env::var("TILE") {
                // TILE=tile,stride (pixels), diffusers' 256,192 by default.
                Ok(v) => {
                    let (t, s) = v.split_once(',').expect("TILE=tile,stride");
                    let (t, s): (usize, usize) = (t.parse().unwrap(), s.parse().unwrap());
                    Tiling { tile: (t, t), stride: (s, s) }
                }
                Err(_) => Tiling::default(),
            };
            vae.set_tiling(Some(tiling)).unwrap();
            let tiled = vae.decode(&z).unwrap();
            let max = (&tiled - &whole).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() / 2.0;
            println!(
                "{w}x{h}x{n}: whole vs input {:.2} dB, tiled vs input {:.2} dB, tiled vs whole {:.2} dB (largest difference {max:.4})",
                psnr(&whole, &video),
                psnr(&tiled, &video),
                psnr(&tiled, &whole)
            );
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
