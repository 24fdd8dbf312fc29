//! Request logs and request ids (tower-http and tracing). Every request gets an id (the
//! client's `x-request-id` when it sends a sane one, else a new one), echoed in the
//! response's `x-request-id` header and in every error body (`error.request_id`), and one
//! log line when it is answered: method, path, status, latency, request id and the API
//! key's id. `tessera serve --log-json` writes those lines as JSON.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use serde_json::Value;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

/// New request ids: `req_` and 24 hex digits, as the video ids are made.
#[derive(Clone, Copy, Default)]
pub struct NewId;

impl MakeRequestId for NewId {
    fn make_request_id<B>(&mut self, _req: &axum::http::Request<B>) -> Option<RequestId> {
        let id = format!("req_{:024x}", rand::random::<u128>() >> 32);
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// A client's own id is kept when it is short and plain (it is logged and echoed).
fn sane(id: &HeaderValue) -> bool {
    let b = id.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
}

/// The layers, outermost first: the id is set, the request's span opened (the key's id is
/// recorded into it by authentication), the id echoed, error bodies given the id.
pub fn layers() -> impl tower::Layer<
    axum::routing::Route,
    Service = impl tower::Service<Request, Response = Response, Error = std::convert::Infallible, Future = impl Send>
                  + Clone
                  + Send
                  + Sync
                  + 'static,
> + Clone
       + Send
       + Sync
       + 'static {
    ServiceBuilder::new()
        .layer(middleware::from_fn(drop_insane_ids))
        .layer(SetRequestIdLayer::x_request_id(NewId))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %id,
                        key_id = tracing::field::Empty,
                    )
                })
                .on_request(())
                .on_response(|res: &Response, latency: Duration, _span: &Span| {
                    tracing::info!(
                        status = res.status().as_u16(),
                        latency_ms = (latency.as_secs_f64() * 1e6).round() / 1e3,
                        "answered"
                    );
                })
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(middleware::from_fn(error_bodies_carry_the_id))
}

/// A client's `x-request-id` that is empty, long or not plain text is replaced by a new one.
async fn drop_insane_ids(mut req: Request, next: Next) -> Response {
    if req.headers().get("x-request-id").is_some_and(|v| !sane(v)) {
        req.headers_mut().remove("x-request-id");
    }
    next.run(req).await
}

/// Adds `request_id` to the `error` object of every JSON error body, so a user who quotes
/// an error quotes the id that finds its log line.
async fn error_bodies_carry_the_id(req: Request, next: Next) -> Response {
    let id = req.extensions().get::<RequestId>().and_then(|r| r.header_value().to_str().ok()).map(String::from);
    let res = next.run(req).await;
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Some(id) = id.filter(|_| (res.status().is_client_error() || res.status().is_server_error()) && is_json) else {
        return res;
    };
    let (mut parts, body) = res.into_parts();
    // Error bodies are a few hundred bytes; anything larger is passed on as it is.
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut v) if v.get("error").is_some_and(Value::is_object) => {
            v["error"]["request_id"] = Value::String(id);
            parts.headers.remove(header::CONTENT_LENGTH);
            Body::from(v.to_string())
        }
        _ => Body::from(bytes),
    };
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_ids_are_kept() {
        for ok in ["abc", "req_0123", "a-b_c.d:e"] {
            assert!(sane(&HeaderValue::from_static(ok)), "{ok}");
        }
        let long = "x".repeat(129);
        for bad in ["", "a b", "a\"b", long.as_str()] {
            assert!(!sane(&HeaderValue::from_str(bad).unwrap()), "{bad}");
        }
        let id = NewId.make_request_id(&axum::http::Request::new(())).unwrap();
        let id = id.header_value().to_str().unwrap();
        assert!(id.starts_with("req_") && id.len() == 28, "{id}");
    }
}
