//! The routes beside the videos: models, the studio page, the OpenAPI document, health
//! and metrics.
use super::*;

/// GET /v1/models
pub(super) async fn models(AxState(state): AxState<S>) -> Json<Value> {
    let data: Vec<Value> = state
        .models
        .iter()
        .map(|m| json!({"id": m.name, "object": "model", "created": m.created, "owned_by": "tessera"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

pub(super) async fn studio() -> Html<&'static str> {
    Html(include_str!("../studio.html"))
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("../openapi.json")).into_response()
}

pub(super) async fn healthz(AxState(state): AxState<S>) -> Response {
    match blocking(move || Ok(state.db.counts()?)).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database unavailable: {}\n", e.message)).into_response(),
    }
}

/// Prometheus text format (https://prometheus.io/docs/instrumenting/exposition_formats/).
pub(super) async fn metrics(AxState(state): AxState<S>) -> ApiResult<Response> {
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
