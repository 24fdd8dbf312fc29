//! `tessera verify FILE [--json]`: what provenance a file carries. Exit code 0 whatever is
//! found; nonzero only when the file cannot be read.
//!
//! The watermark is looked for in up to 96 consecutive frames (8 s at 12 fps). The C2PA
//! manifest is read and validated with the c2pa crate (tessera_media::provenance); the
//! local CA of `tessera keys init` (--keys, else $TESSERA_KEYS, else the default folder),
//! when there is one, is its trust anchor, so `trusted` says whether this machine's
//! keys signed the file. `valid` is about the manifest itself (signature, certificate
//! profile, content hashes), whoever signed it.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use clap::Args;
use serde_json::json;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// An MP4, GIF, PNG or JPEG file.
    file: PathBuf,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// The keys folder whose CA counts as trusted [default: $TESSERA_KEYS, else
    /// ~/.config/tessera/keys].
    #[arg(long, value_name = "DIR")]
    keys: Option<PathBuf>,
}

pub fn run(args: VerifyArgs) -> Result<()> {
    let bytes = std::fs::read(&args.file).map_err(|e| anyhow!("cannot read {}: {e}", args.file.display()))?;
    let anchors = crate::keys::resolve(args.keys.as_deref()).ok().and_then(|d| tessera_media::keys::ca_pem(&d));
    let mime = tessera_media::provenance::mime_of(&args.file).unwrap_or("application/octet-stream");
    let c2pa = tessera_media::provenance::read(&bytes, mime, anchors.as_deref());
    // Frames that do not decode (a damaged stream) still leave the manifest to report,
    // which then says the content no longer matches; without one, it is an error.
    let (d, decode_error) = match tessera_media::read_video(&args.file) {
        Ok((frames, _)) => (tessera_media::watermark::detect(&frames, 96), None),
        Err(e) if c2pa.present => {
            let none = tessera_media::watermark::Detection {
                detected: false,
                payload: None,
                confidence: 0.0,
                cell: 0.0,
                bits: 0,
            };
            (none, Some(e.to_string()))
        }
        Err(e) => return Err(anyhow!("{e}")),
    };
    let payload = d
        .payload
        .map(|p| json!({"mark": format!("{:04x}", tessera_media::watermark::MARK), "id": format!("{:08x}", p.id)}));
    if args.json {
        let out = json!({
            "file": args.file.display().to_string(),
            "c2pa": {
                "checked": true,
                "present": c2pa.present,
                "valid": c2pa.present.then_some(c2pa.valid),
                "trusted": c2pa.present.then_some(c2pa.trusted),
                "state": c2pa.state,
                "issuer": c2pa.issuer,
                "signer": c2pa.signer,
                "generator": c2pa.generator,
                "actions": c2pa.actions,
                "generation": c2pa.generation,
                "codes": {"failure": c2pa.failures, "success": c2pa.successes, "informational": c2pa.informational},
                "error": c2pa.error,
            },
            "watermark": {"detected": d.detected, "confidence": d.confidence, "payload": payload, "error": decode_error},
        });
        println!("{out}");
    } else {
        println!("{}", args.file.display());
        match d.payload {
            _ if decode_error.is_some() => println!(
                "  watermark: not checked, the frames do not decode ({})",
                decode_error.as_deref().unwrap_or_default()
            ),
            Some(p) => {
                println!("  watermark: detected, tessera generation id {:08x} (confidence {:.2})", p.id, d.confidence)
            }
            None => println!("  watermark: not detected (confidence {:.2})", d.confidence),
        }
        if let Some(e) = &c2pa.error {
            println!("  C2PA: a manifest store is there but cannot be read: {e}");
        } else if !c2pa.present {
            println!("  C2PA: no manifest");
        } else {
            let validity = match (c2pa.valid, c2pa.trusted) {
                (true, true) => "valid, signed by a trusted CA (this machine's tessera keys)".to_string(),
                (true, false) => "valid signature and hashes, signer not in the trust list".to_string(),
                (false, _) => format!("INVALID ({})", c2pa.failures.join(", ")),
            };
            println!("  C2PA: {validity}");
            println!(
                "    signed by {} ({})",
                c2pa.signer.as_deref().unwrap_or("?"),
                c2pa.issuer.as_deref().unwrap_or("?")
            );
            if let Some(g) = &c2pa.generator {
                println!("    generator: {g}");
            }
            for a in &c2pa.actions {
                let source = a["digitalSourceType"].as_str().and_then(|s| s.rsplit('/').next()).unwrap_or("-");
                println!("    action: {} (source: {source})", a["action"].as_str().unwrap_or("?"));
            }
            if let Some(g) = &c2pa.generation {
                println!(
                    "    model {}, task {}, prompt sha256 {}",
                    g["model"].as_str().unwrap_or("?"),
                    g["task"].as_str().unwrap_or("?"),
                    g["prompt_sha256"].as_str().unwrap_or("?")
                );
                if let Some(p) = g["prompt"].as_str() {
                    println!("    prompt: {p}");
                }
            }
        }
    }
    Ok(())
}
