//! `tessera serve`: OpenAI's Videos API (`/v1/videos`) over tessera's pipeline.
//!
//! request ──> validate ──> database row ──> worker claims ──> pipeline (progress to the
//! row) ──> storage ──> content endpoint (docs/ARCHITECTURE.md, section 5). Any number of servers pointed at one
//! PostgreSQL database and one S3 bucket form one service: any of them accepts requests,
//! every one's workers claim jobs with leases.
//!
//! As axum's examples: `app(state)` builds the router, so tests call it without a socket.

pub mod api;
pub mod db;
pub mod error;
pub mod jobs;
pub mod logging;
pub mod s3;
pub mod storage;
pub mod testing;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use sha2::{Digest, Sha256};
use tessera_pipeline::moderation::Policy;
use tessera_pipeline::{ModelDefaults, WanPipeline};

pub use api::app;

/// Everything `tessera serve` can be told; `Config::new` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data folder: the SQLite database, local storage, temporary files, audit log.
    pub data: PathBuf,
    /// `sqlite://PATH` or `postgres://...` [default: SQLite at DATA/tessera.sqlite].
    pub database_url: Option<String>,
    /// `s3://bucket/prefix` or a folder [default: DATA/files].
    pub storage: Option<String>,
    /// Worker threads in this process (0: accept requests only).
    pub workers: usize,
    /// Accepted API keys; none means no authentication.
    pub api_keys: Vec<String>,
    /// Model folders; the first is the default. Empty: the built-in model.
    pub models: Vec<PathBuf>,
    pub device: String,
    /// Quantize every model's transformer blocks at load (`--quantize`).
    pub quantize: Option<tessera_pipeline::Quantize>,
    /// When the VAE decodes in tiles (`--vae-tiling`; auto: frames above 1280x720).
    pub vae_tiling: tessera_pipeline::VaeTiling,
    /// How long a claimed job stays a worker's without a renewal.
    pub lease: Duration,
    /// How often an idle worker looks for work.
    pub poll: Duration,
    /// How long finished videos' files are kept (`expires_at`).
    pub retention: Duration,
    /// How often one worker deletes expired files and gives up on crashing jobs.
    pub sweep_every: Duration,
    /// Requests per minute per API key (0: unlimited; no limit without keys).
    pub rate_limit: u32,
    /// Queued plus running jobs per API key (no limit without keys).
    pub max_jobs: i64,
    /// Jobs queued across all keys and servers: past it, new jobs are a 429 until workers
    /// catch up.
    pub max_queued: i64,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// A request's body must arrive within this (a client sending one byte a second is
    /// cut off with a 408).
    pub body_timeout: Duration,
    pub max_seconds: f64,
    /// Largest width x height.
    pub max_pixels: usize,
    pub policy: Option<PathBuf>,
    /// Refused prompts (JSON Lines) [default: DATA/audit.jsonl].
    pub audit_log: Option<PathBuf>,
    /// C2PA signing keys (`tessera keys init`) [default: DATA/keys, made on first start].
    /// Servers of one service should share one set.
    pub keys: Option<PathBuf>,
}

impl Config {
    pub fn new(data: PathBuf) -> Self {
        Config {
            data,
            database_url: None,
            storage: None,
            workers: 1,
            api_keys: Vec::new(),
            models: Vec::new(),
            device: "cpu".into(),
            quantize: None,
            vae_tiling: tessera_pipeline::VaeTiling::Auto,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(250),
            retention: Duration::from_secs(7 * 24 * 3600),
            sweep_every: Duration::from_secs(30),
            rate_limit: 600,
            max_jobs: 8,
            max_queued: 1000,
            max_body: 64 << 20,
            body_timeout: Duration::from_secs(60),
            max_seconds: 60.0,
            max_pixels: 1280 * 720,
            policy: None,
            audit_log: None,
            keys: None,
        }
    }
}

/// A model this server runs: its folder, its defaults (tessera.json) and its pipeline.
pub struct Model {
    pub name: String,
    pub created: i64,
    pub defaults: ModelDefaults,
    pub pipeline: WanPipeline,
}

pub struct Models {
    list: Vec<Arc<Model>>,
}

/// Names OpenAI's SDKs send by default: they mean this server's default model, so code
/// written for Sora runs with only its base URL changed.
pub const ALIASES: &[&str] = &["sora-2", "sora-2-pro"];

impl Models {
    pub fn load(dirs: &[PathBuf], device: &Device, vae_tiling: tessera_pipeline::VaeTiling) -> Result<Self> {
        let dirs = if dirs.is_empty() { vec![tessera_pipeline::builtin_model()?] } else { dirs.to_vec() };
        let mut list = Vec::new();
        for spec in dirs {
            // A folder (named by its folder), or a Hugging Face name in the local cache
            // (named by it: requests say `"model": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"`).
            let found = tessera_pipeline::defaults::resolve_model(&spec.to_string_lossy())?;
            let dir = found.dir.canonicalize().with_context(|| format!("model folder {}", found.dir.display()))?;
            let name = found.name;
            let mut pipeline = WanPipeline::open(&dir, device, DType::F32)?;
            pipeline.set_vae_tiling(vae_tiling);
            let defaults = ModelDefaults::read(&dir)?;
            let created = std::fs::metadata(dir.join("model_index.json"))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            if list.iter().any(|m: &Arc<Model>| m.name == name) {
                bail!("two models are named {name:?} (models are named by their folder)");
            }
            list.push(Arc::new(Model { name, created, defaults, pipeline }));
        }
        Ok(Models { list })
    }

    pub fn default_model(&self) -> &Arc<Model> {
        &self.list[0]
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Model>> {
        if ALIASES.contains(&name) {
            return Some(self.default_model());
        }
        self.list.iter().find(|m| m.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Model>> {
        self.list.iter()
    }
}

/// The server's shared state.
pub struct State {
    pub config: Config,
    pub db: Arc<dyn db::Queue>,
    pub storage: storage::Storage,
    pub models: Models,
    pub policy: Policy,
    pub stats: jobs::Stats,
    /// Set on SIGINT/SIGTERM: workers stop claiming and abandon the job in hand (its lease
    /// lapses and a worker redoes it).
    pub shutdown: AtomicBool,
    /// key id -> request times in the last minute.
    pub limiter: Mutex<HashMap<String, std::collections::VecDeque<std::time::Instant>>>,
    /// key id -> key: ids (not keys) are what the database stores as owners.
    pub keys: Vec<(String, String)>,
    /// What every MP4 and PNG this server writes is signed with (C2PA).
    pub credentials: tessera_media::keys::Credentials,
    /// This process's scratch folder (DATA/tmp/PID): decoded inputs and videos being
    /// encoded before they go to storage.
    pub tmp: PathBuf,
}

/// A key's id: what the database stores, so keys themselves are never written down.
pub fn key_id(key: &str) -> String {
    let h = Sha256::digest(key.as_bytes());
    format!("key_{}", h[..8].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

impl State {
    /// Opens the database (running its migrations), the storage and the models. Blocking:
    /// call it outside the async runtime (or in spawn_blocking).
    pub fn open(config: Config) -> Result<Self> {
        std::fs::create_dir_all(&config.data)
            .with_context(|| format!("cannot create data folder {}", config.data.display()))?;
        let url = config
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", config.data.join("tessera.sqlite").display()));
        let db: Arc<dyn db::Queue> = Arc::from(db::open(&url)?);
        let storage_url = config.storage.clone().unwrap_or_else(|| config.data.join("files").display().to_string());
        let storage = storage::Storage::open(&storage_url)?;
        let device = tessera_pipeline::defaults::parse_device(&config.device)?;
        let models = Models::load(&config.models, &device, config.vae_tiling)?;
        let policy = match &config.policy {
            Some(p) => Policy::load(p)?,
            None => Policy::default_policy(),
        };
        let keys = config.api_keys.iter().map(|k| (key_id(k), k.clone())).collect();
        let tmp = scratch_folder(&config.data.join("tmp"))?;
        let keys_dir = config.keys.clone().unwrap_or_else(|| config.data.join("keys"));
        if !tessera_media::keys::exist(&keys_dir) {
            tessera_media::keys::init(&keys_dir, "tessera", false)
                .with_context(|| format!("cannot make C2PA signing keys in {}", keys_dir.display()))?;
            eprintln!("tessera serve: made C2PA signing keys in {} (a local CA and its signer)", keys_dir.display());
        }
        let credentials = tessera_media::keys::load(&keys_dir)?;
        Ok(State {
            credentials,
            tmp,
            config,
            db,
            storage,
            models,
            policy,
            stats: Default::default(),
            shutdown: AtomicBool::new(false),
            limiter: Mutex::new(HashMap::new()),
            keys,
        })
    }

    pub fn audit_log(&self) -> PathBuf {
        self.config.audit_log.clone().unwrap_or_else(|| self.config.data.join("audit.jsonl"))
    }
}

/// DATA/tmp/PID, after removing the folders of processes that are gone (a killed
/// server's half-encoded files; several live servers may share one data folder).
fn scratch_folder(root: &std::path::Path) -> Result<PathBuf> {
    std::fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    for e in std::fs::read_dir(root)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let alive = match name.parse::<u32>() {
            Ok(pid) if cfg!(target_os = "linux") => std::path::Path::new(&format!("/proc/{pid}")).exists(),
            _ => true, // not ours, or no way to tell: leave it
        };
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let dir = root.join(std::process::id().to_string());
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs the server until SIGINT or SIGTERM: HTTP on `addr`, `config.workers` workers.
/// `ready` gets the bound address (the port may have been 0).
pub fn serve(config: Config, addr: &str, ready: impl FnOnce(std::net::SocketAddr)) -> Result<()> {
    let workers = config.workers;
    let state = Arc::new(State::open(config)?);
    let handles = jobs::start(state.clone(), workers);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        ready(listener.local_addr()?);
        axum::serve(listener, app(state.clone()))
            .with_graceful_shutdown(async {
                let ctrl_c = tokio::signal::ctrl_c();
                #[cfg(unix)]
                {
                    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("SIGTERM handler");
                    tokio::select! {
                        _ = ctrl_c => {},
                        _ = term.recv() => {},
                    }
                }
                #[cfg(not(unix))]
                let _ = ctrl_c.await;
            })
            .await
            .context("server error")
    });
    state.shutdown.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    drop(rt);
    result
}
