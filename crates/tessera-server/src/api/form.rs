//! Request bodies: JSON or multipart, read into one [`Form`]; uploads checked and decoded.
use super::*;

// ---------------------------------------------------------------------------------------
// Request bodies: JSON or multipart, read into one shape

#[derive(Default)]
pub(super) struct Form {
    pub(super) values: Map<String, Value>,
    pub(super) files: HashMap<String, Vec<u8>>,
}

impl Form {
    /// The request's body, which must arrive whole within `deadline` (the server's
    /// `body_timeout`): a client that trickles it in is cut off with a 408.
    pub(super) async fn read(req: Request, deadline: std::time::Duration) -> ApiResult<Form> {
        match tokio::time::timeout(deadline, Self::read_body(req)).await {
            Ok(form) => form,
            Err(_) => Err(ApiError::invalid(
                None,
                format!("the request's body did not arrive within {} s", deadline.as_secs_f64()),
            )
            .with_status(StatusCode::REQUEST_TIMEOUT)),
        }
    }

    async fn read_body(req: Request) -> ApiResult<Form> {
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

    pub(super) fn string(&self, name: &'static str) -> ApiResult<Option<String>> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::invalid(name, format!("`{name}` must be a string"))),
        }
    }

    /// A number, given as a JSON number or a string (multipart fields are strings, and
    /// OpenAI sends `seconds` as "4").
    pub(super) fn number(&self, name: &'static str) -> ApiResult<Option<f64>> {
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
    pub(super) fn boolean(&self, name: &'static str) -> ApiResult<Option<bool>> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.trim() == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s.trim() == "false" => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid(name, format!("`{name}` must be true or false"))),
        }
    }

    pub(super) fn integer(&self, name: &'static str) -> ApiResult<Option<u64>> {
        match self.number(name)? {
            None => Ok(None),
            Some(x) if x >= 0.0 && x.fract() == 0.0 && x <= u64::MAX as f64 => Ok(Some(x as u64)),
            Some(_) => Err(ApiError::invalid(name, format!("`{name}` must be a whole number >= 0"))),
        }
    }
}

/// An upload decoded: the extension to store it under, its frames and frame rate.
pub(super) struct Upload {
    pub(super) ext: &'static str,
    pub(super) frames: Vec<tessera_media::Frame>,
    pub(super) fps: f64,
}

/// Checks that uploaded bytes are an image (or a video for `video`) tessera can read.
pub(super) fn check_media(bytes: &[u8], param: &'static str, video: bool) -> ApiResult<Upload> {
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
pub(super) fn input_reference(form: &Form) -> ApiResult<Option<Vec<u8>>> {
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
pub(super) fn base64_decode(s: &str) -> Option<Vec<u8>> {
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
