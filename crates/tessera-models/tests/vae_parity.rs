//! Wan VAE parity with diffusers' AutoencoderKLWan on tiny random weights: encode
//! (posterior mean) and decode at relative L2 <= 1e-4, and streaming equal to whole.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use tessera_models::wan::vae::{AutoencoderKLWan, Tiling};

fn fixtures() -> PathBuf {
    tessera_models::testing::model_fixtures()
}

fn check(folder: &str, refname: &str) {
    let vae = AutoencoderKLWan::load(&fixtures().join(folder).join("vae"), DType::F32, &Device::Cpu).unwrap();
    let r = candle_core::safetensors::load(fixtures().join("ref").join(refname), &Device::Cpu).unwrap();
    let mean = vae.encode(&r["video"]).unwrap();
    let e_enc = rel_l2(&mean, &r["latent_mean"]);
    let dec = vae.decode(&r["latents"]).unwrap();
    let e_dec = rel_l2(&dec, &r["decoded"]);
    println!("{folder}: encode rel L2 {e_enc:.2e}, decode rel L2 {e_dec:.2e}");
    assert!(e_enc <= 1e-4, "{folder} encode {e_enc:.3e}");
    assert!(e_dec <= 1e-4, "{folder} decode {e_dec:.3e}");
    // Streaming hands out 1 frame, then 4 per latent frame.
    let mut sizes = Vec::new();
    vae.decode_streaming(&r["latents"], &mut |c| {
        sizes.push(c.dim(2)?);
        Ok(())
    })
    .unwrap();
    assert_eq!(sizes, vec![1, 4, 4]);
}

#[test]
fn wan21_vae_matches_diffusers() {
    check("wan21", "vae_wan21.safetensors");
}

#[test]
fn wan22_residual_vae_matches_diffusers() {
    check("wan22_ti2v", "vae_wan22.safetensors");
}

#[test]
fn latent_normalisation_round_trips() {
    let vae = AutoencoderKLWan::load(&fixtures().join("wan21/vae"), DType::F32, &Device::Cpu).unwrap();
    let z = Tensor::randn(0f32, 1.0, (1, 16, 2, 3, 4), &Device::Cpu).unwrap();
    let back = vae.denormalize_latents(&vae.normalize_latents(&z).unwrap()).unwrap();
    assert!(rel_l2(&back, &z) < 1e-6);
}

/// Relative L2 error, see tessera_models::testing.
fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    tessera_models::testing::rel_l2(a, b).expect("comparable tensors")
}

/// Tiled encode and decode (`set_tiling`) against diffusers' `enable_tiling` on the same
/// tiles (several rows and columns of them, tools/make_fixtures.py tilings): the same
/// tiles, blends and crops, so the same output.
fn check_tiled(folder: &str) {
    let mut vae = AutoencoderKLWan::load(&fixtures().join(folder).join("vae"), DType::F32, &Device::Cpu).unwrap();
    let r =
        candle_core::safetensors::load(fixtures().join(format!("ref/vae_tiling_{folder}.safetensors")), &Device::Cpu)
            .unwrap();
    let ts = r["tile"].to_vec1::<i64>().unwrap();
    let (tile, stride) = (ts[0] as usize, ts[1] as usize);
    vae.set_tiling(Some(Tiling { tile: (tile, tile), stride: (stride, stride) })).unwrap();
    let mean = vae.encode(&r["video"]).unwrap();
    let dec = vae.decode(&r["latents"]).unwrap();
    let (e_enc, e_dec) = (rel_l2(&mean, &r["tiled_mean"]), rel_l2(&dec, &r["tiled_decoded"]));
    println!("{folder} tiled: encode rel L2 {e_enc:.2e}, decode rel L2 {e_dec:.2e}");
    assert!(e_enc <= 1e-4, "{folder} tiled encode {e_enc:.3e}");
    assert!(e_dec <= 1e-4, "{folder} tiled decode {e_dec:.3e}");
    let mut sizes = Vec::new();
    vae.decode_streaming(&r["latents"], &mut |c| {
        sizes.push(c.dim(2)?);
        Ok(())
    })
    .unwrap();
    assert_eq!(sizes, vec![1, 4]);
    // Frames no larger than a tile are decoded whole.
    vae.set_tiling(Some(Tiling { tile: (4096, 4096), stride: (4096, 4096) })).unwrap();
    assert!(rel_l2(&vae.decode(&r["latents"]).unwrap(), &r["tiled_decoded"]) > 1e-2);
}

#[test]
fn wan21_tiled_matches_diffusers() {
    check_tiled("wan21");
}

#[test]
fn wan22_tiled_matches_diffusers() {
    check_tiled("wan22_ti2v");
}
