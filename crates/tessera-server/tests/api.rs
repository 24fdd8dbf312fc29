//! The API in-process (axum's `app(state)`, no socket) with real workers, the real SQLite
//! queue and the built-in model at tiny settings (64x64 or 128x128, 1 s, 2 steps).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tessera_server::{app, Config, State};
use tower::ServiceExt;

struct Server {
    state: Arc<State>,
    dir: std::path::PathBuf,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(workers: usize, tweak: impl FnOnce(&mut Config)) -> Server {
        let dir = std::env::temp_dir().join(format!("tessera-api-{}", tessera_server::db::new_id()));
        let mut config = Config::new(dir.clone());
        config.poll = Duration::from_millis(50);
        tweak(&mut config);
        let state = Arc::new(State::open(config).unwrap());
        let workers = tessera_server::jobs::start(state.clone(), workers);
        Server { state, dir, workers }
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (StatusCode, Vec<u8>, String) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(k) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())).unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        self.raw(req).await
    }

    async fn raw(&self, req: Request<Body>) -> (StatusCode, Vec<u8>, String) {
        let resp = app(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let ctype =
            resp.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, bytes, ctype)
    }

    async fn json(&self, method: &str, uri: &str, body: Option<Value>, key: Option<&str>) -> (StatusCode, Value) {
        let (s, b, _) = self.call(method, uri, body, key).await;
        let v = serde_json::from_slice(&b)
            .unwrap_or_else(|_| panic!("{method} {uri}: not JSON: {}", String::from_utf8_lossy(&b)));
        (s, v)
    }

    async fn wait(&self, id: &str, key: Option<&str>) -> Value {
        let start = Instant::now();
        let mut seen_progress = Vec::new();
        loop {
            let (s, v) = self.json("GET", &format!("/v1/videos/{id}"), None, key).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            seen_progress.push(v["progress"].as_i64().unwrap());
            if v["status"] == "completed" || v["status"] == "failed" {
                assert!(seen_progress.windows(2).all(|w| w[0] <= w[1]), "progress only grows: {seen_progress:?}");
                return v;
            }
            assert!(start.elapsed() < Duration::from_secs(300), "{id} did not finish: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.state.shutdown.store(true, std::sync::atomic::Ordering::Relaxed);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn assert_error(status: StatusCode, v: &Value, want: StatusCode, param: Option<&str>) {
    assert_eq!(status, want, "{v}");
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "OpenAI error shape: {v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("code").is_some() && e.get("param").is_some(), "{v}");
    if let Some(p) = param {
        assert_eq!(e["param"], p, "{v}");
    }
}

fn frames_of(mp4: &[u8]) -> Vec<tessera_media::Frame> {
    tessera_media::decode_video(std::path::Path::new("content.mp4"), mp4).unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_poll_download_remix_extend_list_delete() {
    let s = Server::start(1, |_| {});
    let (status, v) = s
        .json("POST", "/v1/videos", Some(json!({"prompt": "a red ball bounces on a wooden floor", "seconds": "1", "size": "128x128", "steps": 2, "seed": 7})), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "video");
    assert_eq!(v["status"], "queued");
    assert_eq!(
        (v["seconds"].as_str(), v["size"].as_str(), v["model"].as_str()),
        (Some("1"), Some("128x128"), Some("tessera-world"))
    );
    let id = v["id"].as_str().unwrap().to_string();
    let done = s.wait(&id, None).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["progress"], 100);
    assert!(done["completed_at"].as_i64().unwrap() >= done["created_at"].as_i64().unwrap());
    assert!(done["expires_at"].as_i64().unwrap() > done["completed_at"].as_i64().unwrap());

    // The MP4: 1 s at the model's 12 fps is 13 frames (4k+1), 128x128, watermarked.
    // (128x128, the built-in model's smallest size: at 64x64 its textured frames leave the
    // watermark too little room, and it read back from about 11 in 12 clips: BENCHMARKS.md.)
    let (st, mp4, ctype) = s.call("GET", &format!("/v1/videos/{id}/content"), None, None).await;
    assert_eq!((st, ctype.as_str()), (StatusCode::OK, "video/mp4"));
    let frames = frames_of(&mp4);
    assert_eq!(frames.len(), 13);
    assert_eq!((frames[0].width, frames[0].height), (128, 128));
    let found = tessera_media::watermark::detect(&frames, 64);
    assert!(found.detected, "the served video carries tessera's watermark: {found:?}");
    // Byte ranges, as <video src> asks for them.
    let req = Request::builder()
        .uri(format!("/v1/videos/{id}/content"))
        .header(header::RANGE, "bytes=0-99")
        .body(Body::empty())
        .unwrap();
    let (st, part, _) = s.raw(req).await;
    assert_eq!((st, part.as_slice()), (StatusCode::PARTIAL_CONTENT, &mp4[..100]));
    let req = Request::builder()
        .uri(format!("/v1/videos/{id}/content"))
        .header(header::RANGE, format!("bytes={}-", mp4.len()))
        .body(Body::empty())
        .unwrap();
    assert_eq!(s.raw(req).await.0, StatusCode::RANGE_NOT_SATISFIABLE);
    let (st, png, ctype) = s.call("GET", &format!("/v1/videos/{id}/content?variant=thumbnail"), None, None).await;
    assert_eq!((st, ctype.as_str()), (StatusCode::OK, "image/png"));
    assert!(png.starts_with(b"\x89PNG"));
    // Both carry a C2PA manifest signed with the server's keys (DATA/keys).
    let ca = tessera_media::keys::ca_pem(&s.dir.join("keys")).expect("the server made its keys");
    for (bytes, mime) in [(&mp4, "video/mp4"), (&png, "image/png")] {
        let r = tessera_media::provenance::read(bytes, mime, Some(&ca));
        assert!(r.present && r.valid && r.trusted, "{mime}: {r:?}");
        let g = r.generation.expect("tessera's generation record");
        assert_eq!((g["task"].as_str(), g["model"].as_str()), (Some("text-to-video"), Some("tessera-world")), "{g}");
    }
    let (st, sheet, _) = s.call("GET", &format!("/v1/videos/{id}/content?variant=spritesheet"), None, None).await;
    assert_eq!(st, StatusCode::OK);
    let (sf, _) = tessera_media::decode_video(std::path::Path::new("sheet.png"), &sheet).unwrap();
    assert_eq!((sf[0].width, sf[0].height), (4 * 128, 4 * 128), "13 frames -> 13 tiles in 4 columns");
    let (st, v) = s.json("GET", &format!("/v1/videos/{id}/content?variant=poster"), None, None).await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, Some("variant"));

    // Remix: same size and length, a new prompt, linked to its source.
    let (st, r) = s
        .json(
            "POST",
            &format!("/v1/videos/{id}/remix"),
            Some(json!({"prompt": "a blue ball bounces on a wooden floor", "steps": 2})),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["remixed_from_video_id"], id.as_str());
    let rid = r["id"].as_str().unwrap().to_string();
    // Extension of the finished video by 1 s: the result is the whole 2 s.
    let (st, e) = s
        .json(
            "POST",
            "/v1/videos/extensions",
            Some(json!({"prompt": "the ball rolls away", "seconds": "1", "video": {"id": id}, "steps": 2})),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{e}");
    assert_eq!(e["seconds"], "2");
    let eid = e["id"].as_str().unwrap().to_string();
    let r = s.wait(&rid, None).await;
    assert_eq!(r["status"], "completed", "{r}");
    let (_, rmp4, _) = s.call("GET", &format!("/v1/videos/{rid}/content"), None, None).await;
    assert_eq!(frames_of(&rmp4).len(), 13);
    let e = s.wait(&eid, None).await;
    assert_eq!(e["status"], "completed", "{e}");
    let (_, emp4, _) = s.call("GET", &format!("/v1/videos/{eid}/content"), None, None).await;
    let ext = frames_of(&emp4);
    assert_eq!(ext.len(), 13 + 12, "the source's 13 frames, then 12 new ones");

    // Lists: newest first, pages with `after`.
    let (_, l) = s.json("GET", "/v1/videos?limit=2", None, None).await;
    assert_eq!(l["object"], "list");
    let ids: Vec<&str> = l["data"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![eid.as_str(), rid.as_str()]);
    assert_eq!(l["has_more"], true);
    let (_, l2) = s.json("GET", &format!("/v1/videos?limit=2&after={rid}"), None, None).await;
    assert_eq!(l2["data"][0]["id"], id.as_str());
    assert_eq!(l2["has_more"], false);
    let (_, asc) = s.json("GET", "/v1/videos?order=asc", None, None).await;
    assert_eq!(asc["first_id"], id.as_str());

    // Delete: gone from the API and from storage.
    let (st, d) = s.json("DELETE", &format!("/v1/videos/{id}"), None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(d, json!({"id": id, "object": "video.deleted", "deleted": true}));
    let (st, v) = s.json("GET", &format!("/v1/videos/{id}"), None, None).await;
    assert_error(st, &v, StatusCode::NOT_FOUND, None);
    let files = s.dir.join("files/videos").join(&id);
    assert!(!files.exists(), "{} should be gone", files.display());
    // No half-written or temporary files anywhere in storage.
    let mut stack = vec![s.dir.join("files")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                assert!(!p.to_string_lossy().contains(".partial"), "{}", p.display());
            }
        }
    }
    let (st, m, _) = s.call("GET", "/metrics", None, None).await;
    assert_eq!(st, StatusCode::OK);
    let m = String::from_utf8(m).unwrap();
    assert!(m.contains("tessera_jobs{status=\"completed\"} 2"), "{m}");
    assert!(m.contains("tessera_queue_depth 0"), "{m}");
    assert!(m.contains("tessera_worker_jobs_total{outcome=\"completed\"} 3"), "{m}");
    assert!(m.lines().any(|l| l.starts_with("tessera_step_seconds_count ") && !l.ends_with(" 0")), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_to_video_keeps_the_image_as_first_frame() {
    let s = Server::start(1, |_| {});
    // A smooth test card (H.264's 4:2:0 chroma would blur a sharp colour edge).
    let mut frame = tessera_media::Frame { width: 64, height: 64, data: vec![0; 64 * 64 * 3] };
    for y in 0..64 {
        for x in 0..64 {
            let i = (y * 64 + x) * 3;
            frame.data[i..i + 3].copy_from_slice(&[(x * 3 + 40) as u8, (y * 3 + 40) as u8, 128]);
        }
    }
    let png = tessera_media::encode_video(std::path::Path::new("card.png"), &[frame.clone()], 1.0, &Default::default())
        .unwrap();
    // Multipart, as the OpenAI SDK sends it.
    let boundary = "XyZtesseraBoundary";
    let mut body = Vec::new();
    for (name, value) in
        [("prompt", "a red ball bounces on a wooden floor"), ("seconds", "1"), ("size", "64x64"), ("steps", "2")]
    {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"input_reference\"; filename=\"card.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes());
    body.extend_from_slice(&png);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let req = Request::builder()
        .method("POST")
        .uri("/v1/videos")
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
        .body(Body::from(body))
        .unwrap();
    let (st, b, _) = s.raw(req).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(st, StatusCode::OK, "{v}");
    let id = v["id"].as_str().unwrap();
    let done = s.wait(id, None).await;
    assert_eq!(done["status"], "completed", "{done}");
    let (_, mp4, _) = s.call("GET", &format!("/v1/videos/{id}/content"), None, None).await;
    let first = &frames_of(&mp4)[0];
    let mse: f64 = first.data.iter().zip(&frame.data).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>()
        / frame.data.len() as f64;
    let psnr = 10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10();
    assert!(psnr >= 30.0, "the first frame is the input image: PSNR {psnr:.1} dB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_400s() {
    let audit = std::env::temp_dir().join(format!("tessera-audit-{}.jsonl", tessera_server::db::new_id()));
    let a2 = audit.clone();
    let s = Server::start(0, move |c| {
        c.audit_log = Some(a2);
        c.max_body = 1 << 20;
    });
    let ok = json!({"prompt": "a red ball", "seconds": "1", "size": "64x64"});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({"seconds": "1"}), "prompt"),
        (with("prompt", json!("   ")), "prompt"),
        (with("size", json!("65x64")), "size"),
        (with("size", json!("big")), "size"),
        (with("size", json!("4096x4096")), "size"),
        (with("seconds", json!("0")), "seconds"),
        (with("seconds", json!("999")), "seconds"),
        (with("seconds", json!("four")), "seconds"),
        (with("model", json!("sora-9")), "model"),
        (with("steps", json!(0)), "steps"),
        (with("steps", json!(2.5)), "steps"),
        (with("guidance", json!(-1)), "guidance"),
        (with("seed", json!(-3)), "seed"),
        (with("input_reference", json!({"image_url": "data:image/png;base64,aGVsbG8="})), "input_reference"),
        (with("input_reference", json!({"image_url": "https://example.com/cat.png"})), "input_reference"),
        (with("input_reference", json!({"file_id": "file_123"})), "input_reference"),
    ];
    for (body, param) in cases {
        let (st, v) = s.json("POST", "/v1/videos", Some(body.clone()), None).await;
        assert_error(st, &v, StatusCode::BAD_REQUEST, Some(param));
    }
    // Not JSON at all; a JSON array.
    for raw in ["{not json", "[1, 2]"] {
        let req = Request::builder()
            .method("POST")
            .uri("/v1/videos")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(raw))
            .unwrap();
        let (st, b, _) = s.raw(req).await;
        assert_error(st, &serde_json::from_slice(&b).unwrap(), StatusCode::BAD_REQUEST, None);
    }
    // Over the body limit.
    let big = json!({"prompt": "x".repeat(2 << 20)});
    let (st, _, _) = s.call("POST", "/v1/videos", Some(big), None).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    // Moderation: a 400 with OpenAI's code, and an audit entry.
    let (st, v) = s.json("POST", "/v1/videos", Some(with("prompt", json!("a gory massacre"))), None).await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, Some("prompt"));
    assert_eq!(v["error"]["code"], "moderation_blocked", "{v}");
    let log = std::fs::read_to_string(&audit).unwrap();
    assert_eq!(log.lines().count(), 1);
    assert!(log.contains("\"who\":\"server\""), "{log}");
    let _ = std::fs::remove_file(&audit);
    // Ids never reach the database or the disk unchecked.
    for uri in [
        "/v1/videos/..%2F..%2Fetc%2Fpasswd",
        "/v1/videos/video_123",
        "/v1/videos/video_0123456789abcdef0123456789abcdef/content",
    ] {
        let (st, v) = s.json("GET", uri, None, None).await;
        assert_error(st, &v, StatusCode::NOT_FOUND, None);
    }
    for q in ["limit=0", "limit=101", "order=sideways", "after=video_0123456789abcdef0123456789abcdef"] {
        let (st, v) = s.json("GET", &format!("/v1/videos?{q}"), None, None).await;
        assert_error(st, &v, StatusCode::BAD_REQUEST, None);
    }
    let (st, v) = s.json("GET", "/v1/nothing", None, None).await;
    assert_error(st, &v, StatusCode::NOT_FOUND, None);
    // Content of a job not yet done (no workers here): 400 video_not_ready.
    let (_, q) = s.json("POST", "/v1/videos", Some(ok.clone()), None).await;
    let (st, v) = s.json("GET", &format!("/v1/videos/{}/content", q["id"].as_str().unwrap()), None, None).await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, None);
    assert_eq!(v["error"]["code"], "video_not_ready");
    let (st, v) = s
        .json("POST", &format!("/v1/videos/{}/remix", q["id"].as_str().unwrap()), Some(json!({"prompt": "x"})), None)
        .await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, None);
    let (st, v) = s.json("POST", "/v1/videos/extensions", Some(json!({"prompt": "x", "seconds": "1"})), None).await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, Some("video"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_separate_users_and_limit_them() {
    let s = Server::start(0, |c| {
        c.api_keys = vec!["key-a".into(), "key-b".into()];
        c.max_jobs = 2;
        c.rate_limit = 9;
    });
    let body = json!({"prompt": "a red ball", "seconds": "1", "size": "64x64"});
    let (st, v) = s.json("POST", "/v1/videos", Some(body.clone()), None).await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED, None);
    let (st, v) = s.json("GET", "/v1/videos", None, Some("key-c")).await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED, None);
    let (st, a) = s.json("POST", "/v1/videos", Some(body.clone()), Some("key-a")).await;
    assert_eq!(st, StatusCode::OK, "{a}");
    let id = a["id"].as_str().unwrap();
    // B sees nothing of A's.
    let (st, v) = s.json("GET", &format!("/v1/videos/{id}"), None, Some("key-b")).await;
    assert_error(st, &v, StatusCode::NOT_FOUND, None);
    let (st, v) = s.json("DELETE", &format!("/v1/videos/{id}"), None, Some("key-b")).await;
    assert_error(st, &v, StatusCode::NOT_FOUND, None);
    let (_, l) = s.json("GET", "/v1/videos", None, Some("key-b")).await;
    assert_eq!(l["data"], json!([]));
    let (_, l) = s.json("GET", "/v1/videos", None, Some("key-a")).await;
    assert_eq!(l["data"][0]["id"], id);
    // Concurrent jobs: a second is fine, a third waits its turn.
    let (st, _) = s.json("POST", "/v1/videos", Some(body.clone()), Some("key-a")).await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s.json("POST", "/v1/videos", Some(body.clone()), Some("key-a")).await;
    assert_error(st, &v, StatusCode::TOO_MANY_REQUESTS, None);
    assert_eq!(v["error"]["code"], "concurrent_jobs_limit");
    // Requests per minute: A has used 4 of 9.
    for _ in 0..5 {
        let (st, _) = s.json("GET", "/v1/models", None, Some("key-a")).await;
        assert_eq!(st, StatusCode::OK);
    }
    let (st, v) = s.json("GET", "/v1/models", None, Some("key-a")).await;
    assert_error(st, &v, StatusCode::TOO_MANY_REQUESTS, None);
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    let (st, _) = s.json("GET", "/v1/models", None, Some("key-b")).await;
    assert_eq!(st, StatusCode::OK, "B has its own budget");
    // The database stores key ids, never keys.
    let (_, _, _) = s.call("GET", "/healthz", None, None).await;
    let row = s.state.db.get(id).unwrap().unwrap();
    assert_eq!(row.owner, tessera_server::key_id("key-a"));
    assert!(!row.owner.contains("key-a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_endpoints_and_the_openapi_document() {
    let s = Server::start(0, |_| {});
    let (st, body, _) = s.call("GET", "/healthz", None, None).await;
    assert_eq!((st, body.as_slice()), (StatusCode::OK, &b"ok\n"[..]));
    let (st, m) = s.json("GET", "/v1/models", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(m["data"][0]["id"], "tessera-world");
    assert_eq!(m["data"][0]["object"], "model");
    let (st, html, ctype) = s.call("GET", "/", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(ctype.starts_with("text/html"));
    assert!(String::from_utf8(html).unwrap().contains("id=\"prompt\""));
    // The OpenAPI document describes exactly the routes the router serves.
    let (st, doc) = s.json("GET", "/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    let mut paths: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(|k| k.as_str()).collect();
    paths.sort();
    let mut want = vec![
        "/",
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/v1/models",
        "/v1/videos",
        "/v1/videos/extensions",
        "/v1/videos/{id}",
        "/v1/videos/{id}/content",
        "/v1/videos/{id}/remix",
    ];
    want.sort();
    assert_eq!(paths, want);
    let src = include_str!("../src/api/mod.rs");
    for p in &want {
        assert!(src.contains(&format!("route(\"{p}\"")), "{p} is in openapi.json but not routed");
    }
    // `sora-2` (the SDK's usual model) means the default model.
    let (st, v) = s
        .json(
            "POST",
            "/v1/videos",
            Some(json!({"prompt": "a red ball", "model": "sora-2", "seconds": 1, "size": "64x64"})),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["model"], "tessera-world");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_videos_lose_their_files_but_keep_their_record() {
    let s = Server::start(1, |c| {
        c.retention = Duration::ZERO;
        c.sweep_every = Duration::from_millis(100);
    });
    let (_, v) = s
        .json(
            "POST",
            "/v1/videos",
            Some(json!({"prompt": "a red ball", "seconds": "1", "size": "64x64", "steps": 1})),
            None,
        )
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let done = s.wait(&id, None).await;
    assert_eq!(done["status"], "completed");
    assert!(done["expires_at"].as_i64().unwrap() <= done["completed_at"].as_i64().unwrap());
    let (st, e) = s.json("GET", &format!("/v1/videos/{id}/content"), None, None).await;
    assert_error(st, &e, StatusCode::NOT_FOUND, None);
    assert_eq!(e["error"]["code"], "video_expired");
    // The sweeper removes the files; the video's record stays.
    let start = Instant::now();
    while s.dir.join("files/videos").join(&id).exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "expired files were not swept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (st, v) = s.json("GET", &format!("/v1/videos/{id}"), None, None).await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some("completed")));
}

/// Jobs queued by the release before the typed request (their rows exactly as it wrote
/// them: tests/fixtures/jobs-2026-12-07.json) still run after an upgrade, to the same
/// videos: a text-to-video of 13 frames, an extension of a 5-frame upload by 6 frames,
/// and a remix of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_queued_by_the_previous_release_still_run() {
    let s = Server::start(1, |_| {});
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jobs-2026-12-07.json")).unwrap(),
    )
    .unwrap();
    let red = tessera_media::Frame { width: 64, height: 64, data: [200u8, 40, 40].repeat(64 * 64) };
    let gif = tessera_media::encode_video(std::path::Path::new("source.gif"), &vec![red; 5], 12.0, &Default::default())
        .unwrap();
    let mut ids = Vec::new();
    for (kind, want) in [("generate", 13), ("extend", 5 + 6), ("remix", 5)] {
        let id = tessera_server::db::new_id();
        let request = fixture[kind].as_str().unwrap().replace("{id}", &id);
        s.state.storage.put(&format!("inputs/{id}/source.gif"), &gif, "image/gif").unwrap();
        let prompt = serde_json::from_str::<Value>(&request).unwrap()["prompt"].as_str().unwrap().to_string();
        let row = tessera_server::db::Video::queued(
            &id,
            "",
            "tessera-world",
            &prompt,
            request,
            "1".into(),
            "64x64".into(),
            tessera_server::db::now_ms(),
        );
        s.state.db.insert(&row).unwrap();
        ids.push((id, want));
    }
    for (id, want) in ids {
        let done = s.wait(&id, None).await;
        assert_eq!(done["status"], "completed", "{done}");
        let (st, mp4, _) = s.call("GET", &format!("/v1/videos/{id}/content"), None, None).await;
        assert_eq!(st, StatusCode::OK);
        let frames = frames_of(&mp4);
        assert_eq!((frames.len(), frames[0].width, frames[0].height), (want, 64, 64), "{id}");
    }
}

/// Every response carries a request id (the client's own when it sends a plain one), and
/// every error body quotes it, so an error a user reports finds its log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_the_request_id() {
    let s = Server::start(0, |_| {});
    let req = |id: Option<&str>| {
        let mut r =
            Request::builder().method("POST").uri("/v1/videos").header(header::CONTENT_TYPE, "application/json");
        if let Some(id) = id {
            r = r.header("x-request-id", id);
        }
        r.body(Body::from(json!({"prompt": "a red ball", "steps": 0}).to_string())).unwrap()
    };
    for (given, kept) in [(None, false), (Some("my-trace.42"), true), (Some("bad id with spaces"), false)] {
        let resp = app(s.state.clone()).oneshot(req(given)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let header_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
        let body: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(body["error"]["request_id"], header_id.as_str(), "{body}");
        assert_eq!(body["error"]["param"], "steps", "{body}");
        if kept {
            assert_eq!(Some(header_id.as_str()), given);
        } else {
            assert!(header_id.starts_with("req_"), "{header_id}");
        }
    }
    // Successful responses carry the id in the header only.
    let resp =
        app(s.state.clone()).oneshot(Request::builder().uri("/healthz").body(Body::empty()).unwrap()).await.unwrap();
    assert!(resp.headers()["x-request-id"].to_str().unwrap().starts_with("req_"));
}

/// An upload that declares a 65535x65535 image in a few dozen bytes is a 400 naming the
/// limit, refused before anything is allocated for it (a canvas of that size is 17 GB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_declaring_huge_sizes_are_refused() {
    let s = Server::start(0, |_| {});
    let tiny = tessera_media::Frame { width: 2, height: 2, data: vec![200; 12] };
    let mut gif =
        tessera_media::encode_video(std::path::Path::new("x.gif"), &[tiny], 10.0, &Default::default()).unwrap();
    gif[6..10].copy_from_slice(&[0xFF; 4]); // the logical screen: 65535x65535
    assert!(gif.len() < 100, "{}", gif.len());
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for c in gif.chunks(3) {
        let n = c.iter().enumerate().fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            b64.push(if i <= c.len() { B64[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    let body =
        json!({"prompt": "a red ball", "input_reference": {"image_url": format!("data:image/gif;base64,{b64}")}});
    let (st, v) = s.json("POST", "/v1/videos", Some(body), None).await;
    assert_error(st, &v, StatusCode::BAD_REQUEST, Some("input_reference"));
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("65535x65535") && m.contains("limit"), "{m}");
}

/// A client that sends its body a byte at a time, slower than `body_timeout` allows, is
/// cut off with a 408; and past `max_queued` waiting jobs (all keys together), new jobs
/// are a 429 with code `queue_full`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_cut_off_and_a_full_queue_says_so() {
    let s = Server::start(0, |c| {
        c.body_timeout = Duration::from_millis(600);
        c.max_queued = 1;
    });
    let started = Instant::now();
    let slow = futures_util::stream::unfold(0u8, |i| async move {
        if i >= 30 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b" ")), i + 1))
    });
    let req = Request::builder()
        .method("POST")
        .uri("/v1/videos")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(slow))
        .unwrap();
    let (st, b, _) = s.raw(req).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_error(st, &v, StatusCode::REQUEST_TIMEOUT, None);
    assert!(started.elapsed() < Duration::from_secs(2), "cut off only after {:?}", started.elapsed());
    let job = json!({"prompt": "a red ball", "seconds": 1, "size": "64x64", "steps": 1});
    let (st, v) = s.json("POST", "/v1/videos", Some(job.clone()), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s.json("POST", "/v1/videos", Some(job), None).await;
    assert_eq!((st, v["error"]["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("queue_full")), "{v}");
}
