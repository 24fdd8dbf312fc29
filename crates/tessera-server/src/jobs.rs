//! Jobs: what a request asks for (stored as JSON in its row) and the workers that run
//! them. A worker claims a row with a lease, renews it from a heartbeat thread while the
//! pipeline runs (reporting progress into the row), writes the files to storage under a
//! prefix of its own attempt, then marks the row completed. If the lease is lost (the
//! video was deleted, or this worker stalled and another took the job) the work stops at
//! the next frame and its files are removed.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use tessera_media::marks::Marks;
use tessera_media::provenance::{Claim, Signing};
use tessera_media::{Fit, Frame, VideoWriter, WriteOptions};
use tessera_pipeline::tasks::Session;
use tessera_pipeline::{GenerateParams, Progress};

use crate::db::{now_ms, Video};
use crate::storage::{SPRITESHEET, THUMBNAIL, VIDEO};
use crate::State;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Text (and image) to video.
    Generate,
    /// SDEdit of a finished video with a new prompt.
    Remix,
    /// The source video, then `frames` more.
    Extend,
}

/// A validated request, as the worker needs it (the `request` column).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpec {
    pub kind: Kind,
    pub prompt: String,
    pub negative_prompt: String,
    pub width: usize,
    pub height: usize,
    /// Generate: the video's frames; extend: the frames added.
    pub frames: usize,
    pub fps: f64,
    pub steps: usize,
    pub guidance: f64,
    pub seed: u64,
    /// Storage key of the uploaded first frame (image-to-video).
    pub input_reference: Option<String>,
    /// Storage key of the video to remix or extend.
    pub source: Option<String>,
    /// Remix: how much of the source to redo (0 keeps it, 1 ignores it).
    pub strength: f64,
}

/// Counters the metrics endpoint reads.
#[derive(Default)]
pub struct Stats {
    pub step_micros: AtomicU64,
    pub steps: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub running: AtomicI64,
}

/// Starts `n` worker threads; they stop when `state.shutdown` is set (after the job in
/// hand: its lease lapses otherwise and another worker redoes it).
pub fn start(state: Arc<State>, n: usize) -> Vec<std::thread::JoinHandle<()>> {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "host".into());
    let tag: u32 = rand::random();
    (0..n)
        .map(|i| {
            let state = state.clone();
            let name = format!("{host}-{}-{tag:08x}-w{i}", std::process::id());
            std::thread::Builder::new()
                .name(format!("tessera-worker-{i}"))
                .spawn(move || worker_loop(&state, &name, i == 0))
                .expect("cannot start a worker thread")
        })
        .collect()
}

fn worker_loop(state: &State, name: &str, sweeper: bool) {
    let mut last_sweep = Instant::now() - Duration::from_secs(3600);
    let models: Vec<String> = state.models.iter().map(|m| m.name.clone()).collect();
    while !state.shutdown.load(Ordering::Relaxed) {
        if sweeper && last_sweep.elapsed() >= state.config.sweep_every {
            last_sweep = Instant::now();
            if let Err(e) = sweep(state) {
                eprintln!("sweeper: {e:#}");
            }
        }
        let now = now_ms();
        let claimed = state.db.claim(name, now, now + state.config.lease.as_millis() as i64, &models);
        match claimed {
            Ok(Some(video)) => run(state, name, video),
            Ok(None) => std::thread::sleep(state.config.poll),
            Err(e) => {
                eprintln!("worker {name}: cannot claim a job: {e:#}");
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    }
}

/// Fails jobs that keep killing their workers and deletes the files of expired videos.
fn sweep(state: &State) -> Result<()> {
    for id in state.db.give_up(now_ms())? {
        eprintln!("job {id}: failed after {} attempts", crate::db::MAX_ATTEMPTS);
    }
    let now = now_ms() / 1000;
    for v in state.db.expired(now, 100)? {
        if let Some(prefix) = &v.output {
            state.storage.delete_output(prefix)?;
        }
        state.db.clear_output(&v.id)?;
    }
    Ok(())
}

/// Why a job stopped early.
#[derive(Debug)]
struct LeaseLost;

impl std::fmt::Display for LeaseLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the job's lease was lost (deleted, or taken over by another worker)")
    }
}

impl std::error::Error for LeaseLost {}

fn run(state: &State, worker: &str, video: Video) {
    let started = Instant::now();
    eprintln!("job {}: started by {worker} (attempt {})", video.id, video.attempts);
    state.stats.running.fetch_add(1, Ordering::Relaxed);
    let progress = Arc::new(AtomicI64::new(0));
    let lost = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    // The heartbeat: renews the lease (and publishes progress) a few times per lease.
    let heartbeat = {
        let (progress, lost, done) = (progress.clone(), lost.clone(), done.clone());
        let db = state.db.clone();
        let (id, worker, lease) = (video.id.clone(), worker.to_string(), state.config.lease);
        std::thread::spawn(move || {
            let every = (lease / 4).max(Duration::from_millis(100));
            let mut last = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50).min(every));
                if last.elapsed() < every {
                    continue;
                }
                last = Instant::now();
                match db.renew(&id, &worker, progress.load(Ordering::Relaxed), now_ms() + lease.as_millis() as i64) {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.store(true, Ordering::Relaxed);
                        return;
                    }
                    Err(e) => eprintln!("job {id}: cannot renew the lease: {e:#}"),
                }
            }
        })
    };
    let prefix = format!("videos/{}/{}", video.id, video.attempts);
    let result = execute(state, &video, &prefix, &progress, &lost);
    done.store(true, Ordering::Relaxed);
    let _ = heartbeat.join();
    state.stats.running.fetch_sub(1, Ordering::Relaxed);
    let now = now_ms() / 1000;
    let outcome = match result {
        Ok(()) => state.db.complete(&video.id, worker, &prefix, now, now + state.config.retention.as_secs() as i64),
        Err(e) if e.downcast_ref::<LeaseLost>().is_some() => {
            if state.shutdown.load(Ordering::Relaxed) && !lost.load(Ordering::Relaxed) {
                // Shutting down, lease still ours: back to the queue for another worker now.
                if let Ok(true) = state.db.release(&video.id, worker) {
                    eprintln!("job {}: handed back to the queue (shutting down)", video.id);
                }
            }
            Ok(false)
        }
        Err(e) => {
            let message = format!("{e:#}");
            eprintln!("job {}: failed: {message}", video.id);
            state.stats.failed.fetch_add(1, Ordering::Relaxed);
            state.db.fail(&video.id, worker, "generation_failed", &message, now)
        }
    };
    match outcome {
        Ok(true) => {
            if state.db.get(&video.id).ok().flatten().is_some_and(|v| v.status == "completed") {
                state.stats.completed.fetch_add(1, Ordering::Relaxed);
                eprintln!("job {}: completed in {:.1} s", video.id, started.elapsed().as_secs_f64());
            }
        }
        Ok(false) => {
            // Not ours any more: remove what this attempt wrote.
            eprintln!("job {}: lease lost; discarding attempt {}", video.id, video.attempts);
            let _ = state.storage.delete_output(&prefix);
        }
        Err(e) => eprintln!("job {}: cannot record the outcome: {e:#}", video.id),
    }
}

/// Generates the video and stores its files under `prefix`.
fn execute(state: &State, video: &Video, prefix: &str, progress: &AtomicI64, lost: &AtomicBool) -> Result<()> {
    let spec: JobSpec = serde_json::from_str(&video.request).context("the job's stored request is unreadable")?;
    let model = state
        .models
        .get(&video.model)
        .ok_or_else(|| anyhow!("model {:?} is not served by this worker", video.model))?;
    let tmp = &state.tmp;
    let fit = |f: &Frame| tessera_media::fit(f, spec.width, spec.height, Fit::Crop);
    let read = |key: &str| -> Result<Vec<Frame>> {
        let bytes = state.storage.get(key)?.ok_or_else(|| anyhow!("the input {key} is gone from storage"))?;
        // The key's extension is the format (the API stored it so).
        let (frames, src_fps) = tessera_media::decode_video(std::path::Path::new(key), &bytes)?;
        let frames = if src_fps > 0.0 { tessera_media::resample(&frames, src_fps, spec.fps) } else { frames };
        Ok(frames.iter().map(fit).collect())
    };
    let first = spec.input_reference.as_deref().map(read).transpose()?.and_then(|v| v.into_iter().next());
    let source = spec.source.as_deref().map(read).transpose()?;

    // World models expand short prompts into their captions, as the CLI does.
    let prompt = if model.defaults.expand_prompts {
        let opts = tessera_world::scene::SceneOptions {
            seconds: spec.frames.saturating_sub(1) as f64 / spec.fps,
            cut_probability: 0.0,
            hold_out: false,
        };
        // As the CLI: words outside the world's vocabulary are skipped (issue 28: every
        // prompt yields a video); reporting them in the API is issue 30's.
        tessera_world::expand_lenient(&spec.prompt, spec.seed, &opts).0.caption
    } else {
        spec.prompt.clone()
    };
    let window = model.defaults.frames.unwrap_or(spec.frames);
    let total = match (spec.kind, &source) {
        (Kind::Generate, _) => spec.frames,
        (Kind::Remix, Some(s)) => s.len(),
        (Kind::Extend, Some(s)) => s.len() + spec.frames,
        _ => anyhow::bail!("the job has no source video"),
    };
    let params = GenerateParams {
        prompt,
        negative_prompt: spec.negative_prompt.clone(),
        width: spec.width,
        height: spec.height,
        frames: window,
        steps: spec.steps,
        guidance: spec.guidance,
        max_sequence_length: model.defaults.max_sequence_length.unwrap_or(512),
        seed: spec.seed,
        ..Default::default()
    };

    // Frames stream into the MP4 (marked) while a few are kept for the previews.
    let out_path = tmp.join(format!("{}-{}.mp4", video.id, video.attempts));
    let payload = tessera_pipeline::defaults::generation_payload(&spec.prompt, spec.seed);
    let mut marks = Marks::new(Some(payload), false, spec.fps);
    // C2PA: what made it, signed into the MP4 and the PNGs.
    let task = match (spec.kind, &spec.input_reference) {
        (Kind::Generate, None) => "text-to-video",
        (Kind::Generate, Some(_)) => "image-to-video",
        (Kind::Remix, _) => "video-to-video",
        (Kind::Extend, _) => "extend-forward",
    };
    let claim = Claim {
        version: env!("CARGO_PKG_VERSION").to_string(),
        model: model.name.clone(),
        task: task.to_string(),
        prompt: spec.prompt.clone(),
        include_prompt: false,
        watermark_id: Some(payload.id),
    };
    let opts =
        WriteOptions { c2pa: Some(Signing { claim, credentials: state.credentials.clone() }), ..Default::default() };
    let mut writer = VideoWriter::create(&out_path, spec.fps, &opts)?;
    let sprite_at: Vec<usize> = (0..SPRITES.min(total)).map(|i| i * total / SPRITES.min(total)).collect();
    let mut sprites: Vec<Frame> = Vec::new();
    let written = std::sync::atomic::AtomicUsize::new(0);
    let mut sink = |mut f: Frame| -> tessera_pipeline::Result<()> {
        if lost.load(Ordering::Relaxed) || state.shutdown.load(Ordering::Relaxed) {
            return Err(tessera_pipeline::Error::Invalid(LeaseLost.to_string()));
        }
        marks.apply(&mut f);
        let n = written.fetch_add(1, Ordering::Relaxed);
        if sprite_at.contains(&n) {
            sprites.push(f.clone());
        }
        progress.fetch_max(((n + 1) * 100 / total).min(99) as i64, Ordering::Relaxed);
        writer.push(f).map_err(|e| tessera_pipeline::Error::Invalid(e.to_string()))
    };
    let mut last_step = Instant::now();
    let mut on_progress = |ev: Progress| match ev {
        Progress::Step { step, total: n } => {
            if step > 1 {
                let dt = last_step.elapsed();
                state.stats.step_micros.fetch_add(dt.as_micros() as u64, Ordering::Relaxed);
                state.stats.steps.fetch_add(1, Ordering::Relaxed);
            }
            last_step = Instant::now();
            // The frames written plus this window's share of its frames.
            let done = written.load(Ordering::Relaxed).min(total);
            let pending = window.min(total - done);
            let p = (done * n + pending * step) * 100 / (total * n.max(1));
            progress.fetch_max(p.min(99) as i64, Ordering::Relaxed);
        }
        _ => last_step = Instant::now(),
    };
    let result = (|| -> tessera_pipeline::Result<()> {
        let mut session = Session::new(&model.pipeline, params, &mut on_progress)?;
        match spec.kind {
            Kind::Generate => {
                let keys: Vec<(usize, Frame)> = first.into_iter().map(|f| (0, f)).collect();
                session.keyframes(total, &keys, &mut sink, &mut on_progress)
            }
            Kind::Remix => {
                session.edit(source.as_deref().unwrap_or_default(), spec.strength, &mut sink, &mut on_progress)
            }
            Kind::Extend => {
                session.extend_forward(source.as_deref().unwrap_or_default(), spec.frames, &mut sink, &mut on_progress)
            }
        }
    })();
    if let Err(e) = result {
        drop(writer);
        let _ = std::fs::remove_file(&out_path);
        if lost.load(Ordering::Relaxed) || state.shutdown.load(Ordering::Relaxed) {
            return Err(LeaseLost.into());
        }
        return Err(anyhow!("{e}"));
    }
    writer.finish()?;
    let bytes = std::fs::read(&out_path);
    let _ = std::fs::remove_file(&out_path);
    state.storage.put(&format!("{prefix}/{VIDEO}"), &bytes?, "video/mp4")?;
    // The previews are PNGs made in memory (the file name titles their C2PA manifest).
    let thumb = tessera_media::encode_video(std::path::Path::new(THUMBNAIL), &sprites[..1], 1.0, &opts)?;
    state.storage.put(&format!("{prefix}/{THUMBNAIL}"), &thumb, "image/png")?;
    let sheet = tessera_media::encode_video(std::path::Path::new(SPRITESHEET), &[spritesheet(&sprites)], 1.0, &opts)?;
    state.storage.put(&format!("{prefix}/{SPRITESHEET}"), &sheet, "image/png")?;
    if lost.load(Ordering::Relaxed) {
        return Err(LeaseLost.into());
    }
    Ok(())
}

/// Frames in the spritesheet (a 4-column grid, evenly spaced over the video).
const SPRITES: usize = 16;
const SPRITE_COLUMNS: usize = 4;

fn spritesheet(frames: &[Frame]) -> Frame {
    // Tiles at most 256 pixels wide, so a sheet of a large video stays small.
    let (w0, h0) = (frames[0].width, frames[0].height);
    let (w, h) = if w0 > 256 { (256, (h0 * 256 / w0).max(1)) } else { (w0, h0) };
    let cols = SPRITE_COLUMNS.min(frames.len());
    let rows = frames.len().div_ceil(cols);
    let mut sheet = Frame { width: w * cols, height: h * rows, data: vec![0u8; w * cols * h * rows * 3] };
    for (i, f) in frames.iter().enumerate() {
        let tile = tessera_media::fit(f, w, h, Fit::Stretch);
        let (x0, y0) = ((i % cols) * w, (i / cols) * h);
        for y in 0..h {
            let dst = ((y0 + y) * sheet.width + x0) * 3;
            sheet.data[dst..dst + w * 3].copy_from_slice(&tile.data[y * w * 3..(y + 1) * w * 3]);
        }
    }
    sheet
}
