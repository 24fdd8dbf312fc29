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
use tessera_pipeline::CacheKind;
use tessera_service::{Direction, GenerationRequest, Invalid, Limits, Size, Task};

mod accept;
mod form;
mod service;
mod videos;

use accept::*;
use form::*;
use service::*;
use videos::*;

pub(super) type S = Arc<State>;

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
pub(super) struct Owner(pub(super) String);

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

pub(super) fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A sliding window of one minute per key (per process: N servers allow N times this).
/// Without keys there is no one to limit.
pub(super) fn rate_limit(state: &State, owner: &str) -> ApiResult<()> {
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
pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?
}

// ---------------------------------------------------------------------------------------
// The video object

pub(super) fn video_json(v: &Video) -> Value {
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
pub(super) fn owned(state: &State, owner: &str, id: &str) -> ApiResult<Video> {
    db::check_id(id).map_err(|_| ApiError::not_found("video"))?;
    match state.db.get(id)? {
        Some(v) if v.owner == owner => Ok(v),
        _ => Err(ApiError::not_found(&format!("video {id}"))),
    }
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
