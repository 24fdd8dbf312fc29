//! The trainer on a tiny configuration: it runs, learns, is deterministic for a seed,
//! resumes exactly, and exports a folder the engine loads.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use tessera_train::{train, TrainConfig};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn vae() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tessera-models/tests/fixtures/wan21/vae")
}

fn tiny(out: &Path, steps: usize) -> TrainConfig {
    let text = format!(
        r#"
out = "{}"
vae = "{}"
seed = 7
steps = {steps}
batch = 2
lr = 2e-3
warmup = 2
checkpoint_every = 2
[data]
buckets = ["32x32x5", "48x32x1"]
[transformer]
layers = 1
heads = 2
head_dim = 8
ffn = 32
[text]
dim = 16
layers = 1
heads = 2
max_tokens = 24
"#,
        out.display(),
        vae().display()
    );
    let path = out.join("run.toml");
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(&path, text).unwrap();
    TrainConfig::load(&path).unwrap()
}

fn losses(out: &Path) -> Vec<f64> {
    std::fs::read_to_string(out.join("log.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect()
}

/// A tiny VAE-stage config: base_dim 4, z 4, the given depth and buckets; `extra` lines go
/// at the end of `[autoencoder]`.
fn tiny_vae(
    out: &Path,
    steps: usize,
    lr: f64,
    buckets: &str,
    dim_mult: &str,
    extra: &str,
) -> anyhow::Result<TrainConfig> {
    let text = format!(
        "stage = \"vae\"\nout = \"{}\"\nsteps = {steps}\nbatch = 2\nlr = {lr}\nwarmup = 3\ncheckpoint_every = 10\n[data]\nbuckets = [{buckets}]\n[autoencoder]\nbase_dim = 4\nz_dim = 4\ndim_mult = {dim_mult}\nnum_res_blocks = 1\n{extra}\n",
        out.display()
    );
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(out.join("vae.toml"), text).unwrap();
    TrainConfig::load(&out.join("vae.toml"))
}

#[test]
fn trains_logs_checkpoints_and_exports_a_loadable_model() {
    let out = scratch("run");
    let cfg = tiny(&out, 4);
    let mut seen = Vec::new();
    let model = train(&cfg, false, &Device::Cpu, &mut |r| seen.push(r.step)).unwrap();
    assert_eq!(seen, vec![1, 2, 3, 4]);
    assert_eq!(losses(&out).len(), 4);
    assert!(out.join("checkpoints/step_00000002.safetensors").exists());
    assert!(out.join("checkpoints/step_00000004.safetensors").exists());
    assert!(out.join("curves.png").exists());
    for f in [
        "model_index.json",
        "transformer/config.json",
        "transformer/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
        "tokenizer/tokenizer.json",
        "vae/config.json",
        "scheduler/scheduler_config.json",
    ] {
        assert!(model.join(f).exists(), "{f}");
    }
    // The engine loads what the trainer wrote.
    tessera_models::wan::transformer::WanTransformer3DModel::load(&model.join("transformer"), DType::F32, &Device::Cpu)
        .unwrap();
    tessera_models::umt5::UMT5EncoderModel::load(&model.join("text_encoder"), DType::F32, &Device::Cpu).unwrap();
    let tok = tessera_models::tokenizer::WanTokenizer::from_file(&model.join("tokenizer/tokenizer.json")).unwrap();
    let (ids, mask) = tok.encode("A red ball bounces on a wooden floor.", 12).unwrap();
    assert_eq!(mask.iter().filter(|&&m| m == 1).count(), 10, "8 words, a full stop and </s>: {ids:?}");
    assert!(!ids.contains(&2), "every word is in the vocabulary: {ids:?}");
}

#[test]
fn same_seed_same_run_and_resume_is_exact() {
    let (a, b) = (scratch("a"), scratch("b"));
    train(&tiny(&a, 4), false, &Device::Cpu, &mut |_| {}).unwrap();
    // b: two steps, then resume to four.
    train(&tiny(&b, 2), false, &Device::Cpu, &mut |_| {}).unwrap();
    train(&tiny(&b, 4), true, &Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(losses(&a), losses(&b));
    let ta = candle_core::safetensors::load(a.join("checkpoints/step_00000004.safetensors"), &Device::Cpu).unwrap();
    let tb = candle_core::safetensors::load(b.join("checkpoints/step_00000004.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(ta.len(), tb.len());
    for (k, t) in &ta {
        let d = (t.to_dtype(DType::F64).unwrap() - tb[k].to_dtype(DType::F64).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert_eq!(d, 0.0, "{k} differs after resuming");
    }
}

#[test]
fn the_loss_falls() {
    let out = scratch("learn");
    let cfg = tiny(&out, 40);
    train(&cfg, false, &Device::Cpu, &mut |_| {}).unwrap();
    let l = losses(&out);
    let first: f64 = l[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = l[l.len() - 5..].iter().sum::<f64>() / 5.0;
    assert!(last < 0.9 * first, "loss {first:.3} -> {last:.3}: {l:?}");
}

#[test]
fn the_vae_stage_trains_a_loadable_vae_that_the_transformer_stage_uses() {
    let out = scratch("vae");
    let cfg = tiny_vae(&out, 30, 3e-3, "\"16x16x5\"", "[1, 2, 2, 2]", "").unwrap();
    let vae_dir = train(&cfg, false, &Device::Cpu, &mut |_| {}).unwrap();
    let l = losses(&out);
    let (first, last) = (l[..5].iter().sum::<f64>() / 5.0, l[l.len() - 5..].iter().sum::<f64>() / 5.0);
    assert!(last < 0.8 * first, "reconstruction {first:.4} -> {last:.4}");
    let vae = tessera_models::wan::vae::AutoencoderKLWan::load(&vae_dir, DType::F32, &Device::Cpu).unwrap();
    let c = vae.config();
    assert_eq!((c.latents_mean.len(), c.latents_std.len()), (4, 4));
    assert!(c.latents_std.iter().all(|s| *s > 0.0));

    // The transformer stage on that VAE.
    let run = scratch("on-vae");
    let mut t = tiny(&run, 2);
    t.vae = Some(vae_dir.clone());
    t.data.buckets = vec!["16x16x5".into()];
    let model = train(&t, false, &Device::Cpu, &mut |_| {}).unwrap();
    let tr: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("transformer/config.json")).unwrap()).unwrap();
    assert_eq!(tr["in_channels"], 2 * 4 + 4, "noise, mask and conditioning channels");
    assert!(model.join("vae/diffusion_pytorch_model.safetensors").exists());
}

#[test]
fn trains_on_a_folder_of_captioned_videos() {
    let out = scratch("folder");
    let data = out.join("videos");
    std::fs::create_dir_all(&data).unwrap();
    // Two clips of another size and frame rate: one with a .json sidecar, one with .txt.
    for i in 0..2u64 {
        let clip = tessera_world::sample_clip(
            3,
            i,
            &tessera_world::scene::SceneOptions { seconds: 1.0, cut_probability: 0.0, hold_out: false },
        );
        let mut r = clip.scene.renderer(64, 48, 24.0);
        let frames: Vec<_> = (0..r.frame_count()).map(|k| r.frame(k)).collect();
        tessera_media::write_video(&data.join(format!("c{i}.mp4")), &frames, 24.0, &Default::default()).unwrap();
        if i == 0 {
            std::fs::write(
                data.join("c0.json"),
                serde_json::json!({"caption": clip.caption, "prompt": clip.prompt}).to_string(),
            )
            .unwrap();
        } else {
            std::fs::write(data.join("c1.txt"), &clip.caption).unwrap();
        }
    }
    let mut cfg = tiny(&out, 2);
    cfg.data.folder = Some(data.clone());
    train(&cfg, false, &Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(losses(&out).len(), 2);
    // A video without a caption is refused, by name.
    std::fs::copy(data.join("c0.mp4"), data.join("c2.mp4")).unwrap();
    let err = train(
        &tiny(&scratch("folder2"), 1).tap(|c| c.data.folder = Some(data.clone())),
        false,
        &Device::Cpu,
        &mut |_| {},
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("c2.mp4 has no caption"), "{err}");
}

trait Tap: Sized {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}
impl Tap for TrainConfig {}

#[test]
fn folder_frames_are_cropped_to_the_centre() {
    // A 4x2 frame, left half black, right half white, cropped to 2x2: the centre columns.
    let mut data = Vec::new();
    for _ in 0..2 {
        for x in 0..4 {
            let v = if x < 2 { 0 } else { 255 };
            data.extend([v, v, v]);
        }
    }
    let f = tessera_media::Frame::new(4, 2, data).unwrap();
    let c = tessera_media::fit(&f, 2, 2, tessera_media::Fit::Crop);
    assert_eq!((c.width, c.height), (2, 2));
    assert_eq!((c.data[0], c.data[3]), (0, 255));
}

#[test]
fn init_starts_a_new_run_from_another_runs_weights() {
    let (a, b) = (scratch("init_a"), scratch("init_b"));
    train(&tiny(&a, 2), false, &Device::Cpu, &mut |_| {}).unwrap();
    let ckpt = a.join("checkpoints/step_00000002.safetensors");
    // With a learning rate of 0 the new run's exported (EMA) weights are the checkpoint's.
    let cfg = tiny(&b, 1).tap(|c| {
        c.init = Some(ckpt.clone());
        c.lr = 0.0;
    });
    let model = train(&cfg, false, &Device::Cpu, &mut |_| {}).unwrap();
    let src = candle_core::safetensors::load(&ckpt, &Device::Cpu).unwrap();
    let got =
        candle_core::safetensors::load(model.join("transformer/diffusion_pytorch_model.safetensors"), &Device::Cpu)
            .unwrap();
    assert!(!got.is_empty());
    for (k, t) in &got {
        let d = (t - &src[&format!("param/transformer.{k}")])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        // (the EMA's d*w + (1-d)*w rounds in the last bit)
        assert!(d < 1e-6, "{k} is not the init checkpoint's: {d}");
    }
    // The new run counts its own steps from 1.
    assert_eq!(losses(&b).len(), 1);

    // A checkpoint of other sizes is refused, naming the variable.
    let c = scratch("init_c");
    let cfg = tiny(&c, 1).tap(|c| {
        c.init = Some(ckpt.clone());
        c.transformer.ffn = 48;
    });
    let err = format!("{:#}", train(&cfg, false, &Device::Cpu, &mut |_| {}).unwrap_err());
    assert!(err.contains("ffn") && err.contains("init checkpoint"), "{err}");
}

#[test]
fn logvar_init_starts_the_vae_posterior_nearly_deterministic() {
    let out = scratch("logvar");
    let cfg = tiny_vae(&out, 1, 0.0, "\"16x16x1\"", "[1, 2, 2, 2]", "logvar_init = -6.0").unwrap();
    let vae_dir = train(&cfg, false, &Device::Cpu, &mut |_| {}).unwrap();
    let w = candle_core::safetensors::load(vae_dir.join("diffusion_pytorch_model.safetensors"), &Device::Cpu).unwrap();
    let bias: Vec<f32> = w["quant_conv.bias"].to_vec1().unwrap();
    assert_eq!(bias.len(), 8);
    assert!(bias[4..].iter().all(|b| (b + 6.0).abs() < 1e-4), "log-variance biases {bias:?}");
    assert!(bias[..4].iter().all(|b| b.abs() < 1.0), "mean biases untouched {bias:?}");
    // And the posterior's log-variance on a clip is near -6.
    let vae = tessera_models::wan::vae::AutoencoderKLWan::load(&vae_dir, DType::F32, &Device::Cpu).unwrap();
    let x = candle_core::Tensor::zeros((1, 3, 1, 16, 16), DType::F32, &Device::Cpu).unwrap();
    let (_, logvar) = vae.encode_posterior(&x).unwrap();
    let m = logvar.mean_all().unwrap().to_scalar::<f32>().unwrap();
    assert!((m + 6.0).abs() < 1.0, "mean log-variance {m}");
}

#[test]
fn a_frozen_encoder_run_trains_only_a_wider_decoder_and_keeps_the_latents() {
    // Stage 1: a tiny residual VAE. Stage 2: a decoder twice as wide trained against its
    // frozen encoder (issue 28's decoder leg).
    let (a, b) = (scratch("frozen-a"), scratch("frozen-b"));
    let layout = "base_dim = 8\nresidual = true\ncarry_init = true\ntemporal_downsample = [false, true]";
    let config = |out: &Path, steps: usize, extra: &str| {
        let text = format!(
            "stage = \"vae\"\nout = \"{}\"\nsteps = {steps}\nbatch = 2\nlr = 1e-3\nwarmup = 1\ncheckpoint_every = 10\n[data]\nbuckets = [\"16x16x5\"]\n[autoencoder]\nz_dim = 4\ndim_mult = [1, 2, 2]\nnum_res_blocks = 1\n{extra}\n",
            out.display()
        );
        std::fs::write(out.join("vae.toml"), text).unwrap();
        TrainConfig::load(&out.join("vae.toml"))
    };
    let vae_a = train(&config(&a, 2, layout).unwrap(), false, &Device::Cpu, &mut |_| {}).unwrap();
    let extra = format!("{layout}\ndecoder_base_dim = 16\nfrozen_encoder = \"{}\"", vae_a.display());
    let cfg_b = config(&b, 3, &extra).unwrap();
    let vae_b = train(&cfg_b, false, &Device::Cpu, &mut |_| {}).unwrap();
    let wa = candle_core::safetensors::load(vae_a.join("diffusion_pytorch_model.safetensors"), &Device::Cpu).unwrap();
    let wb = candle_core::safetensors::load(vae_b.join("diffusion_pytorch_model.safetensors"), &Device::Cpu).unwrap();
    let diff = |x: &candle_core::Tensor, y: &candle_core::Tensor| {
        (x - y).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
    };
    let mut encoder = 0;
    for (k, t) in &wb {
        if k.starts_with("encoder.") || k.starts_with("quant_conv.") {
            assert_eq!(diff(t, &wa[k]), 0.0, "{k}: the frozen encoder changed");
            encoder += 1;
        }
    }
    assert!(encoder > 10);
    assert_eq!(wb["decoder.conv_in.weight"].dims()[0], 32, "the decoder is twice as wide");
    // Only the decoder is trained: the checkpoint holds no encoder variables.
    let ck = candle_core::safetensors::load(b.join("checkpoints/step_00000003.safetensors"), &Device::Cpu).unwrap();
    assert!(ck.keys().all(|k| !k.contains("vae.encoder.") && !k.contains("vae.quant_conv.")));
    assert!(ck.keys().any(|k| k.contains("vae.decoder.")));
    // The config keeps the frozen VAE's statistics and says the decoder's width, and the
    // engine's latents are the frozen VAE's.
    let ca: serde_json::Value = serde_json::from_slice(&std::fs::read(vae_a.join("config.json")).unwrap()).unwrap();
    let cb: serde_json::Value = serde_json::from_slice(&std::fs::read(vae_b.join("config.json")).unwrap()).unwrap();
    assert_eq!(ca["latents_mean"], cb["latents_mean"]);
    assert_eq!(ca["latents_std"], cb["latents_std"]);
    assert_eq!(cb["decoder_base_dim"], 16);
    let load = |d: &Path| tessera_models::wan::vae::AutoencoderKLWan::load(d, DType::F32, &Device::Cpu).unwrap();
    let (va, vb) = (load(&vae_a), load(&vae_b));
    let x = candle_core::Tensor::rand(0f32, 1f32, (1, 3, 5, 16, 16), &Device::Cpu).unwrap().affine(2.0, -1.0).unwrap();
    assert_eq!(diff(&va.encode(&x).unwrap(), &vb.encode(&x).unwrap()), 0.0);
    assert_eq!(vb.decode(&vb.encode(&x).unwrap()).unwrap().dims(), &[1, 3, 5, 16, 16]);
    // An encoder of other sizes is refused, naming both.
    let bad = format!(
        "base_dim = 4\nresidual = true\ntemporal_downsample = [false, true]\nfrozen_encoder = \"{}\"",
        vae_a.display()
    );
    let c = scratch("frozen-c");
    let err = format!("{:#}", train(&config(&c, 1, &bad).unwrap(), false, &Device::Cpu, &mut |_| {}).unwrap_err());
    assert!(err.contains("frozen_encoder") && err.contains("base_dim 8"), "{err}");
}

#[test]
fn a_4x_vae_and_patch_4_transformer_train_and_generate() {
    // A VAE of three levels (4x spatial, 4x temporal) and a transformer with 4x4 patches:
    // the configs say so, and the engine loads and runs the result at a multiple of 16.
    let out = scratch("vae4");
    let vae_dir =
        train(&tiny_vae(&out, 2, 1e-3, "\"16x16x5\"", "[1, 2, 2]", "").unwrap(), false, &Device::Cpu, &mut |_| {})
            .unwrap();
    let vc: serde_json::Value = serde_json::from_slice(&std::fs::read(vae_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(vc["scale_factor_spatial"], 4);
    assert_eq!(vc["temperal_downsample"], serde_json::json!([true, true]));
    // Two levels would compress time only 2x: refused.
    let err = format!("{:#}", tiny_vae(&scratch("vae2"), 2, 1e-3, "\"16x16x5\"", "[1, 2]", "").unwrap_err());
    assert!(err.contains("at least 3 levels"), "{err}");

    let run = scratch("on-vae4");
    let mut t = tiny(&run, 1);
    t.vae = Some(vae_dir.clone());
    t.transformer.patch = 4;
    t.data.buckets = vec!["32x16x5".into()];
    let model = train(&t, false, &Device::Cpu, &mut |_| {}).unwrap();
    let pipe = tessera_pipeline::wan::WanPipeline::open(&model, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(pipe.size_multiple(), 16);
    let p = tessera_pipeline::wan::GenerateParams {
        prompt: "a red ball".into(),
        width: 32,
        height: 16,
        frames: 5,
        steps: 2,
        max_sequence_length: 24,
        ..Default::default()
    };
    let frames = pipe.generate(&p, &mut |_| {}).unwrap();
    assert_eq!(frames.dims(), &[5, 16, 32, 3]);

    // A bucket the VAE stride times the patch does not divide is refused before training.
    let bad = scratch("on-vae4-bad");
    let mut t = tiny(&bad, 1);
    t.vae = Some(vae_dir);
    t.transformer.patch = 8;
    t.data.buckets = vec!["48x32x5".into()];
    let err = format!("{:#}", train(&t, false, &Device::Cpu, &mut |_| {}).unwrap_err());
    assert!(err.contains("multiples of 32"), "{err}");
}

#[test]
fn object_weights_cover_palette_pixels_and_their_edges() {
    use candle_core::Tensor;
    // An 8x6 frame of a scene colour with a 2x2 red square at (3..5, 2..4), twice in time.
    let (w, h) = (8usize, 6usize);
    let scene = [128.0f32, 110.0, 96.0];
    let red = tessera_world::Color::Red.rgb();
    let mut planes = vec![0f32; 3 * 2 * h * w];
    for c in 0..3 {
        for t in 0..2 {
            for y in 0..h {
                for x in 0..w {
                    let v = if (3..5).contains(&x) && (2..4).contains(&y) { red[c] as f32 } else { scene[c] };
                    planes[((c * 2 + t) * h + y) * w + x] = v / 127.5 - 1.0;
                }
            }
        }
    }
    let video = Tensor::from_vec(planes, (1, 3, 2, h, w), &Device::Cpu).unwrap();
    let wts = tessera_train::vae::object_weights(&video, 20.0).unwrap();
    assert_eq!(wts.dims(), &[1, 1, 2, h, w]);
    let v: Vec<f32> = wts.flatten_all().unwrap().to_vec1().unwrap();
    for t in 0..2 {
        for y in 0..h {
            for x in 0..w {
                // The square and a one-pixel ring around it: x 2..6, y 1..5.
                let want = if (2..6).contains(&x) && (1..5).contains(&y) { 21.0 } else { 1.0 };
                assert_eq!(v[(t * h + y) * w + x], want, "({x}, {y}) at t={t}");
            }
        }
    }
}

#[test]
fn latent_cell_weights_pool_each_cell_and_its_frames() {
    use candle_core::Tensor;
    // 9 frames of 8x8 pixel weights, all 1 but one pixel of frame 6 at 5: with a stride of 4
    // that pixel (x 2, y 5) is cell (0, 1), and frame 6 is latent frame 2 (frames 5..=8).
    let (t, h, w) = (9usize, 8usize, 8usize);
    let mut px = vec![1f32; t * h * w];
    px[(6 * h + 5) * w + 2] = 5.0;
    let px = Tensor::from_vec(px, (1, 1, t, h, w), &Device::Cpu).unwrap();
    let cells = tessera_train::train::latent_cell_weights(&px, 4, 4, 2, 2).unwrap();
    assert_eq!(cells.dims(), &[1, 1, 3, 2, 2]);
    let v: Vec<f32> = cells.flatten_all().unwrap().to_vec1().unwrap();
    for (i, &x) in v.iter().enumerate() {
        let want = if i == (2 * 2 + 1) * 2 { 5.0 } else { 1.0 };
        assert_eq!(x, want, "cell {i}");
    }
}

#[test]
fn gate_weights_keep_the_object_weight_only_at_low_t() {
    use candle_core::Tensor;
    // Two samples of 2 cells, weights (1, 11) each: the sample at t 0.3 keeps them under a
    // threshold of 0.4, the one at t 0.8 takes the plain loss's 1s; a threshold of 1 (the
    // default) keeps both.
    let w = Tensor::from_vec(vec![1f32, 11.0, 1.0, 11.0], (2, 1, 1, 1, 2), &Device::Cpu).unwrap();
    let gated = tessera_train::train::gate_weights(&w, &[0.3, 0.8], 0.4).unwrap();
    assert_eq!(gated.dims(), &[2, 1, 1, 1, 2]);
    assert_eq!(gated.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![1.0, 11.0, 1.0, 1.0]);
    let all = tessera_train::train::gate_weights(&w, &[0.3, 0.8], 1.0).unwrap();
    assert_eq!(all.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![1.0, 11.0, 1.0, 11.0]);
    let cfg: tessera_train::config::FlowConfig = toml::from_str("object_weight = 10.0").unwrap();
    assert_eq!(cfg.object_weight_max_t, 1.0, "the default keeps every t weighted, as before");
}

#[test]
fn informative_init_opens_the_text_path_and_object_weight_reaches_the_gradient() {
    let stats = |t: &candle_core::Tensor| {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
    };
    // With a learning rate of 0 the exported weights are the initialisation.
    let out = scratch("informative");
    let cfg = tiny(&out, 1).tap(|c| {
        c.text.informative_init = true;
        c.lr = 0.0;
    });
    let model = train(&cfg, false, &Device::Cpu, &mut |_| {}).unwrap();
    let tr =
        candle_core::safetensors::load(model.join("transformer/diffusion_pytorch_model.safetensors"), &Device::Cpu)
            .unwrap();
    let text = candle_core::safetensors::load(model.join("text_encoder/model.safetensors"), &Device::Cpu).unwrap();
    let out_w = &tr["blocks.0.attn2.to_out.0.weight"];
    assert_eq!(
        out_w.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap(),
        0.0,
        "cross-attention's output starts at 0"
    );
    let emb = stats(&text["encoder.embed_tokens.weight"]);
    assert!((0.9..1.1).contains(&emb), "token embeddings' std {emb}");
    // Fan-in 16 (the text width) and 2 x 8 = 16 (the transformer's): 1/4.
    for k in
        ["condition_embedder.text_embedder.linear_1.weight", "blocks.0.attn2.to_v.weight", "blocks.0.attn2.to_k.weight"]
    {
        let s = stats(&tr[k]);
        assert!((0.2..0.3).contains(&s), "{k}: std {s}");
    }
    let s = stats(&tr["blocks.0.attn1.to_v.weight"]);
    assert!((0.015..0.025).contains(&s), "self-attention keeps N(0, 0.02): {s}");

    // Object weights change the update (the log reports the plain loss, so the first
    // step's loss is the same and the second's is not).
    let (a, b) = (scratch("plain_w"), scratch("object_w"));
    train(&tiny(&a, 2), false, &Device::Cpu, &mut |_| {}).unwrap();
    train(&tiny(&b, 2).tap(|c| c.flow.object_weight = 10.0), false, &Device::Cpu, &mut |_| {}).unwrap();
    let (la, lb) = (losses(&a), losses(&b));
    assert_eq!(la[0], lb[0]);
    assert_ne!(la[1], lb[1]);
}

#[test]
fn export_dtype_writes_half_precision_weights_the_engine_loads() {
    let (a, b) = (scratch("export_f32"), scratch("export_f16"));
    let ma = train(&tiny(&a, 1), false, &Device::Cpu, &mut |_| {}).unwrap();
    let mb = train(
        &tiny(&b, 1).tap(|c| c.export_dtype = tessera_train::config::ExportDType::F16),
        false,
        &Device::Cpu,
        &mut |_| {},
    )
    .unwrap();
    for (sub, file) in [("transformer", "diffusion_pytorch_model.safetensors"), ("text_encoder", "model.safetensors")] {
        let wa = candle_core::safetensors::load(ma.join(sub).join(file), &Device::Cpu).unwrap();
        let wb = candle_core::safetensors::load(mb.join(sub).join(file), &Device::Cpu).unwrap();
        assert_eq!(wa.len(), wb.len());
        for (k, t) in &wa {
            assert_eq!(t.dtype(), DType::F32, "{sub}/{k}");
            assert_eq!(wb[k].dtype(), DType::F16, "{sub}/{k}");
            let d = (t - wb[k].to_dtype(DType::F32).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let m = t.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(d <= m * 1e-3 + 1e-7, "{sub}/{k}: {d} against {m}");
        }
    }
    tessera_models::wan::transformer::WanTransformer3DModel::load(&mb.join("transformer"), DType::F32, &Device::Cpu)
        .unwrap();
    tessera_models::umt5::UMT5EncoderModel::load(&mb.join("text_encoder"), DType::F32, &Device::Cpu).unwrap();
}

#[test]
fn carry_init_starts_the_velocity_at_the_noisy_input() {
    // Width 64 = the fixture VAE's 16 channels x 2x2 patches; learning rate 0, so the
    // exported weights are the initialisation.
    let out = scratch("carry");
    let cfg = tiny(&out, 1).tap(|c| {
        c.transformer.carry_init = true;
        c.transformer.heads = 4;
        c.transformer.head_dim = 16;
        c.lr = 0.0;
    });
    let model = train(&cfg, false, &Device::Cpu, &mut |_| {}).unwrap();
    let dir = model.join("transformer");
    let file = dir.join("diffusion_pytorch_model.safetensors");
    let mut w = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    // With the blocks' residual branches zeroed the blocks are the identity, and what is
    // left is patch embedding -> norm_out -> proj_out, which the carry start makes ~x_t.
    for (k, t) in w.iter_mut() {
        if k.contains("to_out.0.weight") || k.contains("ffn.net.2.weight") {
            *t = t.zeros_like().unwrap();
        }
    }
    candle_core::safetensors::save(&w, &file).unwrap();
    let tr = tessera_models::wan::transformer::WanTransformer3DModel::load(&dir, DType::F32, &Device::Cpu).unwrap();
    let xt = candle_core::Tensor::randn(0f32, 1.0, (1, 16, 2, 8, 8), &Device::Cpu).unwrap();
    let rest = candle_core::Tensor::zeros((1, 20, 2, 8, 8), DType::F32, &Device::Cpu).unwrap();
    let input = candle_core::Tensor::cat(&[&xt, &rest], 1).unwrap();
    let t = candle_core::Tensor::new(&[500f32], &Device::Cpu).unwrap();
    let ctx = candle_core::Tensor::zeros((1, 4, 16), DType::F32, &Device::Cpu).unwrap();
    let v = tr.forward(&input, &t, &ctx, None).unwrap();
    let (x, y): (Vec<f32>, Vec<f32>) =
        (xt.flatten_all().unwrap().to_vec1().unwrap(), v.flatten_all().unwrap().to_vec1().unwrap());
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(&p, &q)| p as f64 * q as f64).sum::<f64>();
    let coef = dot(&x, &y) / dot(&x, &x);
    let corr = dot(&x, &y) / (dot(&x, &x) * dot(&y, &y)).sqrt();
    assert!((0.8..1.2).contains(&coef) && corr > 0.9, "v on x_t: coefficient {coef}, correlation {corr}");

    // Without it the output projection starts at 0.
    let plain = train(&tiny(&scratch("carry_off"), 1).tap(|c| c.lr = 0.0), false, &Device::Cpu, &mut |_| {}).unwrap();
    let w = candle_core::safetensors::load(plain.join("transformer/diffusion_pytorch_model.safetensors"), &Device::Cpu)
        .unwrap();
    assert_eq!(w["proj_out.weight"].abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);

    // A width below a token's values is refused with the sizes.
    let err = train(
        &tiny(&scratch("carry_narrow"), 1).tap(|c| c.transformer.carry_init = true),
        false,
        &Device::Cpu,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("at least a token's values"), "{err:#}");
}
