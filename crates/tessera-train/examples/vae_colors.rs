//! Which colours a VAE keeps: for each palette colour of the world, a 128x128 image of a
//! 24x24 square of it on mid grey, and a frame filled with it, through decode(encode(.)):
//! the decoded colour at the square's centre and the frame's mean, in RGB8.
//! `cargo run --release -p tessera-train --example vae_colors -- VAE_DIR`
use candle_core::{DType, Device, Tensor};
use tessera_models::wan::vae::AutoencoderKLWan;
use tessera_world::spec::Color;

fn main() -> anyhow::Result<()> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("VAE_DIR"));
    let vae = AutoencoderKLWan::load(&dir, DType::F32, &Device::Cpu)?;
    let (h, w) = (128usize, 128usize);
    let at = |v: &[f32], c: usize, y: usize, x: usize| {
        ((v[c * h * w + y * w + x] + 1.0) * 127.5).round().clamp(0.0, 255.0) as i32
    };
    for &col in Color::ALL {
        let rgb = col.rgb();
        let mut square = vec![0f32; 3 * h * w];
        let mut full = vec![0f32; 3 * h * w];
        for c in 0..3 {
            let v = rgb[c] as f32 / 127.5 - 1.0;
            for y in 0..h {
                for x in 0..w {
                    let inside = (52..76).contains(&y) && (52..76).contains(&x);
                    square[c * h * w + y * w + x] = if inside { v } else { 0.0 };
                    full[c * h * w + y * w + x] = v;
                }
            }
        }
        let mut line = format!("{:>7} {:?}:", col.word(), rgb);
        for (name, img) in [("square", square), ("full", full)] {
            let x = Tensor::from_vec(img, (1, 3, 1, h, w), &Device::Cpu)?;
            let z = vae.encode(&x)?;
            let r: Vec<f32> = vae.decode(&z)?.flatten_all()?.to_vec1()?;
            let got: Vec<i32> = (0..3)
                .map(|c| {
                    if name == "square" {
                        at(&r, c, 64, 64)
                    } else {
                        (0..h * w).map(|i| at(&r, c, i / w, i % w)).sum::<i32>() / (h * w) as i32
                    }
                })
                .collect();
            line += &format!(" {name} {got:?}");
            if name == "full" {
                // The latents' per-channel mean over the frame (normalized units).
                let zn: Vec<f32> = vae.normalize_latents(&z)?.mean((2, 3, 4))?.flatten_all()?.to_vec1()?;
                line += &format!(" latents {:?}", zn.iter().map(|v| (v * 100.0).round() / 100.0).collect::<Vec<_>>());
            }
        }
        println!("{line}");
    }
    Ok(())
}
