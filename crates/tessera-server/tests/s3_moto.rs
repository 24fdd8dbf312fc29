//! The S3 client against a real S3-compatible server: moto in server mode
//! (`eval "$(bash crates/tessera-server/tests/start_moto.sh)"` starts one and sets
//! TESSERA_TEST_S3_ENDPOINT), or MinIO / AWS with credentials in the environment.
//!
//! moto does not check signatures unless asked to; against moto the test also switches its
//! IAM authentication on, so that the server recomputes each request's SigV4 signature from
//! what actually went over the wire (Host, path, headers) and rejects a mismatch.
//!
//! One test function on purpose: it sets AWS_* variables for `S3Store::from_url` and
//! toggles moto's server-wide auth mode, and tests in one binary run on parallel threads.

use std::time::{SystemTime, UNIX_EPOCH};

use tessera_server::s3::{sha256_hex, sign, Credentials, S3Config, S3Store, SigningRequest};

#[test]
fn s3_put_get_delete_round_trips() {
    let Some(endpoint) = tessera_server::testing::s3_endpoint() else { return };
    std::env::set_var("AWS_ENDPOINT_URL_S3", &endpoint);
    // moto accepts any credentials; keep real ones if the caller gave them (MinIO).
    for (name, value) in [("AWS_ACCESS_KEY_ID", "tessera-test"), ("AWS_SECRET_ACCESS_KEY", "tessera-test-secret")] {
        if std::env::var_os(name).is_none() {
            std::env::set_var(name, value);
        }
    }

    // A fresh bucket per run, so reruns against one server start clean.
    let bucket = unique("tessera-test");
    let store = S3Store::from_url(&format!("s3://{bucket}/ci/run")).unwrap();
    assert_eq!(store.describe(), format!("s3://{bucket}/ci/run at {}", endpoint.trim_end_matches('/')));
    store.create_bucket().unwrap();
    store.create_bucket().expect("creating a bucket we already own is fine");

    // Text, then replaced by other text.
    store.put("videos/a.json", br#"{"id":"a"}"#, "application/json").unwrap();
    assert_eq!(store.get("videos/a.json").unwrap().as_deref(), Some(&br#"{"id":"a"}"#[..]));
    store.put("videos/a.json", b"{}", "application/json").unwrap();
    assert_eq!(store.get("videos/a.json").unwrap().as_deref(), Some(&b"{}"[..]));

    // Binary: every byte value, then 3 MiB of pseudo-random bytes.
    let mut binary: Vec<u8> = (0..=255).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    binary.extend((0..3 << 20).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    store.put("videos/video_1.mp4", &binary, "video/mp4").unwrap();
    assert!(store.get("videos/video_1.mp4").unwrap() == Some(binary), "binary round trip");

    // A key with every character class the signer encodes.
    let odd = "my videos/ünïcødé £€ (1)+[a]&b=c;d,e'f!g*h@i:j$k%l~m^n`o|p{q}.png";
    store.put(odd, b"\x89PNG\r\n\x1a\n", "image/png").unwrap();
    assert_eq!(store.get(odd).unwrap().as_deref(), Some(&b"\x89PNG\r\n\x1a\n"[..]));

    // Empty objects are objects.
    store.put("empty", b"", "application/octet-stream").unwrap();
    assert_eq!(store.get("empty").unwrap(), Some(Vec::new()));

    // Missing keys are None; deleting is idempotent.
    assert_eq!(store.get("videos/missing.mp4").unwrap(), None);
    for key in ["videos/a.json", "videos/video_1.mp4", odd, "empty"] {
        store.delete(key).unwrap();
        assert_eq!(store.get(key).unwrap(), None, "{key} after delete");
        store.delete(key).unwrap();
    }

    // Errors name the status and S3's code.
    let nowhere = S3Store::from_url(&format!("s3://{bucket}-missing")).unwrap();
    let err = nowhere.get("k").unwrap_err().to_string();
    assert!(err.contains("HTTP 404") && err.contains("NoSuchBucket"), "{err}");

    if is_moto(&endpoint) {
        signatures_are_checked_by_moto(&endpoint);
    } else {
        println!("not moto: signature checks left to the server's own policy");
    }
}

/// Against moto with authentication on: an IAM user's key works, a wrong secret is refused.
fn signatures_are_checked_by_moto(endpoint: &str) {
    // While auth is still off, an IAM user with a key and an s3:* policy.
    let user = unique("tessera-ci");
    iam(endpoint, &[("Action", "CreateUser"), ("UserName", &user)]);
    let reply = iam(endpoint, &[("Action", "CreateAccessKey"), ("UserName", &user)]);
    let credentials = Credentials {
        access_key_id: xml_text(&reply, "AccessKeyId"),
        secret_access_key: xml_text(&reply, "SecretAccessKey"),
        session_token: None,
    };
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    iam(
        endpoint,
        &[("Action", "PutUserPolicy"), ("UserName", &user), ("PolicyName", "s3"), ("PolicyDocument", policy)],
    );

    let _auth = MotoAuth::enable(endpoint);
    let store = |credentials: Credentials| {
        S3Store::new(S3Config {
            bucket: unique("tessera-signed"),
            prefix: "p".into(),
            region: "us-east-1".into(),
            endpoint: Some(endpoint.to_string()),
            credentials,
        })
        .unwrap()
    };
    let signed = store(credentials.clone());
    signed.create_bucket().unwrap();
    let odd = "dir with space/ünï €+&=;,'!*@:$%~^`|{}[].bin";
    signed.put(odd, &[0, 1, 2, 255], "application/octet-stream").unwrap();
    assert_eq!(signed.get(odd).unwrap().as_deref(), Some(&[0u8, 1, 2, 255][..]));
    signed.delete(odd).unwrap();
    assert_eq!(signed.get(odd).unwrap(), None);

    let forged = store(Credentials { secret_access_key: "not-the-secret".into(), ..credentials });
    let err = forged.create_bucket().unwrap_err().to_string();
    assert!(err.contains("HTTP 403") && err.contains("SignatureDoesNotMatch"), "{err}");
}

/// moto's server-wide IAM authentication, on for this guard's lifetime (off again even
/// if the test panics, so other users of the same server are unaffected afterwards).
struct MotoAuth(String);

impl MotoAuth {
    fn enable(endpoint: &str) -> Self {
        // The number of requests still let through unauthenticated; "inf" is moto's default.
        moto_reset_auth(endpoint, "0");
        MotoAuth(endpoint.to_string())
    }
}

impl Drop for MotoAuth {
    fn drop(&mut self) {
        moto_reset_auth(&self.0, "inf");
    }
}

fn moto_reset_auth(endpoint: &str, count: &str) {
    let url = format!("{}/moto-api/reset-auth", endpoint.trim_end_matches('/'));
    ureq::post(&url).send_string(count).expect("POST /moto-api/reset-auth");
}

fn is_moto(endpoint: &str) -> bool {
    let url = format!("{}/moto-api/data.json", endpoint.trim_end_matches('/'));
    ureq::get(&url).call().is_ok()
}

/// One IAM query-API call, signed by `sign` for the "iam" service (moto routes on it).
fn iam(endpoint: &str, params: &[(&str, &str)]) -> String {
    let body = params
        .iter()
        .chain(&[("Version", "2010-05-08")])
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let host = endpoint.trim_end_matches('/').split_once("://").unwrap().1;
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let admin = Credentials {
        access_key_id: "tessera-test".into(),
        secret_access_key: "tessera-test-secret".into(),
        session_token: None,
    };
    let signed = sign(&SigningRequest {
        method: "POST",
        host,
        path: "/",
        query: &[],
        headers: &[("content-type", content_type)],
        payload_sha256: &sha256_hex(body.as_bytes()),
        time: SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs(),
        region: "us-east-1",
        service: "iam",
        credentials: &admin,
    });
    let mut request = ureq::post(&format!("http://{host}/")).set("content-type", content_type);
    for (name, value) in signed.pairs() {
        request = request.set(name, value);
    }
    match request.send_string(&body) {
        Ok(reply) => reply.into_string().unwrap(),
        Err(e) => panic!("IAM {params:?}: {e}"),
    }
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn xml_text(xml: &str, tag: &str) -> String {
    let start = xml.find(&format!("<{tag}>")).unwrap_or_else(|| panic!("no <{tag}> in {xml}")) + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>")).unwrap();
    xml[start..end].to_string()
}

fn unique(stem: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{stem}-{}-{nanos}", std::process::id())
}
