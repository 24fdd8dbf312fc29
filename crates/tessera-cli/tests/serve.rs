//! `tessera serve` as a process: durability across kill -9, several servers sharing one
//! PostgreSQL queue (and S3 storage), the official openai SDK, and the studio in headless
//! Chromium. The services come from `bash .ci/services.sh`; without them these tests say
//! "skipped" (and fail under TESSERA_REQUIRE_SERVICES=1, as in CI).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tessera_server::testing::{skip, venv_python};

struct Server {
    child: Child,
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(data: &Path, args: &[&str], env: &[(&str, String)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--data"]).arg(data).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
                l.lock().unwrap().push(line);
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("tessera serve did not start: {:?}", log.lock().unwrap()));
        Server { child, url, log }
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let req = ureq::request(method, url).timeout(Duration::from_secs(60));
    let resp = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match resp {
        Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

fn get_bytes(url: &str) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut ureq::get(url).call().unwrap().into_reader(), &mut out).unwrap();
    out
}

fn wait_for(server: &Server, id: &str, pred: impl Fn(&Value) -> bool, what: &str) -> Value {
    let start = Instant::now();
    loop {
        let (_, v) = call("GET", &format!("{}/v1/videos/{id}", server.url), None);
        if pred(&v) {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(240), "{id} never {what}: {v}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn frames_of(mp4: &[u8]) -> usize {
    tessera_media::decode_video(Path::new("content.mp4"), mp4).unwrap().0.len()
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-{tag}-{}", tessera_server::db::new_id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn no_partial_files(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                assert!(!p.to_string_lossy().contains(".partial"), "half-written file {}", p.display());
            }
        }
    }
}

/// A job long enough to be killed in the middle of (about 3 s on 2 cores).
fn slow_job() -> Value {
    json!({"prompt": "a red ball bounces on a wooden floor", "seconds": "2", "size": "128x128", "steps": 16, "seed": 1})
}

#[test]
fn kill_9_during_a_job_loses_nothing() {
    let data = temp_dir("kill9");
    let mut s = Server::start(&data, &["--lease-seconds", "1.5"], &[]);
    let (st, a) = call("POST", &format!("{}/v1/videos", s.url), Some(slow_job()));
    assert_eq!(st, 200, "{a}");
    let (st, b) = call(
        "POST",
        &format!("{}/v1/videos", s.url),
        Some(json!({"prompt": "a blue cube slides", "seconds": "1", "size": "64x64", "steps": 2})),
    );
    assert_eq!(st, 200, "{b}");
    let (a, b) = (a["id"].as_str().unwrap().to_string(), b["id"].as_str().unwrap().to_string());
    // Kill -9 while the first is being denoised.
    wait_for(&s, &a, |v| v["status"] == "in_progress" && v["progress"].as_i64().unwrap_or(0) > 0, "started");
    s.kill9();
    // Start again on the same data: the lease lapses, the job runs again and completes,
    // and the queued one too.
    let s = Server::start(&data, &["--lease-seconds", "1.5"], &[]);
    let (_, v) = call("GET", &format!("{}/v1/videos/{a}", s.url), None);
    assert_eq!(v["status"], "in_progress", "the killed job is still held by its dead worker's lease: {v}");
    for id in [&a, &b] {
        let v = wait_for(&s, id, |v| v["status"] == "completed" || v["status"] == "failed", "finished");
        assert_eq!(v["status"], "completed", "{v}\n{}", s.log());
    }
    assert!(s.log().contains("attempt 2"), "the killed job ran a second time:\n{}", s.log());
    assert_eq!(frames_of(&get_bytes(&format!("{}/v1/videos/{a}/content", s.url))), 25);
    assert_eq!(frames_of(&get_bytes(&format!("{}/v1/videos/{b}/content", s.url))), 13);
    no_partial_files(&data.join("files"));
    let tmp: Vec<_> = std::fs::read_dir(data.join("tmp")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(tmp.len(), 1, "the killed server's scratch folder is cleared: {tmp:?}");
    drop(s);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn sigterm_hands_the_running_job_back_to_the_queue() {
    let data = temp_dir("sigterm");
    let mut s = Server::start(&data, &[], &[]);
    let (_, a) = call("POST", &format!("{}/v1/videos", s.url), Some(slow_job()));
    let a = a["id"].as_str().unwrap().to_string();
    wait_for(&s, &a, |v| v["status"] == "in_progress", "started");
    let ok = Command::new("kill").args(["-TERM", &s.child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let status = s.child.wait().unwrap();
    assert!(status.success(), "a clean exit on SIGTERM: {status:?}\n{}", s.log());
    // At once queued again (not after the lease): a server without workers sees it so.
    let s = Server::start(&data, &["--workers", "0"], &[]);
    let (_, v) = call("GET", &format!("{}/v1/videos/{a}", s.url), None);
    assert_eq!(v["status"], "queued", "{v}");
    drop(s);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn servers_share_one_postgres_queue_and_s3_store() {
    let Some(pg) = tessera_server::testing::postgres_url() else { return };
    // A schema of its own on the test database.
    let schema = format!("serve{}", &tessera_server::db::new_id()[6..18]);
    postgres::Client::connect(&pg, postgres::NoTls).unwrap().batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
    let sep = if pg.contains('?') { '&' } else { '?' };
    let db = format!("{pg}{sep}options=-csearch_path%3D{schema}");
    // Storage: S3 (moto) when there, else one folder all servers share.
    let mut env = Vec::new();
    let storage = match std::env::var("TESSERA_TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            env = vec![
                ("AWS_ACCESS_KEY_ID", "test".to_string()),
                ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
                ("AWS_REGION", "us-east-1".to_string()),
                ("AWS_ENDPOINT_URL_S3", endpoint),
            ];
            for (k, v) in &env {
                std::env::set_var(k, v);
            }
            let url = format!("s3://{schema}/videos");
            tessera_server::s3::S3Store::from_url(&url).unwrap().create_bucket().unwrap();
            url
        }
        _ => {
            skip("an S3 endpoint (TESSERA_TEST_S3_ENDPOINT)");
            temp_dir("shared-store").display().to_string()
        }
    };
    let common = ["--database-url", db.as_str(), "--storage", storage.as_str(), "--lease-seconds", "1.5"];
    // A only takes requests; B works; then B dies and C takes over.
    let (da, db_, dc) = (temp_dir("a"), temp_dir("b"), temp_dir("c"));
    let a = Server::start(&da, &[&common[..], &["--workers", "0"]].concat(), &env);
    let (st, j1) = call("POST", &format!("{}/v1/videos", a.url), Some(slow_job()));
    assert_eq!(st, 200, "{j1}");
    let (_, j2) = call(
        "POST",
        &format!("{}/v1/videos", a.url),
        Some(json!({"prompt": "a green ball rolls", "seconds": "1", "size": "64x64", "steps": 2})),
    );
    let (j1, j2) = (j1["id"].as_str().unwrap().to_string(), j2["id"].as_str().unwrap().to_string());
    std::thread::sleep(Duration::from_millis(500));
    let (_, v) = call("GET", &format!("{}/v1/videos/{j1}", a.url), None);
    assert_eq!(v["status"], "queued", "A has no workers: {v}");
    let mut b = Server::start(&db_, &[&common[..], &["--workers", "1"]].concat(), &env);
    wait_for(&a, &j1, |v| v["status"] == "in_progress" && v["progress"].as_i64().unwrap_or(0) > 0, "started on B");
    b.kill9();
    let c = Server::start(&dc, &[&common[..], &["--workers", "1"]].concat(), &env);
    for id in [&j1, &j2] {
        let v = wait_for(&a, id, |v| v["status"] == "completed" || v["status"] == "failed", "finished");
        assert_eq!(v["status"], "completed", "{v}\nC:\n{}", c.log());
    }
    assert!(c.log().contains(&format!("job {j1}: started")), "C picked up the job B dropped:\n{}", c.log());
    // Any server serves any video.
    assert_eq!(frames_of(&get_bytes(&format!("{}/v1/videos/{j1}/content", a.url))), 25);
    assert_eq!(frames_of(&get_bytes(&format!("{}/v1/videos/{j2}/content", c.url))), 13);
    drop((a, c));
    postgres::Client::connect(&pg, postgres::NoTls)
        .unwrap()
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
    for d in [da, db_, dc] {
        let _ = std::fs::remove_dir_all(d);
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tessera-server/tests").join(name)
}

/// Runs a Python client script (tests/ of tessera-server) against a fresh server started
/// with `server_args`; the script prints PASS when every check held.
fn run_script(py: PathBuf, tag: &str, server_args: &[&str], name: &str, args: &[&str]) {
    let data = temp_dir(tag);
    let s = Server::start(&data, server_args, &[]);
    let out = Command::new(py).arg(script(name)).arg(&s.url).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}\nserver:\n{}", s.log());
    assert!(text.contains("PASS"), "{text}");
    eprintln!("{}", text.trim());
    drop(s);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn the_official_openai_sdk_works_against_tessera_serve() {
    let Some(py) = venv_python("openai") else { return skip("the openai Python SDK") };
    run_script(py, "sdk", &["--api-key", "sk-tessera-test"], "openai_sdk.py", &["sk-tessera-test"]);
}

#[test]
fn the_studio_makes_a_video_that_plays_in_headless_chromium() {
    let Some(py) = venv_python("selenium") else { return skip("selenium") };
    if !Path::new("/usr/bin/chromium").exists() || !Path::new("/usr/bin/chromedriver").exists() {
        return skip("Debian's chromium and chromium-driver");
    }
    run_script(py, "studio", &[], "studio_e2e.py", &[]);
}

/// The same request gets the same answer from `tessera generate` and from the API: one
/// table of requests, each as the CLI's flags and as a JSON body, both front ends building
/// one typed request and checking it with one function (tessera_service). Needs no
/// service: the server runs on SQLite and local storage with the built-in model.
#[test]
fn the_cli_and_the_api_give_the_same_answers() {
    let data = temp_dir("same-answers");
    let s = Server::start(&data, &["--workers", "0"], &[]);
    let long = "x".repeat(4001);
    // (CLI flags after the prompt, the JSON body, the message both must give)
    let cases: Vec<(Vec<&str>, Value, &str)> = vec![
        (vec![" "], json!({"prompt": " "}), "`prompt` is required"),
        (
            vec!["a red ball", "--steps", "0"],
            json!({"prompt": "a red ball", "steps": 0}),
            "`steps` must be between 1 and 200, got 0",
        ),
        (
            vec!["a red ball", "--steps", "500"],
            json!({"prompt": "a red ball", "steps": 500}),
            "`steps` must be between 1 and 200, got 500",
        ),
        (
            vec!["a red ball", "--guidance", "31"],
            json!({"prompt": "a red ball", "guidance": 31}),
            "`guidance` must be between 0 and 30, got 31",
        ),
        (
            vec!["a red ball", "--guidance=-1"],
            json!({"prompt": "a red ball", "guidance": -1}),
            "`guidance` must be between 0 and 30, got -1",
        ),
        (
            vec!["a red ball", "--seconds=-1"],
            json!({"prompt": "a red ball", "seconds": -1}),
            "`seconds` must be zero or more, got -1",
        ),
        (
            vec!["a red ball", "--negative-prompt", &long],
            json!({"prompt": "a red ball", "negative_prompt": long}),
            "`negative_prompt` is longer than 4000 characters",
        ),
        (
            vec!["a red ball juggles", "--strict-prompt"],
            json!({"prompt": "a red ball juggles", "strict_prompt": true}),
            "words outside the world's vocabulary: juggles (strict_prompt is set)",
        ),
        (
            vec!["a red ball", "--cache", "first-block", "--cache-threshold", "0"],
            json!({"prompt": "a red ball", "cache": "first-block", "cache_threshold": 0}),
            "`cache_threshold`: the cache threshold must be above 0 and at most 10 (got 0)",
        ),
        (
            vec!["a gruesome scene, graphic gore"],
            json!({"prompt": "a gruesome scene, graphic gore"}),
            "the prompt was refused",
        ),
    ];
    let out = data.join("never.gif");
    for (flags, body, want) in &cases {
        let o = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("generate")
            .args(flags)
            .args(["-q", "-o"])
            .arg(&out)
            .env("TESSERA_AUDIT_LOG", data.join("cli-audit.jsonl"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        let (st, v) = call("POST", &format!("{}/v1/videos", s.url), Some(body.clone()));
        let api = v["error"]["message"].as_str().unwrap_or_default().to_string();
        assert_eq!(st, 400, "{body}: {v}");
        assert!(!o.status.success() && !out.exists(), "{flags:?}: {err}");
        assert!(err.starts_with(&format!("error: {want}")), "CLI {flags:?}: {err}");
        assert!(api.starts_with(want), "API {body}: {api}");
        assert_eq!(err.lines().next().unwrap().trim_start_matches("error: "), api, "{flags:?} / {body}");
    }
    // A prompt with a word the world does not know is served, not refused: both say which.
    let warn = "ignored words outside the world's vocabulary: juggles";
    let (st, v) = call("POST", &format!("{}/v1/videos", s.url), Some(json!({"prompt": "a red ball juggles"})));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["warnings"], json!([warn]), "{v}");
    let png = data.join("still.png");
    let o = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["image", "a red ball juggles", "--steps", "1", "-q", "-o"])
        .arg(&png)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && png.exists(), "{err}");
    assert!(err.contains(&format!("warning: {warn}")), "{err}");
    let _ = std::fs::remove_dir_all(&data);
}

/// `tessera serve --log-json`: one JSON line per request with its method, path, status,
/// latency, request id and the API key's id (never the key).
#[test]
fn request_logs_are_json_lines_with_the_request_id_and_key_id() {
    let data = temp_dir("log-json");
    let s = Server::start(&data, &["--workers", "0", "--log-json", "--api-key", "sk-log-test"], &[]);
    let resp = ureq::post(&format!("{}/v1/videos", s.url))
        .set("Authorization", "Bearer sk-log-test")
        .set("x-request-id", "trace-7")
        .send_json(json!({"prompt": "a red ball", "steps": 0}));
    let Err(ureq::Error::Status(400, r)) = resp else { panic!("expected a 400") };
    assert_eq!(r.header("x-request-id"), Some("trace-7"));
    let start = Instant::now();
    let line = loop {
        let found = s.log().lines().find(|l| l.contains("trace-7")).map(String::from);
        if let Some(l) = found {
            break l;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no log line: {}", s.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["fields"]["status"], 400, "{v}");
    assert!(v["fields"]["latency_ms"].as_f64().is_some(), "{v}");
    let span = &v["span"];
    assert_eq!((span["method"].as_str(), span["path"].as_str()), (Some("POST"), Some("/v1/videos")), "{v}");
    assert_eq!(span["request_id"], "trace-7", "{v}");
    let key_id = span["key_id"].as_str().unwrap_or_default();
    assert!(!key_id.is_empty() && !line.contains("sk-log-test"), "{v}");
    let _ = std::fs::remove_dir_all(&data);
}
