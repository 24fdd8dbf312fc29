//! `tessera serve`: parsing and wiring only; the server is tessera_server.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: String,
    /// Data folder: the SQLite database, stored videos, temporary files, the audit log.
    #[arg(long, value_name = "DIR", default_value = "tessera-data")]
    data: PathBuf,
    /// postgres://USER:PASSWORD@HOST/DB to share one queue between servers, or
    /// sqlite://PATH [default: SQLite in the data folder].
    #[arg(long, value_name = "URL", env = "TESSERA_DATABASE_URL")]
    database_url: Option<String>,
    /// s3://BUCKET/PREFIX (credentials, region and endpoint from the AWS_* variables) or a
    /// folder [default: DATA/files].
    #[arg(long, value_name = "URL", env = "TESSERA_STORAGE")]
    storage: Option<String>,
    /// Worker threads generating videos in this process (0: only accept requests).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// An accepted API key (repeatable; also $TESSERA_API_KEYS, comma-separated). With
    /// keys, requests need `Authorization: Bearer KEY` and each key sees its own videos.
    #[arg(long = "api-key", value_name = "KEY")]
    api_keys: Vec<String>,
    /// A model folder to serve, or a Hugging Face name (OWNER/NAME[@REVISION]) in the local
    /// cache, served under that name (repeatable; the first is the default) [default: the
    /// built-in model].
    #[arg(long = "model", value_name = "DIR|OWNER/NAME")]
    models: Vec<PathBuf>,
    /// cpu, or cuda[:N] when built with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Quantize the transformer's block weights as they load: q8_0 (8-bit) or q4_k (4-bit)
    /// [default: as stored].
    #[arg(long, value_parser = crate::generate::parse_quantize, value_name = "FORMAT")]
    quantize: Option<tessera_pipeline::Quantize>,
    /// Encode and decode with the VAE in overlapping tiles of 256 pixels (diffusers'
    /// `enable_tiling`), so that memory stays bounded at any size: `auto` tiles frames
    /// larger than 1280x720.
    #[arg(long, value_parser = crate::generate::parse_vae_tiling, default_value = "auto", value_name = "auto|on|off")]
    vae_tiling: tessera_pipeline::VaeTiling,
    /// Seconds a worker holds a job without renewing its lease; after that another worker
    /// takes it over.
    #[arg(long, default_value_t = 30.0)]
    lease_seconds: f64,
    /// Hours finished videos' files are kept (`expires_at`).
    #[arg(long, default_value_t = 168.0)]
    retention_hours: f64,
    /// Requests per minute per API key (0: unlimited). Only with --api-key.
    #[arg(long, default_value_t = 600)]
    rate_limit: u32,
    /// Queued plus running jobs per API key. Only with --api-key.
    #[arg(long, default_value_t = 8)]
    max_jobs: i64,
    /// Jobs waiting for a worker across all keys and servers; past it, new jobs are a 429.
    #[arg(long, default_value_t = 1000)]
    max_queued: i64,
    /// Seconds a request's body may take to arrive (slower clients are cut off).
    #[arg(long, default_value_t = 60.0)]
    body_timeout_seconds: f64,
    /// Largest request body in MiB (uploaded images and videos).
    #[arg(long, default_value_t = 64)]
    max_body_mib: usize,
    /// Longest video in seconds.
    #[arg(long, default_value_t = 60.0)]
    max_seconds: f64,
    /// Largest frame, in pixels (width x height).
    #[arg(long, default_value_t = 1280 * 720)]
    max_pixels: usize,
    /// A prompt policy file (TOML) instead of the default policy.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Where refused prompts are logged [default: DATA/audit.jsonl].
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// C2PA signing keys (`tessera keys init --dir DIR`) [default: DATA/keys, made on the
    /// first start]. Servers of one service should share one set.
    #[arg(long, value_name = "DIR")]
    keys: Option<PathBuf>,
    /// Request logs (one line per request on stderr: method, path, status, latency,
    /// request id, API key id) as JSON Lines instead of text.
    #[arg(long)]
    log_json: bool,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let mut keys = args.api_keys;
    if let Ok(env) = std::env::var("TESSERA_API_KEYS") {
        keys.extend(env.split(',').map(str::trim).filter(|k| !k.is_empty()).map(String::from));
    }
    if args.lease_seconds.is_nan() || args.lease_seconds <= 0.0 {
        anyhow::bail!("--lease-seconds must be more than 0");
    }
    // The request log: stderr, INFO and above, text or JSON Lines.
    let log = tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(tracing::Level::INFO);
    if args.log_json {
        log.json().with_current_span(true).with_span_list(false).init();
    } else {
        log.with_ansi(false).init();
    }
    let mut config = tessera_server::Config::new(args.data);
    config.database_url = args.database_url;
    config.storage = args.storage;
    config.workers = args.workers;
    config.api_keys = keys;
    config.models = args.models;
    config.device = args.device;
    config.quantize = args.quantize;
    config.vae_tiling = args.vae_tiling;
    config.lease = Duration::from_secs_f64(args.lease_seconds);
    config.retention = Duration::from_secs_f64(args.retention_hours.max(0.0) * 3600.0);
    config.rate_limit = args.rate_limit;
    config.max_jobs = args.max_jobs;
    config.max_body = args.max_body_mib << 20;
    config.max_queued = args.max_queued;
    if !(args.body_timeout_seconds.is_finite() && args.body_timeout_seconds > 0.0) {
        anyhow::bail!("--body-timeout-seconds must be more than 0");
    }
    config.body_timeout = Duration::from_secs_f64(args.body_timeout_seconds);
    config.max_seconds = args.max_seconds;
    config.max_pixels = args.max_pixels;
    config.policy = args.policy;
    config.audit_log = args.audit_log;
    config.keys = args.keys;
    let summary = format!(
        "{} worker(s), {}",
        config.workers,
        if config.api_keys.is_empty() {
            "no API keys (anyone who can connect may use it)".to_string()
        } else {
            format!("{} API key(s)", config.api_keys.len())
        }
    );
    tessera_server::serve(config, &args.addr, |addr| {
        // One line a script can wait for and parse.
        eprintln!("tessera serve: listening on http://{addr} ({summary})");
    })
}
