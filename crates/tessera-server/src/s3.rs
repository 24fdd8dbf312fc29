//! S3-compatible object storage (AWS S3, MinIO, Ceph RGW, moto, R2, ...) for finished videos.
//!
//! Three calls (PUT, GET, DELETE of one object) do not justify the AWS SDK and its async
//! runtime, so this is a small blocking client: `ureq` for HTTP and AWS Signature Version 4
//! written out below as a pure function, checked against botocore's signer on fixtures
//! from `tools/sigv4_fixtures.py`. It is called from worker threads and `spawn_blocking`.
//!
//! Reference: "Create a signed AWS API request",
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>,
//! and S3's variant, <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Access key, secret and, for temporary credentials (STS, SSO), the session token.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    // Never print the secret or the token: stores end up in log lines and panics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// What SigV4 signs. The caller sends exactly these values (plus the returned headers).
pub struct SigningRequest<'a> {
    pub method: &'a str,
    /// The Host header as sent: lowercase, with the port unless it is the scheme's default.
    pub host: &'a str,
    /// The URI path exactly as it goes on the wire, already percent-encoded
    /// (see [`encode_key`]). S3 signs it as is, without normalising or re-encoding it.
    pub path: &'a str,
    /// Query parameters, not yet encoded; they are encoded and sorted here.
    pub query: &'a [(&'a str, &'a str)],
    /// Other headers to sign (content-type, range, ...). Host and the x-amz-* headers this
    /// function returns are added here and skipped if also given.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body ([`sha256_hex`]), also sent as x-amz-content-sha256.
    pub payload_sha256: &'a str,
    /// Unix seconds; S3 rejects requests more than 15 minutes away from its clock.
    pub time: u64,
    pub region: &'a str,
    pub service: &'a str,
    pub credentials: &'a Credentials,
}

/// The headers that authenticate a request; add all of them to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    pub authorization: String,
    pub amz_date: String,
    pub content_sha256: String,
    pub security_token: Option<String>,
}

impl SignedHeaders {
    /// (name, value) pairs, ready to set on a request.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![
            ("authorization", self.authorization.as_str()),
            ("x-amz-date", self.amz_date.as_str()),
            ("x-amz-content-sha256", self.content_sha256.as_str()),
        ];
        if let Some(token) = &self.security_token {
            out.push(("x-amz-security-token", token.as_str()));
        }
        out
    }
}

/// Signs `req` with AWS Signature Version 4 (header form, as botocore's `S3SigV4Auth`).
pub fn sign(req: &SigningRequest) -> SignedHeaders {
    let amz_date = amz_date(req.time);
    let date = &amz_date[..8];
    let token = req.credentials.session_token.clone();

    // Canonical headers: lowercase names, sorted; values trimmed with inner runs of spaces
    // collapsed; a repeated name becomes one line with its values joined by commas.
    let own = ["host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"];
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers {
        let name = name.trim().to_ascii_lowercase();
        if !own.contains(&name.as_str()) {
            headers.entry(name).or_default().push(trim_all(value));
        }
    }
    headers.insert("host".into(), vec![req.host.to_string()]);
    headers.insert("x-amz-date".into(), vec![amz_date.clone()]);
    headers.insert("x-amz-content-sha256".into(), vec![req.payload_sha256.to_string()]);
    if let Some(token) = &token {
        headers.insert("x-amz-security-token".into(), vec![token.clone()]);
    }
    let signed_names = headers.keys().cloned().collect::<Vec<_>>().join(";");
    let canonical_headers: String =
        headers.iter().map(|(name, values)| format!("{name}:{}\n", values.join(","))).collect();

    let canonical_request = [
        req.method,
        if req.path.is_empty() { "/" } else { req.path },
        &canonical_query(req.query),
        &canonical_headers,
        &signed_names,
        req.payload_sha256,
    ]
    .join("\n");

    let scope = format!("{date}/{}/{}/aws4_request", req.region, req.service);
    let string_to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()));
    let secret = format!("AWS4{}", req.credentials.secret_access_key);
    let mut key = hmac_sha256(secret.as_bytes(), date.as_bytes());
    for part in [req.region, req.service, "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));

    SignedHeaders {
        // Comma-and-space separators as botocore writes them; S3 accepts either form.
        authorization: format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_names}, Signature={signature}",
            req.credentials.access_key_id
        ),
        amz_date,
        content_sha256: req.payload_sha256.to_string(),
        security_token: token,
    }
}

/// Percent-encodes an object key for the URI path: every byte except the unreserved
/// A-Z a-z 0-9 - _ . ~ and the '/' between segments. Encoded once only: S3 is the one
/// service whose canonical URI is not double-encoded.
pub fn encode_key(key: &str) -> String {
    key.split('/').map(uri_encode).collect::<Vec<_>>().join("/")
}

/// Hex SHA-256, the form x-amz-content-sha256 takes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `name=value` pairs, both encoded ('/' too), sorted by name then value, joined by '&'.
fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query.iter().map(|(k, v)| (uri_encode(k), uri_encode(v))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

fn trim_all(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    // new_from_slice only fails for fixed-size-key MACs; HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `YYYYMMDD'T'HHMMSS'Z'` in UTC, SigV4's x-amz-date format.
fn amz_date(unix: u64) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after Howard
/// Hinnant's `civil_from_days` (<http://howardhinnant.github.io/date_algorithms.html>):
/// count from 0000-03-01 so the leap day ends each 400-year era's years.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // 1970-01-01 is day 719468 counted from 0000-03-01
    let era = z.div_euclid(146_097); // 146097 days in 400 years
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Where and how to reach a bucket; [`S3Store::from_url`] fills it from the environment.
#[derive(Clone, Debug)]
pub struct S3Config {
    pub bucket: String,
    /// Joined before every key with '/'; "" for none.
    pub prefix: String,
    pub region: String,
    /// `scheme://host[:port]`; None for AWS's own `https://s3.{region}.amazonaws.com`.
    pub endpoint: Option<String>,
    pub credentials: Credentials,
}

/// A bucket (and key prefix) on an S3-compatible server. Cheap to clone.
#[derive(Clone)]
pub struct S3Store {
    bucket: String,
    prefix: String,
    region: String,
    /// `scheme://authority` of the service, for URLs and [`S3Store::describe`].
    scheme: &'static str,
    endpoint_host: String,
    /// endpoint/bucket/key rather than bucket.endpoint/key.
    path_style: bool,
    credentials: Credentials,
    agent: ureq::Agent,
}

/// Retries of 5xx replies and failed connections, as the AWS SDKs do (S3 asks clients
/// to back off on 503 SlowDown); delays grow from RETRY_BASE with full jitter.
const ATTEMPTS: u32 = 3;
const RETRY_BASE: Duration = Duration::from_millis(200);
/// S3 error documents are small; do not read more of one than this.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

impl S3Store {
    /// `url` is `s3://bucket/optional/prefix`; the rest comes from the environment as the
    /// AWS CLI reads it: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
    /// AWS_REGION or AWS_DEFAULT_REGION (us-east-1), AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL.
    pub fn from_url(url: &str) -> Result<Self> {
        Self::new(config_from(url, |name| std::env::var(name).ok())?)
    }

    pub fn new(config: S3Config) -> Result<Self> {
        let bucket = config.bucket;
        if bucket.is_empty() || bucket.contains('/') {
            bail!("invalid S3 bucket name {bucket:?}");
        }
        let (scheme, authority, custom) = match &config.endpoint {
            Some(url) => {
                let (scheme, authority) = parse_endpoint(url)?;
                (scheme, authority, true)
            }
            None => ("https", format!("s3.{}.amazonaws.com", config.region), false),
        };
        // Custom endpoints (MinIO, Ceph, moto) are addressed path-style, as they rarely have
        // wildcard DNS. On AWS, virtual-hosted style unless the bucket name is not one DNS
        // label: dots break the *.s3 TLS certificate (botocore's addressing_style=auto).
        let path_style = custom || !is_dns_label(&bucket);
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(30))
            .timeout_write(Duration::from_secs(30))
            // A redirect means a wrong region or endpoint; following it would drop the
            // signature, and S3's 301 body names the right endpoint in the error we report.
            .redirects(0)
            .build();
        Ok(Self {
            bucket,
            prefix: config.prefix.trim_matches('/').to_string(),
            region: config.region,
            scheme,
            endpoint_host: authority,
            path_style,
            credentials: config.credentials,
            agent,
        })
    }

    /// Stores `bytes` at `key` (under the prefix), replacing any object there.
    pub fn put(&self, key: &str, bytes: &[u8], content_type: &str) -> Result<()> {
        let reply = self.send("PUT", Some(key), bytes, Some(content_type))?;
        match reply.status {
            200..=299 => Ok(()),
            _ => Err(reply.error("PUT", &self.object_name(key))),
        }
    }

    /// The object at `key`, or None if there is none.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let reply = self.send("GET", Some(key), &[], None)?;
        match reply.status {
            200..=299 => Ok(Some(reply.body)),
            404 if reply.code().as_deref() == Some("NoSuchKey") => Ok(None),
            _ => Err(reply.error("GET", &self.object_name(key))),
        }
    }

    /// Removes the object at `key`; removing a missing object is not an error.
    pub fn delete(&self, key: &str) -> Result<()> {
        let reply = self.send("DELETE", Some(key), &[], None)?;
        match reply.status {
            200..=299 => Ok(()),
            404 if reply.code().as_deref() != Some("NoSuchBucket") => Ok(()),
            _ => Err(reply.error("DELETE", &self.object_name(key))),
        }
    }

    /// Creates the bucket (for tests and first-time setup); one we already own is fine.
    pub fn create_bucket(&self) -> Result<()> {
        let body = create_bucket_body(&self.region);
        let reply = self.send("PUT", None, body.as_bytes(), None)?;
        match reply.status {
            200..=299 => Ok(()),
            409 if reply.code().as_deref() == Some("BucketAlreadyOwnedByYou") => Ok(()),
            _ => Err(reply.error("PUT", &format!("bucket s3://{}", self.bucket))),
        }
    }

    /// e.g. "s3://bucket/prefix at http://127.0.0.1:9000", for logs.
    pub fn describe(&self) -> String {
        let mut s = format!("s3://{}", self.bucket);
        if !self.prefix.is_empty() {
            s = format!("{s}/{}", self.prefix);
        }
        format!("{s} at {}://{}", self.scheme, self.endpoint_host)
    }

    fn object_name(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    /// (URL, Host header, URI path) of an object, or of the bucket itself for `None`.
    fn location(&self, key: Option<&str>) -> Result<(String, String, String)> {
        let mut path = if self.path_style { format!("/{}", uri_encode(&self.bucket)) } else { String::new() };
        if let Some(key) = key {
            // HTTP clients (the url crate under ureq included) resolve "." and ".." path
            // segments, so such a key would be stored elsewhere than signed; refuse it.
            if key.is_empty() || key.split('/').any(|s| s == "." || s == "..") {
                bail!("invalid S3 object key {key:?}: empty, or with a '.' or '..' segment");
            }
            path = format!("{path}/{}", encode_key(&self.full_key(key)));
        }
        if path.is_empty() {
            path.push('/');
        }
        let host = if self.path_style {
            self.endpoint_host.clone()
        } else {
            format!("{}.{}", self.bucket, self.endpoint_host)
        };
        Ok((format!("{}://{host}{path}", self.scheme), host, path))
    }

    /// One signed request, retried on 5xx and connection failures. Any reply with a status
    /// comes back as a [`Reply`] for the caller to judge.
    fn send(&self, method: &str, key: Option<&str>, body: &[u8], content_type: Option<&str>) -> Result<Reply> {
        let (url, host, path) = self.location(key)?;
        let payload_sha256 = sha256_hex(body);
        let extra: Vec<(&str, &str)> = content_type.map(|t| ("content-type", t)).into_iter().collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let signed = sign(&SigningRequest {
                method,
                host: &host,
                path: &path,
                query: &[],
                headers: &extra,
                payload_sha256: &payload_sha256,
                time: now_unix(),
                region: &self.region,
                service: "s3",
                credentials: &self.credentials,
            });
            let mut request = self.agent.request(method, &url);
            for (name, value) in extra.iter().copied().chain(signed.pairs()) {
                request = request.set(name, value);
            }
            let result = if body.is_empty() && method != "PUT" { request.call() } else { request.send_bytes(body) };
            match result {
                Ok(response) => return Reply::read(response, u64::MAX),
                Err(ureq::Error::Status(status, response)) => {
                    let reply = Reply::read(response, ERROR_BODY_LIMIT)?;
                    if !matches!(status, 500 | 502 | 503 | 504) || attempt == ATTEMPTS {
                        return Ok(reply);
                    }
                }
                Err(ureq::Error::Transport(e)) => {
                    if attempt == ATTEMPTS {
                        return Err(e).with_context(|| format!("S3 {method} {url} failed after {ATTEMPTS} attempts"));
                    }
                }
            }
            let cap = RETRY_BASE.as_millis() as u64 * (1 << (attempt - 1));
            std::thread::sleep(Duration::from_millis(rand::random_range(0..=cap)));
        }
    }
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("location", &self.describe())
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// A reply's status and body, read in full (error bodies up to a limit).
struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn read(response: ureq::Response, limit: u64) -> Result<Self> {
        let status = response.status();
        let mut body = Vec::new();
        response
            .into_reader()
            .take(limit)
            .read_to_end(&mut body)
            .with_context(|| format!("reading an S3 reply (HTTP {status})"))?;
        Ok(Self { status, body })
    }

    /// S3's error code, from `<Error><Code>NoSuchKey</Code>...`.
    fn code(&self) -> Option<String> {
        xml_text(&String::from_utf8_lossy(&self.body), "Code")
    }

    /// "S3 GET s3://b/k failed: HTTP 403 SignatureDoesNotMatch: The request signature ...".
    fn error(&self, method: &str, what: &str) -> anyhow::Error {
        let text = String::from_utf8_lossy(&self.body);
        let detail = match (xml_text(&text, "Code"), xml_text(&text, "Message")) {
            (Some(code), Some(message)) => format!(" {code}: {message}"),
            (Some(code), None) => format!(" {code}"),
            _ if text.trim().is_empty() => String::new(),
            _ => format!(" {}", text.trim().chars().take(200).collect::<String>()),
        };
        let mut msg = format!("S3 {method} {what} failed: HTTP {}{detail}", self.status);
        // A 301 names the endpoint the bucket needs: the usual cause is a wrong region.
        if let Some(endpoint) = xml_text(&text, "Endpoint") {
            msg.push_str(&format!(" (the bucket is served at {endpoint}; check AWS_REGION)"));
        }
        anyhow::anyhow!(msg)
    }
}

/// The text of the first `<tag>...</tag>` in a small, flat XML document, unescaped.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    let text = xml[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    Some(text)
}

/// CreateBucket's body: outside us-east-1 the region must be named, and in us-east-1 it
/// must not be (S3 answers InvalidLocationConstraint).
fn create_bucket_body(region: &str) -> String {
    if region == "us-east-1" {
        return String::new();
    }
    format!(
        "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
    )
}

/// `s3://bucket/prefix` plus the AWS CLI's environment variables, read through `env`.
fn config_from(url: &str, env: impl Fn(&str) -> Option<String>) -> Result<S3Config> {
    let rest = url
        .strip_prefix("s3://")
        .with_context(|| format!("S3 storage URL {url:?} must look like s3://bucket/optional/prefix"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("S3 storage URL {url:?} names no bucket (expected s3://bucket/optional/prefix)");
    }
    // Unset and empty are the same, as in the AWS CLI.
    let var = |name: &str| env(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let (Some(access_key_id), Some(secret_access_key)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
    else {
        bail!("S3 storage {url} needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment");
    };
    Ok(S3Config {
        bucket: bucket.to_string(),
        prefix: prefix.trim_matches('/').to_string(),
        region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into()),
        endpoint: var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")),
        credentials: Credentials { access_key_id, secret_access_key, session_token: var("AWS_SESSION_TOKEN") },
    })
}

/// `http[s]://host[:port][/]` to (scheme, authority as the Host header carries it).
fn parse_endpoint(url: &str) -> Result<(&'static str, String)> {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, rest)) if s.eq_ignore_ascii_case("https") => ("https", rest),
        Some((s, rest)) if s.eq_ignore_ascii_case("http") => ("http", rest),
        _ => bail!("S3 endpoint {url:?} must start with http:// or https://"),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest).to_ascii_lowercase();
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        bail!("S3 endpoint {url:?} must be scheme://host[:port], without a path or user");
    }
    // HTTP clients leave the scheme's default port out of Host, and the signature covers it.
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority).to_string();
    Ok((scheme, authority))
}

/// A bucket name usable as one DNS label: lowercase letters, digits and inner hyphens.
fn is_dns_label(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-')
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// A request botocore signed; see tools/sigv4_fixtures.py for the fields.
    #[derive(Deserialize)]
    struct Case {
        name: String,
        method: String,
        url: String,
        query: Vec<(String, String)>,
        headers: Vec<(String, String)>,
        body: String,
        time: u64,
        region: String,
        access_key: String,
        secret_key: String,
        session_token: Option<String>,
        expected: Expected,
        store: Option<StoreCase>,
    }

    #[derive(Deserialize)]
    struct Expected {
        authorization: String,
        #[serde(rename = "x-amz-date")]
        amz_date: String,
        #[serde(rename = "x-amz-content-sha256")]
        content_sha256: String,
        #[serde(rename = "x-amz-security-token")]
        security_token: Option<String>,
    }

    #[derive(Deserialize)]
    struct StoreCase {
        bucket: String,
        key: Option<String>,
        endpoint: Option<String>,
    }

    fn cases() -> Vec<Case> {
        #[derive(Deserialize)]
        struct Fixture {
            cases: Vec<Case>,
        }
        let fixture: Fixture = serde_json::from_str(include_str!("../tests/fixtures/sigv4.json"))
            .expect("tests/fixtures/sigv4.json parses");
        fixture.cases
    }

    fn credentials(case: &Case) -> Credentials {
        Credentials {
            access_key_id: case.access_key.clone(),
            secret_access_key: case.secret_key.clone(),
            session_token: case.session_token.clone(),
        }
    }

    /// Host header and raw path of a fixture URL, the way an HTTP client sends them.
    fn host_and_path(url: &str) -> (String, String) {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (_, host) = parse_endpoint(&format!("{scheme}://{authority}")).unwrap();
        (host, path.split('?').next().unwrap().to_string())
    }

    fn sign_case(case: &Case) -> SignedHeaders {
        let (host, path) = host_and_path(&case.url);
        let query: Vec<(&str, &str)> = case.query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let headers: Vec<(&str, &str)> = case.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let credentials = credentials(case);
        sign(&SigningRequest {
            method: &case.method,
            host: &host,
            path: &path,
            query: &query,
            headers: &headers,
            payload_sha256: &sha256_hex(case.body.as_bytes()),
            time: case.time,
            region: &case.region,
            service: "s3",
            credentials: &credentials,
        })
    }

    /// Every header botocore's S3SigV4Auth produced, byte for byte.
    #[test]
    fn sign_matches_botocore() {
        let cases = cases();
        assert!(cases.len() >= 6, "fixture has {} cases", cases.len());
        for case in &cases {
            let signed = sign_case(case);
            let expected = &case.expected;
            assert_eq!(signed.authorization, expected.authorization, "{}: Authorization", case.name);
            assert_eq!(signed.amz_date, expected.amz_date, "{}: x-amz-date", case.name);
            assert_eq!(signed.content_sha256, expected.content_sha256, "{}: x-amz-content-sha256", case.name);
            assert_eq!(signed.security_token, expected.security_token, "{}: x-amz-security-token", case.name);
        }
    }

    /// S3Store addresses objects (and buckets) at the URL botocore uses, key encoding and
    /// path- or virtual-hosted style included, and sends CreateBucket the same body.
    #[test]
    fn store_urls_match_botocore() {
        let mut checked = 0;
        for case in cases() {
            let Some(store_case) = &case.store else {
                continue;
            };
            let store = S3Store::new(S3Config {
                bucket: store_case.bucket.clone(),
                prefix: String::new(),
                region: case.region.clone(),
                endpoint: store_case.endpoint.clone(),
                credentials: credentials(&case),
            })
            .unwrap();
            let (url, host, path) = store.location(store_case.key.as_deref()).unwrap();
            assert_eq!(url, case.url, "{}: URL", case.name);
            assert_eq!((host, path), host_and_path(&case.url), "{}: host and path", case.name);
            if store_case.key.is_none() {
                assert_eq!(create_bucket_body(&case.region), case.body, "{}: body", case.name);
            }
            checked += 1;
        }
        assert!(checked >= 5, "only {checked} cases have a store section");
    }

    /// AWS's own worked example ("Example: GET Object" in
    /// https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html),
    /// with the canonical request and signature the page prints.
    #[test]
    fn aws_documentation_get_object_example() {
        let credentials = Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(sha256_hex(b""), empty);
        let signed = sign(&SigningRequest {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            query: &[],
            headers: &[("Range", "bytes=0-9")],
            payload_sha256: empty,
            time: 1_369_353_600, // 2013-05-24T00:00:00Z
            region: "us-east-1",
            service: "s3",
            credentials: &credentials,
        });
        assert_eq!(signed.amz_date, "20130524T000000Z");
        assert_eq!(
            signed.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn keys_are_encoded_once_per_segment() {
        assert_eq!(encode_key("videos/a b.mp4"), "videos/a%20b.mp4");
        assert_eq!(encode_key("A-Z_a.z~09"), "A-Z_a.z~09");
        assert_eq!(encode_key("ü/€"), "%C3%BC/%E2%82%AC");
        assert_eq!(encode_key("a+b=c&d%20"), "a%2Bb%3Dc%26d%2520");
        assert_eq!(encode_key("a//b/"), "a//b/");
        assert_eq!(canonical_query(&[("b", "2"), ("a", "x/y z"), ("a", "1")]), "a=1&a=x%2Fy%20z&b=2");
    }

    #[test]
    fn header_values_are_trimmed_and_repeats_joined() {
        assert_eq!(trim_all("  a   b \t c "), "a b c");
        let credentials =
            Credentials { access_key_id: "AK".into(), secret_access_key: "S".into(), session_token: None };
        let signed = |headers: &[(&str, &str)]| {
            sign(&SigningRequest {
                method: "GET",
                host: "h",
                path: "/k",
                query: &[],
                headers,
                payload_sha256: "p",
                time: 0,
                region: "r",
                service: "s3",
                credentials: &credentials,
            })
            .authorization
        };
        // Case, spacing and a caller-supplied Host (which sign owns) make no difference.
        assert_eq!(signed(&[("X-Meta", " a  b ")]), signed(&[("x-meta", "a b"), ("Host", "evil")]));
        assert_ne!(signed(&[("x-meta", "a"), ("x-meta", "b")]), signed(&[("x-meta", "a")]));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(10_956), (1999, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(4_102_444_799), "20991231T235959Z");
        // Every day for ~110 years is the day after the one before.
        let mut prev = civil_from_days(0);
        for day in 1..40_000 {
            let (y, m, d) = civil_from_days(day);
            let next_in_month = (y, m, d) == (prev.0, prev.1, prev.2 + 1);
            let new_month = d == 1 && ((y, m) == (prev.0, prev.1 + 1) || (y, m) == (prev.0 + 1, 1));
            assert!(next_in_month || new_month, "day {day}: {prev:?} -> {:?}", (y, m, d));
            prev = (y, m, d);
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn configuration_as_the_aws_cli_reads_it() {
        let creds = [("AWS_ACCESS_KEY_ID", "AK"), ("AWS_SECRET_ACCESS_KEY", "SK")];
        let aws = S3Store::new(config_from("s3://videos", env(&creds)).unwrap()).unwrap();
        assert_eq!(aws.describe(), "s3://videos at https://s3.us-east-1.amazonaws.com");
        assert_eq!(aws.location(Some("a b")).unwrap().0, "https://videos.s3.us-east-1.amazonaws.com/a%20b");

        let vars = [
            creds[0],
            creds[1],
            ("AWS_SESSION_TOKEN", "T"),
            ("AWS_REGION", ""), // empty counts as unset
            ("AWS_DEFAULT_REGION", "eu-west-3"),
            ("AWS_ENDPOINT_URL", "http://ignored:1"),
            ("AWS_ENDPOINT_URL_S3", "HTTP://127.0.0.1:9000/"),
        ];
        let config = config_from("s3://bucket/some/prefix/", env(&vars)).unwrap();
        assert_eq!(config.credentials.session_token.as_deref(), Some("T"));
        assert_eq!(config.region, "eu-west-3");
        let minio = S3Store::new(config).unwrap();
        assert_eq!(minio.describe(), "s3://bucket/some/prefix at http://127.0.0.1:9000");
        assert_eq!(minio.location(Some("k")).unwrap().0, "http://127.0.0.1:9000/bucket/some/prefix/k");
        assert!(!format!("{minio:?}").contains("SK"), "Debug must not print the secret");

        // Dotted bucket names stay path-style on AWS (TLS wildcard certificates).
        let dotted = S3Store::new(config_from("s3://my.videos", env(&creds)).unwrap()).unwrap();
        assert_eq!(dotted.location(None).unwrap().0, "https://s3.us-east-1.amazonaws.com/my.videos");
        assert_eq!(parse_endpoint("https://X.example:443").unwrap(), ("https", "x.example".into()));
    }

    #[test]
    fn bad_configuration_is_a_clear_error() {
        let creds = [("AWS_ACCESS_KEY_ID", "AK"), ("AWS_SECRET_ACCESS_KEY", "SK")];
        for url in ["http://bucket", "s3://", "s3:///prefix"] {
            assert!(config_from(url, env(&creds)).is_err(), "{url}");
        }
        let err = config_from("s3://b", env(&[])).unwrap_err().to_string();
        assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
        for endpoint in ["127.0.0.1:9000", "http://h/path", "ftp://h"] {
            assert!(parse_endpoint(endpoint).is_err(), "{endpoint}");
        }
        let store = S3Store::new(config_from("s3://b", env(&creds)).unwrap()).unwrap();
        for key in ["", "a/../b", "./a", "a/."] {
            assert!(store.put(key, b"", "text/plain").is_err(), "{key:?}");
        }
    }

    #[test]
    fn errors_carry_status_code_and_message() {
        let reply = Reply {
            status: 403,
            body: b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code>\
                    <Message>The request signature we calculated does not match &amp; so on</Message>\
                    <RequestId>4442587FB7D0A2F9</RequestId></Error>"
                .to_vec(),
        };
        assert_eq!(reply.code().as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(
            reply.error("PUT", "s3://b/k").to_string(),
            "S3 PUT s3://b/k failed: HTTP 403 SignatureDoesNotMatch: \
             The request signature we calculated does not match & so on"
        );
        let moved = Reply {
            status: 301,
            body: b"<Error><Code>PermanentRedirect</Code><Message>Use the endpoint.</Message>\
                    <Endpoint>b.s3.eu-west-1.amazonaws.com</Endpoint></Error>"
                .to_vec(),
        };
        assert!(moved.error("GET", "s3://b/k").to_string().contains("served at b.s3.eu-west-1"));
        let bare = Reply { status: 502, body: b"Bad Gateway".to_vec() };
        assert_eq!(bare.error("GET", "x").to_string(), "S3 GET x failed: HTTP 502 Bad Gateway");
    }
}
