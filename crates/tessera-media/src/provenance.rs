//! C2PA manifests (issue 7): what tessera signs into every MP4, PNG and GIF it writes, and
//! what `tessera verify` reads back. The c2pa crate (0.90, pure-Rust crypto) does the
//! embedding (BMFF `uuid` box, PNG `caBX` chunk, GIF application extension) and the
//! validation; this module decides what the manifest says.
//!
//! The manifest: one `c2pa.actions` assertion with a `c2pa.created` action whose digital
//! source type is IPTC's trainedAlgorithmicMedia and whose software agent is tessera and
//! its version, and an `org.tessera.generation` assertion with the model, the task, the
//! SHA-256 of the prompt (the prompt itself only when asked) and the watermark's
//! generation id, so the two marks can be matched. No timestamp authority is asked (that
//! would need the network), so the signature is only as current as the certificate.

use std::io::Cursor;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::keys::Credentials;
use crate::{Error, Result};

/// IPTC's digital source type for media made by a trained model.
pub const TRAINED_ALGORITHMIC_MEDIA: &str = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";
/// The label of tessera's own assertion.
pub const GENERATION_LABEL: &str = "org.tessera.generation";

/// What a generation was: the facts the manifest records.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// The generator's version (the tessera binary's).
    pub version: String,
    /// The model's name (its folder's name, or the built-in model's).
    pub model: String,
    /// text-to-video, text-to-image, image-to-video, extend-forward, ...
    pub task: String,
    /// The prompt as the user gave it.
    pub prompt: String,
    /// Whether the prompt's text goes into the manifest (else only its hash).
    pub include_prompt: bool,
    /// The invisible watermark's generation id, when the frames carry one.
    pub watermark_id: Option<u32>,
}

/// A claim and the credentials to sign it with: everything a writer needs.
#[derive(Debug, Clone)]
pub struct Signing {
    pub claim: Claim,
    pub credentials: Credentials,
}

pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl Claim {
    /// The manifest definition, as the c2pa crate's Builder takes it.
    pub fn definition(&self, title: &str, mime: &str) -> Value {
        let agent = json!({"name": "tessera", "version": self.version});
        let mut generation = json!({
            "model": self.model,
            "task": self.task,
            "prompt_sha256": sha256_hex(&self.prompt),
        });
        if self.include_prompt {
            generation["prompt"] = json!(self.prompt);
        }
        if let Some(id) = self.watermark_id {
            generation["watermark_id"] = json!(format!("{id:08x}"));
        }
        json!({
            "claim_generator_info": [agent],
            "title": title,
            "format": mime,
            "assertions": [
                {
                    "label": "c2pa.actions",
                    "data": {"actions": [{
                        "action": "c2pa.created",
                        "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                        "softwareAgent": agent,
                        "parameters": {"description": format!("{} with the model {}", self.task, self.model)},
                    }]},
                },
                {"label": GENERATION_LABEL, "data": generation},
            ],
        })
    }
}

/// The MIME type c2pa knows a file kind by, if tessera signs that kind.
pub fn mime_of(path: &std::path::Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "mp4" => Some("video/mp4"),
        "png" => Some("image/png"),
        "gif" => Some("image/gif"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        _ => None,
    }
}

fn c2pa_err(what: &str) -> impl Fn(c2pa::Error) -> Error + '_ {
    move |e| Error::Invalid(format!("C2PA: {what}: {e}"))
}

impl Signing {
    /// `bytes` (a complete file of type `mime`) with a signed manifest embedded.
    pub fn sign(&self, bytes: &[u8], mime: &str, title: &str) -> Result<Vec<u8>> {
        let signer = c2pa::create_signer::from_keys(
            &self.credentials.chain_pem,
            &self.credentials.key_pem,
            c2pa::SigningAlg::Es256,
            None,
        )
        .map_err(c2pa_err("the signing key or certificate is not usable (run `tessera keys init --force`)"))?;
        let context = c2pa::Context::new();
        let mut builder = c2pa::Builder::from_context(context)
            .with_definition(self.claim.definition(title, mime).to_string())
            .map_err(c2pa_err("the manifest definition"))?;
        let mut out = Cursor::new(Vec::with_capacity(bytes.len() + 32 * 1024));
        builder.sign(signer.as_ref(), mime, &mut Cursor::new(bytes), &mut out).map_err(c2pa_err("signing"))?;
        Ok(out.into_inner())
    }
}

/// What a file's C2PA manifest store says, as `tessera verify` reports it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// A manifest store was found.
    pub present: bool,
    /// The active manifest's signature, certificate profile and content hashes check out
    /// (c2pa's validation state is Valid or Trusted; an untrusted signer does not count
    /// against it).
    pub valid: bool,
    /// The signer chains to a trust anchor given to [`read`] (for tessera: the local CA).
    pub trusted: bool,
    /// c2pa's validation state: Invalid, Valid or Trusted.
    pub state: Option<String>,
    /// The signing certificate's issuer (organisation) and common name.
    pub issuer: Option<String>,
    pub signer: Option<String>,
    /// The claim generator (name and version).
    pub generator: Option<String>,
    /// The actions, as c2pa's JSON reports them.
    pub actions: Vec<Value>,
    /// tessera's generation assertion, if any.
    pub generation: Option<Value>,
    /// Validation codes of the active manifest, by kind.
    pub failures: Vec<String>,
    pub successes: Vec<String>,
    pub informational: Vec<String>,
    /// Why no manifest could be read, when one could not.
    pub error: Option<String>,
}

/// Reads and validates the manifest store in `bytes` (a file of type `mime`).
/// `anchors`: extra trust anchors (PEM), e.g. the local CA of `tessera keys init`.
pub fn read(bytes: &[u8], mime: &str, anchors: Option<&str>) -> Report {
    let mut report = Report::default();
    let settings = match anchors {
        Some(pem) => json!({"verify": {"verify_trust": true}, "trust": {"user_anchors": pem}}),
        None => json!({"verify": {"verify_trust": true}}),
    };
    let context = match c2pa::Context::new().with_settings(settings.to_string().as_str()) {
        Ok(c) => c,
        Err(e) => {
            report.error = Some(format!("C2PA settings: {e}"));
            return report;
        }
    };
    let reader = match c2pa::Reader::from_context(context).with_stream(mime, Cursor::new(bytes)) {
        Ok(r) => r,
        Err(c2pa::Error::JumbfNotFound) => return report,
        Err(e) => {
            report.error = Some(e.to_string());
            return report;
        }
    };
    report.present = true;
    let state = reader.validation_state();
    report.state = Some(format!("{state:?}"));
    report.valid = matches!(state, c2pa::ValidationState::Valid | c2pa::ValidationState::Trusted);
    report.trusted = matches!(state, c2pa::ValidationState::Trusted);
    if let Some(codes) = reader.validation_results().and_then(|r| r.active_manifest()) {
        let list = |v: &Vec<c2pa::validation_status::ValidationStatus>| {
            v.iter().map(|s| s.code().to_string()).collect::<Vec<_>>()
        };
        report.failures = list(codes.failure());
        report.successes = list(codes.success());
        report.informational = list(codes.informational());
    }
    let store: Value = serde_json::from_str(&reader.json()).unwrap_or(Value::Null);
    let Some(manifest) = store["active_manifest"].as_str().map(|l| &store["manifests"][l]) else {
        return report;
    };
    report.issuer = manifest["signature_info"]["issuer"].as_str().map(String::from);
    report.signer = manifest["signature_info"]["common_name"].as_str().map(String::from);
    report.generator = manifest["claim_generator_info"][0]["name"].as_str().map(|n| {
        match manifest["claim_generator_info"][0]["version"].as_str() {
            Some(v) => format!("{n} {v}"),
            None => n.to_string(),
        }
    });
    for a in manifest["assertions"].as_array().into_iter().flatten() {
        let label = a["label"].as_str().unwrap_or_default();
        if label == "c2pa.actions" || label.starts_with("c2pa.actions.v") {
            report.actions.extend(a["data"]["actions"].as_array().into_iter().flatten().cloned());
        } else if label == GENERATION_LABEL {
            report.generation = Some(a["data"].clone());
        }
    }
    report
}
