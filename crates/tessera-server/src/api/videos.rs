//! The video routes: create, list, retrieve, delete, content (with byte ranges), remix
//! and extend.
use super::*;

// ---------------------------------------------------------------------------------------
// Handlers

/// POST /v1/videos
pub(super) async fn create(
    AxState(state): AxState<S>,
    Extension(Owner(owner)): Extension<Owner>,
    req: Request,
) -> ApiResult<Json<Value>> {
    let form = Form::read(req, state.config.body_timeout).await?;
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
pub(super) struct ListQuery {
    pub(super) after: Option<String>,
    pub(super) limit: Option<String>,
    pub(super) order: Option<String>,
}

/// GET /v1/videos
pub(super) async fn list(
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
pub(super) async fn retrieve(
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
pub(super) async fn delete(
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
pub(super) struct ContentQuery {
    pub(super) variant: Option<String>,
}

/// GET /v1/videos/{id}/content?variant=video|thumbnail|spritesheet
pub(super) async fn content(
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
pub(super) fn byte_range(header: &str, n: usize) -> Option<(usize, usize)> {
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
pub(super) async fn remix(
    AxState(state): AxState<S>,
    Extension(Owner(owner)): Extension<Owner>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Json<Value>> {
    let form = Form::read(req, state.config.body_timeout).await?;
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
pub(super) async fn extend(
    AxState(state): AxState<S>,
    Extension(Owner(owner)): Extension<Owner>,
    req: Request,
) -> ApiResult<Json<Value>> {
    let form = Form::read(req, state.config.body_timeout).await?;
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
