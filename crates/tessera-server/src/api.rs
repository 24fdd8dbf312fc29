//! The HTTP API: OpenAI's Videos API (https://platform.openai.com/docs/api-reference/videos)
//! plus /v1/models, /openapi.json, /healthz, /metrics and the studio page at `/`.
//!
//! Requests are validated in full before anything is written; a job's row is committed
//! before the reply, so an accepted job survives any crash after it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};

use crate::db::{self, now_ms, Order, Video};
use crate::error::{ApiError, ApiResult};
use crate::jobs::Job;
use crate::{Model, State};
use tessera_service::{Direction, GenerationRequest, Invalid, Limits, Size, Task};

type S = Arc<State>;

/// The router: `app(state)` is the whole service, with or without a socket.
pub fn app(state: S) -> Router {
    let v1 = Router::new()
        .route("/v1/videos", post(create).get(list))
        .route("/v1/videos/extensions", post(extend))
        .route("/v1/videos/{id}", get(retrieve).delete(delete))
        .route("/v1/videos/{id}/content", get(content))
        .route("/v1/videos/{id}/remix", post(remix))
        .route("/v1/models", get(models))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .merge(v1)
        .route("/", get(studio))
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(state.config.max_body))
        .layer(crate::logging::layers())
        .with_state(state)
}

/// Who is asking: the key's id, or "" on a server without keys.
#[derive(Clone)]
struct Owner(String);

/// `Authorization: Bearer KEY` when keys are configured, then the key's rate limit.
async fn authenticate(AxState(state): AxState<S>, mut req: Request, next: Next) -> Response {
    let owner = if state.keys.is_empty() {
        String::new()
    } else {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim);
        let Some(given) = given else {
            return ApiError::unauthorized("missing API key: send `Authorization: Bearer KEY`").into_response();
        };
        // Compare every key in full, so timing says nothing about which prefix matched.
        let found = state.keys.iter().fold(None, |found, (id, key)| {
            if constant_eq(key.as_bytes(), given.as_bytes()) {
                Some(id.clone())
            } else {
                found
            }
        });
        match found {
            Some(id) => id,
            None => return ApiError::unauthorized("incorrect API key").into_response(),
        }
    };
    // The request's log line names the key (its id, never the key).
    tracing::Span::current().record("key_id", owner.as_str());
    if let Err(e) = rate_limit(&state, &owner) {
        return e.into_response();
    }
    req.extensions_mut().insert(Owner(owner));
    next.run(req).await
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A sliding window of one minute per key (per process: N servers allow N times this).
/// Without keys there is no one to limit.
fn rate_limit(state: &State, owner: &str) -> ApiResult<()> {
    let limit = state.config.rate_limit as usize;
    if limit == 0 || state.keys.is_empty() {
        return Ok(());
    }
    let now = Instant::now();
    let mut map = state.limiter.lock().unwrap_or_else(|e| e.into_inner());
    let times = map.entry(owner.to_string()).or_default();
    while times.front().is_some_and(|t| now.duration_since(*t).as_secs() >= 60) {
        times.pop_front();
    }
    if times.len() >= limit {
        return Err(ApiError::rate_limited(format!(
            "rate limit reached: {limit} requests per minute; try again shortly"
        )));
    }
    times.push_back(now);
    Ok(())
}

/// Runs blocking database or storage work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?
}

// ---------------------------------------------------------------------------------------
// The video object

fn video_json(v: &Video) -> Value {
    let error = match (&v.error_code, &v.error_message) {
        (Some(code), Some(message)) => json!({"code": code, "message": message}),
        _ => Value::Null,
    };
    json!({
        "id": v.id,
        "object": "video",
        "model": v.model,
        "status": v.status,
        "progress": v.progress,
        "created_at": v.created_at,
        "completed_at": v.completed_at,
        "expires_at": v.expires_at,
        "error": error,
        "remixed_from_video_id": v.remixed_from_video_id,
        "seconds": v.seconds,
        "size": v.size,
        "prompt": v.prompt,
        "warnings": Job::parse(&v.request).map(|j| j.warnings).unwrap_or_default(),
    })
}

/// The caller's video, or 404 (other keys' videos do not exist for this caller).
fn owned(state: &State, owner: &str, id: &str) -> ApiResult<Video> {
    db::check_id(id).map_err(|_| ApiError::not_found("video"))?;
    match state.db.get(id)? {
        Some(v) if v.owner == owner => Ok(v),
        _ => Err(ApiError::not_found(&format!("video {id}"))),
    }
}

// ---------------------------------------------------------------------------------------
// Request bodies: JSON or multipart, read into one shape

#[derive(Default)]
struct Form {
    values: Map<String, Value>,
    files: HashMap<String, Vec<u8>>,
}

impl Form {
    async fn read(req: Request) -> ApiResult<Form> {
        let ctype =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        if ctype.starts_with("multipart/form-data") {
            let mut mp = Multipart::from_request(req, &())
                .await
                .map_err(|e| ApiError::invalid(None, format!("bad multipart body: {e}")).with_status(e.status()))?;
            let mut form = Form::default();
            while let Some(field) = mp
                .next_field()
                .await
                .map_err(|e| ApiError::invalid(None, format!("bad multipart body: {e}")).with_status(e.status()))?
            {
                let name = field.name().unwrap_or("").to_string();
                let is_file = field.file_name().is_some();
                let bytes = field.bytes().await.map_err(|e| {
                    ApiError::invalid(None, format!("bad multipart field {name:?}: {e}")).with_status(e.status())
                })?;
                if is_file {
                    form.files.insert(name, bytes.to_vec());
                } else {
                    let text = String::from_utf8(bytes.to_vec())
                        .map_err(|_| ApiError::invalid(None, format!("field {name:?} is not UTF-8 text")))?;
                    form.values.insert(name, Value::String(text));
                }
            }
            Ok(form)
        } else {
            let bytes = Bytes::from_request(req, &())
                .await
                .map_err(|e| ApiError::invalid(None, format!("cannot read the body: {e}")).with_status(e.status()))?;
            if bytes.is_empty() {
                return Ok(Form::default());
            }
            match serde_json::from_slice(&bytes) {
                Ok(Value::Object(values)) => Ok(Form { values, files: HashMap::new() }),
                Ok(_) => Err(ApiError::invalid(None, "the body must be a JSON object")),
                Err(e) => Err(ApiError::invalid(None, format!("the body is not valid JSON: {e}"))),
            }
        }
    }

    fn string(&self, name: &'static str) -> ApiResult<Option<String>> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::invalid(name, format!("`{name}` must be a string"))),
        }
    }

    /// A number, given as a JSON number or a string (multipart fields are strings, and
    /// OpenAI sends `seconds` as "4").
    fn number(&self, name: &'static str) -> ApiResult<Option<f64>> {
        let bad = || ApiError::invalid(name, format!("`{name}` must be a number"));
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_f64().map(Some).ok_or_else(bad),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()).map(Some).ok_or_else(bad),
            Some(_) => Err(bad()),
        }
    }

    /// A flag, given as a JSON boolean or the strings true/false (multipart).
    fn boolean(&self, name: &'static str) -> ApiResult<Option<bool>> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.trim() == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s.trim() == "false" => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid(name, format!("`{name}` must be true or false"))),
        }
    }

    fn integer(&self, name: &'static str) -> ApiResult<Option<u64>> {
        match self.number(name)? {
            None => Ok(None),
            Some(x) if x >= 0.0 && x.fract() == 0.0 && x <= u64::MAX as f64 => Ok(Some(x as u64)),
            Some(_) => Err(ApiError::invalid(name, format!("`{name}` must be a whole number >= 0"))),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Validation shared by create, remix and extend

/// The model a request names (or the default) and the request's settings every kind of
/// job shares; the handler adds its task, size and length.
struct Common {
    model: Arc<Model>,
    request: GenerationRequest,
}

fn common(state: &State, form: &Form, model_name: Option<&str>) -> ApiResult<Common> {
    let model = match model_name {
        None => state.models.default_model().clone(),
        Some(name) => state.models.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = state.models.iter().map(|m| m.name.as_str()).collect();
            ApiError::invalid("model", format!("unknown model {name:?}; this server runs {}", known.join(", ")))
                .with_code("model_not_found")
        })?,
    };
    let request = GenerationRequest {
        prompt: form.string("prompt")?.unwrap_or_default(),
        negative_prompt: form.string("negative_prompt")?.unwrap_or_default(),
        seed: form.integer("seed")?.unwrap_or_else(|| rand::random::<u32>() as u64),
        steps: Some(match form.integer("steps")? {
            None => model.defaults.steps.unwrap_or(50),
            Some(s) => s.try_into().unwrap_or(usize::MAX),
        }),
        guidance: form.number("guidance")?.unwrap_or(5.0),
        fps: Some(model.defaults.fps.unwrap_or(16.0)),
        strict_prompt: form.boolean("strict_prompt")?.unwrap_or(false),
        ..Default::default()
    };
    Ok(Common { model, request })
}

/// The request as the job stores it, once the content policy, the limits and the prompt's
/// expansion accept it (the same checks, in the same order and words, as `tessera
/// generate`'s: tessera_service).
fn accept(state: &State, owner: &str, model: &Model, request: GenerationRequest) -> ApiResult<Job> {
    let who = if owner.is_empty() { "server" } else { owner };
    if let Err(refused) = tessera_service::moderate(&request, &state.policy, Some(&state.audit_log()), who) {
        return Err(ApiError::invalid("prompt", refused.to_string()).with_code("moderation_blocked"));
    }
    let limits = Limits {
        max_seconds: Some(state.config.max_seconds),
        max_pixels: Some(state.config.max_pixels),
        ..Default::default()
    };
    let plan = tessera_service::plan(&request, &model.defaults, &limits).map_err(invalid)?;
    Ok(Job { request, warnings: plan.warnings })
}

fn invalid(e: Invalid) -> ApiError {
    ApiError::invalid(e.param, e.message)
}

/// `seconds`, or the default; its range is the request's check ([`accept`]).
fn seconds(form: &Form, default: Option<f64>) -> ApiResult<(f64, String)> {
    let s = match (form.number("seconds")?, default) {
        (Some(s), _) => s,
        (None, Some(d)) => d,
        (None, None) => return Err(ApiError::invalid("seconds", "`seconds` is required")),
    };
    Ok((s, format_seconds(s)))
}

fn format_seconds(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

fn size(model: &Model, given: Option<String>) -> ApiResult<(usize, usize)> {
    let Some(given) = given else {
        return Ok(model.defaults.size.unwrap_or((832, 480)));
    };
    let Size { width: w, height: h } = Size::parse(&given).map_err(invalid)?;
    let m = model.pipeline.size_multiple();
    if w < m || h < m || w % m != 0 || h % m != 0 {
        return Err(ApiError::invalid(
            "size",
            format!("model {} makes sizes whose sides are multiples of {m}; {w}x{h} is not", model.name),
        ));
    }
    Ok((w, h))
}

/// An upload decoded: the extension to store it under, its frames and frame rate.
struct Upload {
    ext: &'static str,
    frames: Vec<tessera_media::Frame>,
    fps: f64,
}

/// Checks that uploaded bytes are an image (or a video for `video`) tessera can read.
fn check_media(bytes: &[u8], param: &'static str, video: bool) -> ApiResult<Upload> {
    let ext = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "png"
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "jpg"
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        "gif"
    } else if video && bytes.len() > 12 && &bytes[4..8] == b"ftyp" {
        "mp4"
    } else {
        let what = if video { "an MP4, GIF, PNG or JPEG" } else { "a PNG, JPEG or GIF image" };
        return Err(ApiError::invalid(param, format!("`{param}` is not {what}")));
    };
    // Decode it now (a corrupt file is the caller's error, not a failed job later).
    match tessera_media::decode_video(std::path::Path::new(&format!("{param}.{ext}")), bytes) {
        Ok((frames, fps)) if !frames.is_empty() => Ok(Upload { ext, frames, fps }),
        Ok(_) => Err(ApiError::invalid(param, format!("`{param}` has no frames"))),
        Err(e) => Err(ApiError::invalid(param, format!("`{param}` cannot be read: {e}"))),
    }
}

/// `input_reference` as a file, or OpenAI's `{"image_url": "data:..."}` form.
fn input_reference(form: &Form) -> ApiResult<Option<Vec<u8>>> {
    if let Some(b) = form.files.get("input_reference") {
        return Ok(Some(b.clone()));
    }
    let url = match form.values.get("input_reference") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => {
            if o.contains_key("file_id") {
                return Err(ApiError::invalid("input_reference", "`input_reference.file_id` is not supported: upload the image, or send it as a data URL in `image_url`"));
            }
            o.get("image_url").and_then(|u| u.as_str()).unwrap_or("").to_string()
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(ApiError::invalid(
                "input_reference",
                "`input_reference` must be a file or {\"image_url\": \"data:...\"}",
            ))
        }
    };
    // The server never fetches URLs it is given (no requests to arbitrary hosts).
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(ApiError::invalid("input_reference", "`input_reference.image_url` must be a base64 data URL (data:image/png;base64,...); this server does not fetch URLs"));
    };
    let b64 = rest
        .split_once(";base64,")
        .map(|(_, d)| d)
        .ok_or_else(|| ApiError::invalid("input_reference", "the data URL is not base64"))?;
    base64_decode(b64)
        .map(Some)
        .ok_or_else(|| ApiError::invalid("input_reference", "the data URL's base64 is malformed"))
}

/// Standard base64 (RFC 4648 §4), padding optional, whitespace ignored.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => continue,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Creation time in ms, strictly increasing within this process: two requests accepted in
/// the same millisecond still list in the order they were accepted.
fn creation_ms() -> i64 {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = now_ms();
    let prev = LAST.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(now.max(last + 1))).unwrap_or(0);
    now.max(prev + 1)
}

fn new_row(
    id: &str,
    owner: &str,
    model: &Model,
    job: &Job,
    seconds: String,
    size: (usize, usize),
    remixed_from: Option<String>,
) -> ApiResult<Video> {
    let mut row = Video::queued(
        id,
        owner,
        &model.name,
        &job.request.prompt,
        job.to_json(),
        seconds,
        format!("{}x{}", size.0, size.1),
        creation_ms(),
    );
    row.remixed_from_video_id = remixed_from;
    Ok(row)
}

/// Queued plus running jobs per API key (without keys, the queue simply grows).
fn check_quota(state: &State, owner: &str) -> ApiResult<()> {
    if state.keys.is_empty() {
        return Ok(());
    }
    let active = state.db.active(owner)?;
    if active >= state.config.max_jobs {
        return Err(ApiError::rate_limited(format!(
            "{active} jobs are queued or running for this key (the limit is {}); wait for one to finish",
            state.config.max_jobs
        ))
        .with_code("concurrent_jobs_limit"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Handlers

/// POST /v1/videos
async fn create(
    AxState(state): AxState<S>,
    Extension(Owner(owner)): Extension<Owner>,
    req: Request,
) -> ApiResult<Json<Value>> {
    let form = Form::read(req).await?;
    blocking(move || {
        let c = common(&state, &form, form.string("model")?.as_deref())?;
        let (secs, seconds_text) = seconds(&form, Some(4.0))?;
        let (w, h) = size(&c.model, form.string("size")?)?;
        let image = input_reference(&form)?;
        let id = db::new_id();
        let reference = image
            .as_deref()
            .map(|b| check_media(b, "input_reference", false).map(|u| format!("inputs/{id}/reference.{}", u.ext)))
            .transpose()?;
        let request = GenerationRequest {
            size: Some(Size { width: w, height: h }),
            seconds: Some(secs),
            task: Task::Generate { image: reference.clone(), last_image: None, keyframes: vec![] },
            ..c.request
        };
        let job = accept(&state, &owner, &c.model, request)?;
        check_quota(&state, &owner)?;
        // Inputs go to storage first: any server's worker reads them from there.
        if let (Some(key), Some(bytes)) = (&reference, &image) {
            state.storage.put(key, bytes, "application/octet-stream")?;
        }
        let row = new_row(&id, &owner, &c.model, &job, seconds_text, (w, h), None)?;
        state.db.insert(&row)?;
        Ok(Json(video_json(&row)))
    })
    .await
}

#[derive(serde::Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: Option<String>,
    order: Option<String>,
}

/// GET /v1/videos
async fn list(
    AxState(state): AxState<S>,
    Extension(Owner(owner)): Extension<Owner>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::invalid(None, format!("bad query: {e}")))?;
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => 20,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => return Err(ApiError::invalid("limit", "`limit` must be between 1 and 100")),
    };
    let order = match q.order.as_deref() {
        None | Some("desc") => Order::Desc,
        Some("asc") => Order::Asc,
        Some(o) => return Err(ApiError::invalid("order", format!("`order` must be asc or desc, got {o:?}"))),
    };
    blocking(move || {
        if let Some(after) = &q.after {
            owned(&state, &owner, after)
                .map_err(|_| ApiError::invalid("after", format!("`after` {after:?} is not one of your videos")))?;
        }
        let (rows, more) = state.db.list(&owner, q.after.as_deref(), limit, order)?;
        Ok(Json(json!({
            "object": "list",
            "data": rows.iter().map(video_json).collect::<Vec<_>>(),
            "first_id": rows.first().map(|v| v.id.clone()),
            "last_id": rows.last().map(|v| v.id.clone()),
            "has_more": more,
        })))
    })
    .await
}

/// GET /v1/videos/{id}
async fn retrieve(
    AxState(state): AxState<S>,
    Extension(Owner(owner)): Extension<Owner>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    blocking(move || {
        let v = owned(&state, &owner, &id)?;
        let mut resp = Json(video_json(&v)).into_response();
        if v.status == "queued" || v.status == "in_progress" {
            // The SDK's poll() waits this long between retrievals.
            resp.headers_mut().insert("openai-poll-after-ms", "1000".parse().expect("header value"));
        }
        Ok(resp)
    })
    .await
}

/// DELETE /v1/videos/{id}: the row, then the files (a running job notices at its next
/// lease renewal and stops).
async fn delete(
    AxState(state): AxState<S>,
    Extension(Owner(owner)): Extension<Owner>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let v = owned(&state, &owner, &id)?;
        state.db.delete(&v.id)?;
        if let Some(prefix) = &v.output {
            state.storage.delete_output(prefix)?;
        }
        if let Ok(job) = Job::parse(&v.request) {
            // Its own uploads only (a remix's source belongs to the source video).
            for (_, key) in job.request.task.inputs() {
                if key.starts_with(&format!("inputs/{}/", v.id)) {
                    state.storage.delete(key)?;
                }
            }
        }
        Ok(Json(json!({"id": v.id, "object": "video.deleted", "deleted": true})))
    })
    .await
}

#[derive(serde::Deserialize)]
struct ContentQuery {
    variant: Option<String>,
}

/// GET /v1/videos/{id}/content?variant=video|thumbnail|spritesheet
async fn content(
    AxState(state): AxState<S>,
    Extension(Owner(owner)): Extension<Owner>,
    Path(id): Path<String>,
    req_headers: HeaderMap,
    q: Result<Query<ContentQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let range = req_headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(String::from);
    let Query(q) = q.map_err(|e| ApiError::invalid(None, format!("bad query: {e}")))?;
    let (file, ctype) = match q.variant.as_deref() {
        None | Some("video") => (crate::storage::VIDEO, "video/mp4"),
        Some("thumbnail") => (crate::storage::THUMBNAIL, "image/png"),
        Some("spritesheet") => (crate::storage::SPRITESHEET, "image/png"),
        Some(v) => {
            return Err(ApiError::invalid(
                "variant",
                format!("`variant` must be video, thumbnail or spritesheet, got {v:?}"),
            ))
        }
    };
    blocking(move || {
        let v = owned(&state, &owner, &id)?;
        if v.status != "completed" {
            return Err(ApiError::invalid(None, format!("video {id} is {}, not completed", v.status))
                .with_code("video_not_ready"));
        }
        let expired = v.expires_at.is_some_and(|t| t <= now_ms() / 1000);
        let Some(prefix) = v.output.as_ref().filter(|_| !expired) else {
            return Err(
                ApiError::not_found(&format!("the content of video {id} (it expired)")).with_code("video_expired")
            );
        };
        let bytes = state
            .storage
            .get(&format!("{prefix}/{file}"))?
            .ok_or_else(|| ApiError::not_found(&format!("the {file} of video {id}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, ctype.parse().expect("header value"));
        headers.insert(header::CACHE_CONTROL, "private, max-age=3600".parse().expect("header value"));
        headers.insert(header::ACCEPT_RANGES, "bytes".parse().expect("header value"));
        // One byte range (RFC 9110 §14), so <video src> can seek without the whole file.
        if let Some(r) = range {
            let n = bytes.len();
            return match byte_range(&r, n) {
                Some((a, b)) => {
                    headers.insert(header::CONTENT_RANGE, format!("bytes {a}-{b}/{n}").parse().expect("header value"));
                    Ok((StatusCode::PARTIAL_CONTENT, headers, bytes[a..=b].to_vec()).into_response())
                }
                None => {
                    headers.insert(header::CONTENT_RANGE, format!("bytes */{n}").parse().expect("header value"));
                    Ok((StatusCode::RANGE_NOT_SATISFIABLE, headers).into_response())
                }
            };
        }
        Ok((headers, bytes).into_response())
    })
    .await
}

/// `bytes=A-B`, `bytes=A-` or `bytes=-N` of a body of `n` bytes, as inclusive indices.
fn byte_range(header: &str, n: usize) -> Option<(usize, usize)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || n == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let suffix: usize = b.parse().ok()?;
        if suffix == 0 {
            return None;
        }
        (n.saturating_sub(suffix), n - 1)
    } else {
        let start: usize = a.parse().ok()?;
        let end = if b.is_empty() { n - 1 } else { b.parse::<usize>().ok()?.min(n - 1) };
        (start, end)
    };
    (start <= end && start < n).then_some((start, end))
}

/// POST /v1/videos/{id}/remix: the finished video redone from a new prompt (SDEdit), same
/// size and length. tessera extras: `strength` (default 0.7), `seed`, `steps`, `guidance`.
async fn remix(
    AxState(state): AxState<S>,
    Extension(Owner(owner)): Extension<Owner>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Json<Value>> {
    let form = Form::read(req).await?;
    blocking(move || {
        let src = owned(&state, &owner, &id)?;
        if src.status != "completed" || src.output.is_none() {
            return Err(ApiError::invalid(
                None,
                format!("video {id} is {}: only completed videos can be remixed", src.status),
            )
            .with_code("video_not_ready"));
        }
        let c = common(&state, &form, Some(&src.model))?;
        let size =
            Size::parse(&src.size).map(|s| (s.width, s.height)).map_err(|_| ApiError::internal("stored size"))?;
        let request = GenerationRequest {
            size: Some(Size { width: size.0, height: size.1 }),
            task: Task::Edit {
                video: format!("{}/{}", src.output.as_deref().unwrap_or_default(), crate::storage::VIDEO),
                strength: form.number("strength")?.unwrap_or(tessera_service::DEFAULT_STRENGTH),
            },
            ..c.request
        };
        let job = accept(&state, &owner, &c.model, request)?;
        check_quota(&state, &owner)?;
        let new = db::new_id();
        let row = new_row(&new, &owner, &c.model, &job, src.seconds.clone(), size, Some(src.id.clone()))?;
        state.db.insert(&row)?;
        Ok(Json(video_json(&row)))
    })
    .await
}

/// POST /v1/videos/extensions: `video` (`{"id": ...}` of a completed video, or an
/// uploaded MP4/GIF), `prompt`, `seconds` (the length added). The result is the whole,
/// longer video; its `seconds` is the total.
async fn extend(
    AxState(state): AxState<S>,
    Extension(Owner(owner)): Extension<Owner>,
    req: Request,
) -> ApiResult<Json<Value>> {
    let form = Form::read(req).await?;
    blocking(move || {
        // The source: a video of the caller's, or an upload.
        let ref_id = match form.values.get("video") {
            Some(Value::Object(o)) => o.get("id").and_then(|v| v.as_str()).map(String::from),
            Some(Value::String(s)) => serde_json::from_str::<Value>(s)
                .ok()
                .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(String::from))
                .or_else(|| Some(s.clone())),
            _ => form.string("video[id]")?,
        };
        let (model_name, source, size, src_seconds, upload) = if let Some(rid) = ref_id {
            let src = owned(&state, &owner, &rid)
                .map_err(|_| ApiError::invalid("video", format!("`video.id` {rid:?} is not one of your videos")))?;
            if src.status != "completed" || src.output.is_none() {
                return Err(ApiError::invalid(
                    "video",
                    format!("video {rid} is {}: only completed videos can be extended", src.status),
                )
                .with_code("video_not_ready"));
            }
            let secs: f64 = src.seconds.parse().unwrap_or(0.0);
            (
                Some(src.model.clone()),
                Some(format!("{}/{}", src.output.as_deref().unwrap_or_default(), crate::storage::VIDEO)),
                Some(src.size.clone()),
                secs,
                None,
            )
        } else if let Some(bytes) = form.files.get("video") {
            let up = check_media(bytes, "video", true)?;
            let secs = if up.fps > 0.0 { up.frames.len() as f64 / up.fps } else { 0.0 };
            // Without `size`, the upload's own size (checked against the model below).
            let own = format!("{}x{}", up.frames[0].width, up.frames[0].height);
            (
                form.string("model")?,
                None,
                Some(form.string("size")?.unwrap_or(own)),
                secs,
                Some((bytes.clone(), up.ext)),
            )
        } else {
            return Err(ApiError::invalid(
                "video",
                "`video` is required: {\"id\": \"video_...\"} or an uploaded video",
            ));
        };
        let c = common(&state, &form, model_name.as_deref())?;
        let (secs, _) = seconds(&form, None)?;
        let (w, h) = self::size(&c.model, size)?;
        let id = db::new_id();
        let source = match (source, &upload) {
            (Some(k), _) => k,
            (None, Some((_, ext))) => format!("inputs/{id}/source.{ext}"),
            (None, None) => unreachable!("one of the two is set above"),
        };
        let request = GenerationRequest {
            size: Some(Size { width: w, height: h }),
            seconds: Some(secs),
            task: Task::Extend { video: source.clone(), direction: Direction::Forward },
            ..c.request
        };
        let job = accept(&state, &owner, &c.model, request)?;
        if src_seconds + secs > state.config.max_seconds + 1e-9 {
            return Err(ApiError::invalid(
                "seconds",
                format!(
                    "the extended video would be {:.1} s; this server's limit is {} s",
                    src_seconds + secs,
                    state.config.max_seconds
                ),
            ));
        }
        check_quota(&state, &owner)?;
        if let Some((bytes, _)) = &upload {
            state.storage.put(&source, bytes, "application/octet-stream")?;
        }
        let row = new_row(
            &id,
            &owner,
            &c.model,
            &job,
            format_seconds(((src_seconds + secs) * 100.0).round() / 100.0),
            (w, h),
            None,
        )?;
        state.db.insert(&row)?;
        Ok(Json(video_json(&row)))
    })
    .await
}

/// GET /v1/models
async fn models(AxState(state): AxState<S>) -> Json<Value> {
    let data: Vec<Value> = state
        .models
        .iter()
        .map(|m| json!({"id": m.name, "object": "model", "created": m.created, "owned_by": "tessera"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

async fn studio() -> Html<&'static str> {
    Html(include_str!("studio.html"))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("openapi.json")).into_response()
}

async fn healthz(AxState(state): AxState<S>) -> Response {
    match blocking(move || Ok(state.db.counts()?)).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database unavailable: {}\n", e.message)).into_response(),
    }
}

/// Prometheus text format (https://prometheus.io/docs/instrumenting/exposition_formats/).
async fn metrics(AxState(state): AxState<S>) -> ApiResult<Response> {
    let st = state.clone();
    let counts = blocking(move || Ok(st.db.counts()?)).await?;
    let mut by: HashMap<String, i64> = counts.into_iter().collect();
    let mut out = String::new();
    out.push_str(
        "# HELP tessera_queue_depth Jobs waiting for a worker (all servers).\n# TYPE tessera_queue_depth gauge\n",
    );
    out.push_str(&format!("tessera_queue_depth {}\n", by.get("queued").copied().unwrap_or(0)));
    out.push_str("# HELP tessera_jobs Videos by status (all servers).\n# TYPE tessera_jobs gauge\n");
    for s in ["queued", "in_progress", "completed", "failed"] {
        out.push_str(&format!("tessera_jobs{{status=\"{s}\"}} {}\n", by.remove(s).unwrap_or(0)));
    }
    let st = &state.stats;
    out.push_str(
        "# HELP tessera_step_seconds Time per denoising step in this process.\n# TYPE tessera_step_seconds summary\n",
    );
    out.push_str(&format!("tessera_step_seconds_sum {}\n", st.step_micros.load(Ordering::Relaxed) as f64 / 1e6));
    out.push_str(&format!("tessera_step_seconds_count {}\n", st.steps.load(Ordering::Relaxed)));
    out.push_str("# HELP tessera_worker_jobs_total Jobs this process's workers finished.\n# TYPE tessera_worker_jobs_total counter\n");
    out.push_str(&format!(
        "tessera_worker_jobs_total{{outcome=\"completed\"}} {}\n",
        st.completed.load(Ordering::Relaxed)
    ));
    out.push_str(&format!("tessera_worker_jobs_total{{outcome=\"failed\"}} {}\n", st.failed.load(Ordering::Relaxed)));
    out.push_str(
        "# HELP tessera_workers_busy Workers of this process running a job.\n# TYPE tessera_workers_busy gauge\n",
    );
    out.push_str(&format!("tessera_workers_busy {}\n", st.running.load(Ordering::Relaxed)));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_rfc4648_vectors() {
        for (enc, dec) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
        ] {
            assert_eq!(base64_decode(enc).unwrap(), dec.as_bytes(), "{enc}");
        }
        assert!(base64_decode("Zm9v!").is_none());
    }

    #[test]
    fn creation_times_never_repeat() {
        let t: Vec<i64> = (0..1000).map(|_| creation_ms()).collect();
        assert!(t.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(byte_range("bytes=900-", 1000), Some((900, 999)));
        assert_eq!(byte_range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(byte_range("bytes=990-2000", 1000), Some((990, 999)));
        assert_eq!(byte_range("bytes=-5000", 1000), Some((0, 999)));
        for bad in ["bytes=1000-", "bytes=5-1", "bytes=0-1,5-6", "items=0-1", "bytes=-0", "bytes=x-y"] {
            assert_eq!(byte_range(bad, 1000), None, "{bad}");
        }
    }

    #[test]
    fn seconds_are_written_as_openai_does() {
        assert_eq!(format_seconds(4.0), "4");
        assert_eq!(format_seconds(2.5), "2.5");
    }
}
