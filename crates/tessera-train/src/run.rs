//! What both training stages share, around their own forward pass: the variables with
//! their initialisation, AdamW and the EMA, resuming from the newest checkpoint, and after
//! each step the update, the log line, the report, checkpoints and the curves.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use tessera_world::rng::Rng;

use crate::config::TrainConfig;
use crate::flow::noise;
use crate::optim::{clipped_grads, learning_rate, AdamW, Ema};

/// What the loop reports after each step.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    pub step: usize,
    pub total: usize,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
}

/// What an initialisation rule sets a variable to.
enum Fill {
    Const(f32),
    /// N(0, std^2), drawn from the run's stream.
    Normal(f64),
}

/// Sets every variable of `vm` that `rule` (given its name and dims) picks, in name order,
/// so the draws from `rng` are the same on every run.
fn fill(vm: &VarMap, rng: &mut Rng, rule: impl Fn(&str, &[usize]) -> Option<Fill>) -> Result<()> {
    let data = vm.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let v = &data[name];
        let dims = v.dims().to_vec();
        let t = match rule(name, &dims) {
            None => continue,
            Some(Fill::Const(c)) => Tensor::full(c, dims.as_slice(), &Device::Cpu)?,
            Some(Fill::Normal(std)) => (noise(rng, &dims, &Device::Cpu, DType::F32)? * std)?,
        };
        v.set(&t.to_device(v.device())?)?;
    }
    Ok(())
}

/// 1/sqrt(fan_in) of a weight (out, in, ...).
fn fan_in_std(dims: &[usize]) -> f64 {
    1.0 / ((dims.iter().product::<usize>() / dims[0]) as f64).sqrt()
}

/// Initialisation, in one place: norms' scales (`weight`, the VAE's `gamma`) at 1, biases
/// at 0, the output projection at 0 (the model starts by predicting zero velocity, as
/// DiT's zeroed output layer), the adaLN
/// table at N(0, 1/d) as Wan, everything else N(0, 0.02).
/// With `fan_in`, weights are N(0, 1/fan_in) instead (LeCun), for the convolutional VAE.
pub(crate) fn init(vm: &VarMap, rng: &mut Rng, fan_in: bool) -> Result<()> {
    fill(vm, rng, |name, dims| {
        // (The VAE's RMS norms call their scale `gamma`; until 2026-11-30 it was drawn as a
        // weight, N(0, 1) by fan-in, which the first built-in VAE was trained from.)
        Some(if name.contains("norm") && (name.ends_with("weight") || name.ends_with("gamma")) {
            Fill::Const(1.0)
        } else if name.ends_with("bias") || name.starts_with("proj_out") {
            Fill::Const(0.0)
        } else if name.contains("scale_shift_table") {
            Fill::Normal(1.0 / (*dims.last().unwrap() as f64).sqrt())
        } else if fan_in && dims.len() >= 2 {
            Fill::Normal(fan_in_std(dims))
        } else {
            Fill::Normal(0.02)
        })
    })
}

/// The text path's initialisation (`[text] informative_init`), applied over `init`'s:
/// token embeddings N(0, 1); the text embedder and cross-attention's q, k, v N(0, 1/fan_in);
/// cross-attention's output projection 0. `text` and `transformer` are the two models'
/// variables.
pub(crate) fn init_text_path(text: &VarMap, transformer: &VarMap, rng: &mut Rng) -> Result<()> {
    fill(text, rng, |n, _| (n.ends_with("embed_tokens.weight") || n == "shared.weight").then_some(Fill::Normal(1.0)))?;
    fill(transformer, rng, |n, dims| {
        if !n.ends_with(".weight") {
            None
        } else if n.contains("attn2.to_out") {
            Some(Fill::Const(0.0))
        } else if n.starts_with("condition_embedder.text_embedder.")
            || ["attn2.to_q.", "attn2.to_k.", "attn2.to_v."].iter().any(|p| n.contains(p))
        {
            Some(Fill::Normal(fan_in_std(dims)))
        } else {
            None
        }
    })
}

/// The carry initialisation (`[transformer] carry_init`), applied over `init`'s: the patch
/// embedding's weights on the noisy latents' `z` channels become an orthonormal map Q from a
/// token's z * patch^2 values into the width, and `proj_out` its transpose, scaled by
/// sqrt(z * patch^2 / width) to undo `norm_out`'s normalisation. With the blocks' residual
/// branches small at the start, the predicted velocity is then about x_t: it carries the
/// input's noise from the first step, which the velocity must (it is noise - data) and which
/// transformers whose tokens hold many values learn slowly (MODEL_CARD, "Known failures").
/// Q is the Gram-Schmidt orthonormalisation of a normal draw from the run's stream. The
/// output order is diffusers' unpatchify order (p_h, p_w, channels).
pub(crate) fn init_carry(transformer: &VarMap, z: usize, patch: usize, rng: &mut Rng) -> Result<()> {
    let data = transformer.data().lock().unwrap();
    let (Some(pe), Some(po)) = (data.get("patch_embedding.weight"), data.get("proj_out.weight")) else {
        bail!("carry_init: the transformer has no patch_embedding or proj_out weight")
    };
    let pe_dims = pe.dims().to_vec(); // (D, in_channels, 1, p, p)
    let (d, inc) = (pe_dims[0], pe_dims[1]);
    let k = z * patch * patch;
    if k > d {
        bail!(
            "carry_init needs the width ({d}) to be at least a token's values ({z} channels x {patch}x{patch} = {k})"
        );
    }
    if pe_dims != [d, inc, 1, patch, patch] || po.dims() != [k, d] || inc < z {
        bail!("carry_init: unexpected shapes {:?} and {:?}", pe_dims, po.dims());
    }
    // Q: d x k with orthonormal columns (modified Gram-Schmidt; columns stored contiguously).
    let g: Vec<f32> = noise(rng, &[k, d], &Device::Cpu, DType::F32)?.flatten_all()?.to_vec1()?;
    let mut q: Vec<Vec<f64>> = g.chunks(d).map(|c| c.iter().map(|&x| x as f64).collect()).collect();
    for j in 0..k {
        for i in 0..j {
            let dot: f64 = (0..d).map(|r| q[i][r] * q[j][r]).sum();
            for r in 0..d {
                q[j][r] -= dot * q[i][r];
            }
        }
        let norm = q[j].iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm < 1e-6 {
            bail!("carry_init: degenerate draw");
        }
        q[j].iter_mut().for_each(|x| *x /= norm);
    }
    let mut pe_w: Vec<f32> = pe.as_tensor().to_device(&Device::Cpu)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let mut po_w = vec![0f32; k * d];
    let scale = ((k as f64) / d as f64).sqrt();
    for c in 0..z {
        for kh in 0..patch {
            for kw in 0..patch {
                let o = (kh * patch + kw) * z + c;
                for r in 0..d {
                    pe_w[((r * inc + c) * patch + kh) * patch + kw] = q[o][r] as f32;
                    po_w[o * d + r] = (q[o][r] * scale) as f32;
                }
            }
        }
    }
    pe.set(&Tensor::from_vec(pe_w, pe_dims.as_slice(), &Device::Cpu)?.to_dtype(pe.dtype())?.to_device(pe.device())?)?;
    po.set(&Tensor::from_vec(po_w, (k, d), &Device::Cpu)?.to_dtype(po.dtype())?.to_device(po.device())?)?;
    Ok(())
}

pub(crate) fn sorted_vars(vm: &VarMap, prefix: &str) -> Vec<(String, Var)> {
    let data = vm.data().lock().unwrap();
    let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (format!("{prefix}{k}"), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn checkpoint_path(out: &Path, step: usize) -> PathBuf {
    out.join("checkpoints").join(format!("step_{step:08}.safetensors"))
}

/// The newest checkpoint: (step, path).
pub fn latest_checkpoint(out: &Path) -> Result<Option<(usize, PathBuf)>> {
    let dir = out.join("checkpoints");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(None) };
    let mut best = None;
    for e in entries {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if let Some(n) = name
            .strip_prefix("step_")
            .and_then(|r| r.strip_suffix(".safetensors"))
            .and_then(|n| n.parse::<usize>().ok())
        {
            if best.as_ref().is_none_or(|(s, _)| n > *s) {
                best = Some((n, p));
            }
        }
    }
    Ok(best)
}

fn save_checkpoint(out: &Path, step: usize, named: &[(String, Var)], opt: &AdamW, ema: &Ema) -> Result<()> {
    let mut map: HashMap<String, Tensor> = HashMap::new();
    for (i, (name, v)) in named.iter().enumerate() {
        map.insert(format!("param/{name}"), v.as_tensor().clone());
        map.insert(format!("ema/{name}"), ema.shadow[i].clone());
        map.insert(format!("adam_m/{name}"), opt.m[i].clone());
        map.insert(format!("adam_v/{name}"), opt.v[i].clone());
    }
    map.insert("meta/step".into(), Tensor::new(&[step as u32, opt.t as u32], &Device::Cpu)?);
    let path = checkpoint_path(out, step);
    let tmp = path.with_extension("partial");
    candle_core::safetensors::save(&map, &tmp)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// Fine-tuning: the weights (not the optimizer state) of another run's checkpoint, checked
/// name by name and shape by shape, become the variables.
fn init_from(path: &Path, named: &[(String, Var)]) -> Result<()> {
    let map = candle_core::safetensors::load(path, &Device::Cpu)
        .with_context(|| format!("cannot read init checkpoint {}", path.display()))?;
    for (name, v) in named {
        let w = map.get(&format!("param/{name}")).with_context(|| {
            format!("init checkpoint {} lacks {name} (is it a run of the same stage and sizes?)", path.display())
        })?;
        if w.dims() != v.dims() {
            bail!("init checkpoint {}: {name} is {:?}, this run's is {:?}", path.display(), w.dims(), v.dims());
        }
        v.set(&w.to_device(v.device())?)?;
    }
    Ok(())
}

fn load_checkpoint(path: &Path, named: &[(String, Var)], opt: &mut AdamW, ema: &mut Ema) -> Result<()> {
    let map = candle_core::safetensors::load(path, &Device::Cpu)
        .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    let get = |k: &str| map.get(k).cloned().with_context(|| format!("checkpoint {} lacks {k}", path.display()));
    for (i, (name, v)) in named.iter().enumerate() {
        v.set(&get(&format!("param/{name}"))?.to_device(v.device())?)?;
        ema.shadow[i] = get(&format!("ema/{name}"))?.to_device(v.device())?;
        opt.m[i] = get(&format!("adam_m/{name}"))?.to_device(v.device())?;
        opt.v[i] = get(&format!("adam_v/{name}"))?.to_device(v.device())?;
    }
    let meta: Vec<u32> = get("meta/step")?.to_vec1()?;
    opt.t = meta[1] as usize;
    Ok(())
}

/// Keeps the log's header and the lines of steps up to `step` (a resumed run rewrites the
/// rest).
fn truncate_log(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("step")
                || l.split(',').next().and_then(|s| s.parse::<usize>().ok()).is_some_and(|s| s <= step)
        })
        .collect();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    if step == 0 {
        out.clear();
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// One run's trained variables and bookkeeping.
pub(crate) struct Run<'a> {
    cfg: &'a TrainConfig,
    /// Variables by checkpoint name, sorted.
    named: Vec<(String, Var)>,
    vars: Vec<Var>,
    opt: AdamW,
    ema: Ema,
    /// The first step to run (after a resume, the checkpoint's).
    pub start: usize,
    log: File,
    log_path: PathBuf,
    began: Instant,
}

impl<'a> Run<'a> {
    /// Sets up the optimizer and the EMA over `named`, resumes from the newest checkpoint
    /// when asked, and opens the log (rewriting any lines past the resumed step).
    pub fn open(cfg: &'a TrainConfig, named: Vec<(String, Var)>, resume: bool) -> Result<Self> {
        std::fs::create_dir_all(cfg.out.join("checkpoints"))
            .with_context(|| format!("cannot create {}", cfg.out.display()))?;
        let vars: Vec<Var> = named.iter().map(|(_, v)| v.clone()).collect();
        let mut opt = AdamW::new(&vars, cfg.weight_decay)?;
        let mut ema = Ema::new(&vars, cfg.ema)?;
        let mut start = 0;
        if resume {
            if let Some((step, path)) = latest_checkpoint(&cfg.out)? {
                load_checkpoint(&path, &named, &mut opt, &mut ema)?;
                start = step;
            }
        }
        if start == 0 {
            if let Some(init) = &cfg.init {
                init_from(init, &named)?;
                ema = Ema::new(&vars, cfg.ema)?; // the average starts at the loaded weights
            }
        }
        let log_path = cfg.out.join("log.csv");
        truncate_log(&log_path, start)?;
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        if start == 0 {
            writeln!(log, "step,loss,lr,grad_norm,seconds")?;
        }
        Ok(Run { cfg, named, vars, opt, ema, start, log, log_path, began: Instant::now() })
    }

    /// Backpropagates `loss` and updates the variables (clipped, AdamW at the step's
    /// learning rate, EMA); logs `logged` (the loss the curves show), reports, and writes a
    /// checkpoint and the curves when due. Returns the time taken by the backward pass and
    /// by the update.
    pub fn step(
        &mut self,
        step: usize,
        loss: &Tensor,
        logged: &Tensor,
        on_step: &mut dyn FnMut(StepReport),
    ) -> Result<(Duration, Duration)> {
        let cfg = self.cfg;
        let lr = learning_rate(step, cfg.lr, cfg.warmup, cfg.steps);
        let t0 = Instant::now();
        let grads = loss.backward()?;
        let t1 = Instant::now();
        let (gs, grad_norm) = clipped_grads(&self.vars, &grads, cfg.grad_clip)?;
        self.opt.step(&self.vars, &gs, lr)?;
        self.ema.update(&self.vars, step)?;
        let t2 = Instant::now();
        let loss_v = logged.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !loss_v.is_finite() {
            bail!("the loss is {loss_v} at step {step}: lower the learning rate");
        }
        writeln!(
            self.log,
            "{},{loss_v:.6},{lr:.3e},{grad_norm:.4},{:.2}",
            step + 1,
            self.began.elapsed().as_secs_f64()
        )?;
        on_step(StepReport { step: step + 1, total: cfg.steps, loss: loss_v, lr, grad_norm });
        if (step + 1).is_multiple_of(cfg.checkpoint_every) || step + 1 == cfg.steps {
            self.log.flush()?;
            save_checkpoint(&cfg.out, step + 1, &self.named, &self.opt, &self.ema)?;
            crate::plot::write_curves(&self.log_path, &cfg.out.join("curves.png"))?;
        }
        Ok((t1 - t0, t2 - t1))
    }

    /// Restarts the EMA at the current weights (after they were changed outside a step).
    pub fn sync_ema(&mut self) -> Result<()> {
        self.ema = Ema::new(&self.vars, self.ema.decay)?;
        Ok(())
    }

    /// The EMA weights of the variables named `prefix...`, keyed without the prefix: what
    /// an export writes.
    pub fn ema_weights(&self, prefix: &str) -> HashMap<String, Tensor> {
        self.named
            .iter()
            .zip(&self.ema.shadow)
            .filter_map(|((name, _), w)| name.strip_prefix(prefix).map(|k| (k.to_string(), w.clone())))
            .collect()
    }
}

/// Whether `TESSERA_TRAIN_PROFILE` asks for each step's timings on stderr.
pub(crate) fn profiling() -> bool {
    std::env::var_os("TESSERA_TRAIN_PROFILE").is_some()
}
