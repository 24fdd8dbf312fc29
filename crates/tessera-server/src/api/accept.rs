//! What create, remix and extend share: the model and settings read into a
//! `GenerationRequest`, accepted by the service's checks, and the new job's row.
use super::*;

// ---------------------------------------------------------------------------------------
// Validation shared by create, remix and extend

/// The model a request names (or the default) and the request's settings every kind of
/// job shares; the handler adds its task, size and length.
pub(super) struct Common {
    pub(super) model: Arc<Model>,
    pub(super) request: GenerationRequest,
}

pub(super) fn common(state: &State, form: &Form, model_name: Option<&str>) -> ApiResult<Common> {
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
        cache: match form.string("cache")? {
            None => None,
            Some(c) => Some(CacheKind::parse(&c).ok_or_else(|| {
                ApiError::invalid("cache", format!("`cache` {c:?} is not one of {}", CacheKind::NAMES))
            })?),
        },
        cache_threshold: form.number("cache_threshold")?,
        ..Default::default()
    };
    Ok(Common { model, request })
}

/// The request as the job stores it, once the content policy, the limits and the prompt's
/// expansion accept it (the same checks, in the same order and words, as `tessera
/// generate`'s: tessera_service).
pub(super) fn accept(state: &State, owner: &str, model: &Model, request: GenerationRequest) -> ApiResult<Job> {
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

pub(super) fn invalid(e: Invalid) -> ApiError {
    ApiError::invalid(e.param, e.message)
}

/// `seconds`, or the default; its range is the request's check ([`accept`]).
pub(super) fn seconds(form: &Form, default: Option<f64>) -> ApiResult<(f64, String)> {
    let s = match (form.number("seconds")?, default) {
        (Some(s), _) => s,
        (None, Some(d)) => d,
        (None, None) => return Err(ApiError::invalid("seconds", "`seconds` is required")),
    };
    Ok((s, format_seconds(s)))
}

pub(super) fn format_seconds(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

pub(super) fn size(model: &Model, given: Option<String>) -> ApiResult<(usize, usize)> {
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

/// Creation time in ms, strictly increasing within this process: two requests accepted in
/// the same millisecond still list in the order they were accepted.
pub(super) fn creation_ms() -> i64 {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = now_ms();
    let prev = LAST.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(now.max(last + 1))).unwrap_or(0);
    now.max(prev + 1)
}

pub(super) fn new_row(
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
pub(super) fn check_quota(state: &State, owner: &str) -> ApiResult<()> {
    // The whole queue, every key and server together.
    let queued = state.db.counts()?.into_iter().find(|(s, _)| s == "queued").map_or(0, |(_, n)| n);
    if queued >= state.config.max_queued {
        return Err(ApiError::rate_limited(format!(
            "{queued} jobs are waiting for a worker (this service's limit is {}); try again later",
            state.config.max_queued
        ))
        .with_code("queue_full"));
    }
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
