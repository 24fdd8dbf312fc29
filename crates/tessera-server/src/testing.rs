//! What the test suites share (the server's and the CLI's): whether the services that
//! `.ci/services.sh` installs and starts are required, where they are, and the Python venv
//! with the real clients. Without a service a test says "skipped" on stderr, unless
//! $TESSERA_REQUIRE_SERVICES=1 (CI), where a missing service is a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Whether missing services fail the tests (CI) rather than skip them.
pub fn require_services() -> bool {
    std::env::var("TESSERA_REQUIRE_SERVICES").as_deref() == Ok("1")
}

/// A test cannot run without `what`: a failure under [`require_services`], else a line
/// on stderr saying it was skipped.
pub fn skip(what: &str) {
    if require_services() {
        panic!("{what} is not available but TESSERA_REQUIRE_SERVICES=1 (run `bash .ci/services.sh`)");
    }
    eprintln!("skipped: {what} is not available (`eval \"$(bash .ci/services.sh)\"` provides it)");
}

fn service_env(name: &str, what: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            skip(&format!("{what} ({name})"));
            None
        }
    }
}

/// PostgreSQL: $TESSERA_TEST_POSTGRES_URL.
pub fn postgres_url() -> Option<String> {
    service_env("TESSERA_TEST_POSTGRES_URL", "PostgreSQL")
}

/// An S3-compatible endpoint (moto in CI): $TESSERA_TEST_S3_ENDPOINT.
pub fn s3_endpoint() -> Option<String> {
    service_env("TESSERA_TEST_S3_ENDPOINT", "an S3 endpoint")
}

/// The venv's Python ($TESSERA_CI_VENV, else /tmp/tessera-ci-venv) when it can import
/// `module` (the openai SDK, selenium, c2pa).
pub fn venv_python(module: &str) -> Option<PathBuf> {
    let venv = std::env::var("TESSERA_CI_VENV").unwrap_or_else(|_| "/tmp/tessera-ci-venv".into());
    let py = Path::new(&venv).join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", &format!("import {module}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(py)
}

/// Whether `ffmpeg` runs.
pub fn has_ffmpeg() -> bool {
    Command::new("ffmpeg").arg("-version").output().is_ok_and(|o| o.status.success())
}
