//! decode(encode(video)) of a video file through a VAE folder: PSNR per frame count, and
//! the round trip written next to OUT (for looking at).
//! `cargo run --release -p tessera-train --example vae_roundtrip -- VAE_DIR VIDEO OUT.mp4`
use candle_core::{DType, Device, Tensor};
use tessera_models::wan::vae::AutoencoderKLWan;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let vae = AutoencoderKLWan::load(std::path::Path::new(&args[1]), DType::F32, &Device::Cpu)?;
    let (frames, fps) = tessera_media::read_video(std::path::Path::new(&args[2]))?;
    let video = tessera_pipeline::tasks::video_tensor(&frames, &Device::Cpu)?;
    let t = video.dim(2)?;
    let (mean, logvar) = vae.encode_posterior(&video.narrow(2, 0, 1 + (t - 1) / 4 * 4)?)?;
    let per_channel =
        |x: &Tensor| -> anyhow::Result<Vec<f32>> { Ok(x.transpose(0, 1)?.flatten_from(1)?.mean(1)?.to_vec1()?) };
    let std = mean.transpose(0, 1)?.flatten_from(1)?.var_keepdim(1)?.sqrt()?.flatten_all()?.to_vec1::<f32>()?;
    let fmt = |v: &[f32]| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" ");
    println!("posterior mean, std over positions per channel: {}", fmt(&std));
    println!("posterior log-variance per channel: {}", fmt(&per_channel(&logvar)?));
    let ns: Vec<usize> = [1usize, 5, 9, 17, 25].into_iter().filter(|&n| n <= t).collect();
    for &n in &ns {
        let v = video.narrow(2, 0, n)?;
        let rec = vae.decode(&vae.encode(&v)?)?;
        let mse = (&rec - &v)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64 / 4.0;
        println!("{n} frames: PSNR {:.2} dB", 10.0 * (1.0 / mse).log10());
        if n == *ns.last().unwrap() {
            let x: Tensor = ((rec.squeeze(0)?.permute((1, 2, 3, 0))? + 1.0)? * 0.5)?.clamp(0.0, 1.0)?;
            let out = tessera_media::frames_from_f32(&x.flatten_all()?.to_vec1::<f32>()?, n, x.dim(1)?, x.dim(2)?);
            tessera_media::write_video(std::path::Path::new(&args[3]), &out?, fps, &Default::default())?;
        }
    }
    Ok(())
}
