//! Jobs: the request (stored as JSON in its row) and the workers that run it through
//! tessera_service, as the CLI does. A worker claims a row with a lease, renews it from a heartbeat thread while the
//! pipeline runs (reporting progress into the row), writes the files to storage under a
//! prefix of its own attempt, then marks the row completed. If the lease is lost (the
//! video was deleted, or this worker stalled and another took the job) the work stops at
//! the next frame and its files are removed.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use tessera_media::{Fit, Frame, VideoWriter, WriteOptions};
use tessera_pipeline::Progress;
use tessera_service::{Direction, Events, GenerationRequest, Limits, Media, Output, Size, Task};

use crate::db::{now_ms, Video};
use crate::storage::{SPRITESHEET, THUMBNAIL, VIDEO};
use crate::State;

/// A job as its row's `request` column stores it: the request itself (the same type the
/// CLI builds) and the warnings given when it was accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub request: GenerationRequest,
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Job {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a job always serialises")
    }

    /// A stored job: this release's form, or a row written before the typed request
    /// (tests/fixtures/jobs-2026-12-07.json), so jobs queued before an upgrade still run.
    pub fn parse(text: &str) -> Result<Job> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        if value.get("request").is_some() {
            return Ok(serde_json::from_value(value)?);
        }
        let old: LegacySpec = serde_json::from_value(value)?;
        Ok(Job { request: old.into_request()?, warnings: Vec::new() })
    }
}

/// The row format of releases up to 2026-12-07 (`JobSpec`): read, never written.
#[derive(Deserialize)]
struct LegacySpec {
    kind: LegacyKind,
    prompt: String,
    #[serde(default)]
    negative_prompt: String,
    width: usize,
    height: usize,
    /// Generate: the video's frames; extend: the frames added.
    frames: usize,
    fps: f64,
    steps: usize,
    guidance: f64,
    seed: u64,
    input_reference: Option<String>,
    source: Option<String>,
    #[serde(default)]
    strength: f64,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum LegacyKind {
    Generate,
    Remix,
    Extend,
}

impl LegacySpec {
    fn into_request(self) -> Result<GenerationRequest> {
        let source = || self.source.clone().ok_or_else(|| anyhow!("the job has no source video"));
        let task = match self.kind {
            LegacyKind::Generate => {
                Task::Generate { image: self.input_reference.clone(), last_image: None, keyframes: vec![] }
            }
            LegacyKind::Remix => Task::Edit { video: source()?, strength: self.strength },
            LegacyKind::Extend => Task::Extend { video: source()?, direction: Direction::Forward },
        };
        Ok(GenerationRequest {
            prompt: self.prompt,
            negative_prompt: self.negative_prompt,
            size: Some(Size { width: self.width, height: self.height }),
            frames: (self.kind != LegacyKind::Remix).then_some(self.frames),
            fps: Some(self.fps),
            steps: Some(self.steps),
            guidance: self.guidance,
            seed: self.seed,
            task,
            ..Default::default()
        })
    }
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

/// Inputs from storage: the key is the reference, its extension the format (the API
/// stored them so).
struct Stored<'s>(&'s crate::storage::Storage);

impl Media for Stored<'_> {
    fn read(&self, key: &str) -> Result<(Vec<Frame>, f64)> {
        let bytes = self.0.get(key)?.ok_or_else(|| anyhow!("the input {key} is gone from storage"))?;
        Ok(tessera_media::decode_video(std::path::Path::new(key), &bytes)?)
    }
}

/// The worker's output: frames stream into the MP4 (in the server's temporary folder)
/// while a few are kept for the previews; each frame first checks the lease.
struct JobOutput<'a> {
    path: std::path::PathBuf,
    writer: Option<VideoWriter>,
    opts: WriteOptions,
    sprite_at: Vec<usize>,
    sprites: Vec<Frame>,
    shared: &'a Shared<'a>,
}

/// What the output and the progress reports share.
struct Shared<'a> {
    written: AtomicUsize,
    total: AtomicUsize,
    progress: &'a AtomicI64,
    lost: &'a AtomicBool,
    shutdown: &'a AtomicBool,
}

impl Output for JobOutput<'_> {
    fn begin(&mut self, frames: usize, fps: f64, opts: &WriteOptions) -> Result<()> {
        let total = frames.max(1);
        self.shared.total.store(total, Ordering::Relaxed);
        self.sprite_at = (0..SPRITES.min(total)).map(|i| i * total / SPRITES.min(total)).collect();
        self.opts = opts.clone();
        self.writer = Some(VideoWriter::create(&self.path, fps, opts)?);
        Ok(())
    }

    fn frame(&mut self, f: Frame) -> Result<()> {
        let s = self.shared;
        if s.lost.load(Ordering::Relaxed) || s.shutdown.load(Ordering::Relaxed) {
            return Err(LeaseLost.into());
        }
        let n = s.written.fetch_add(1, Ordering::Relaxed);
        if self.sprite_at.contains(&n) {
            self.sprites.push(f.clone());
        }
        let total = s.total.load(Ordering::Relaxed).max(n + 1);
        s.progress.fetch_max(((n + 1) * 100 / total).min(99) as i64, Ordering::Relaxed);
        self.writer.as_mut().expect("begin() comes first").push(f)?;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(w) = self.writer.take() {
            w.finish()?;
        }
        Ok(())
    }
}

/// Progress into the row (the frames written plus the window's share of its steps) and
/// step times into the metrics.
struct JobEvents<'a> {
    state: &'a State,
    shared: &'a Shared<'a>,
    window: usize,
    last_step: Instant,
}

impl Events for JobEvents<'_> {
    fn message(&mut self, _text: &str) {}

    fn warning(&mut self, _text: &str) {}

    fn progress(&mut self, ev: Progress) {
        match ev {
            Progress::Step { step, total: n } => {
                if step > 1 {
                    let dt = self.last_step.elapsed();
                    self.state.stats.step_micros.fetch_add(dt.as_micros() as u64, Ordering::Relaxed);
                    self.state.stats.steps.fetch_add(1, Ordering::Relaxed);
                }
                self.last_step = Instant::now();
                let total = self.shared.total.load(Ordering::Relaxed).max(1);
                let done = self.shared.written.load(Ordering::Relaxed).min(total);
                let pending = self.window.min(total - done);
                let p = (done * n + pending * step) * 100 / (total * n.max(1));
                self.shared.progress.fetch_max(p.min(99) as i64, Ordering::Relaxed);
            }
            _ => self.last_step = Instant::now(),
        }
    }
}

/// Generates the video and stores its files under `prefix`.
fn execute(state: &State, video: &Video, prefix: &str, progress: &AtomicI64, lost: &AtomicBool) -> Result<()> {
    let job = Job::parse(&video.request).context("the job's stored request is unreadable")?;
    let req = &job.request;
    let model = state
        .models
        .get(&video.model)
        .ok_or_else(|| anyhow!("model {:?} is not served by this worker", video.model))?;
    // The limits were the API's when the job was accepted.
    let mut plan = tessera_service::plan(req, &model.defaults, &Limits::default()).map_err(|e| anyhow!(e))?;
    plan.params.quantize = state.config.quantize;
    let shared = Shared {
        written: AtomicUsize::new(0),
        total: AtomicUsize::new(plan.frames),
        progress,
        lost,
        shutdown: &state.shutdown,
    };
    let path = state.tmp.join(format!("{}-{}.mp4", video.id, video.attempts));
    let mut out = JobOutput {
        path: path.clone(),
        writer: None,
        opts: WriteOptions::default(),
        sprite_at: Vec::new(),
        sprites: Vec::new(),
        shared: &shared,
    };
    let mut events = JobEvents { state, shared: &shared, window: plan.window, last_step: Instant::now() };
    let result = tessera_service::run(
        req,
        &plan,
        tessera_service::Model { name: &model.name, pipeline: &model.pipeline },
        &Stored(&state.storage),
        Some(state.credentials.clone()),
        &mut out,
        &mut events,
    );
    if let Err(e) = result {
        drop(out.writer.take());
        let _ = std::fs::remove_file(&path);
        if lost.load(Ordering::Relaxed) || state.shutdown.load(Ordering::Relaxed) {
            return Err(LeaseLost.into());
        }
        return Err(e);
    }
    let bytes = std::fs::read(&path);
    let _ = std::fs::remove_file(&path);
    state.storage.put(&format!("{prefix}/{VIDEO}"), &bytes?, "video/mp4")?;
    // The previews are PNGs made in memory (the file name titles their C2PA manifest).
    let (sprites, opts) = (&out.sprites, &out.opts);
    let thumb = tessera_media::encode_video(std::path::Path::new(THUMBNAIL), &sprites[..1], 1.0, opts)?;
    state.storage.put(&format!("{prefix}/{THUMBNAIL}"), &thumb, "image/png")?;
    let sheet = tessera_media::encode_video(std::path::Path::new(SPRITESHEET), &[spritesheet(sprites)], 1.0, opts)?;
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
