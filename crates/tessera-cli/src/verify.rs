//! `tessera verify FILE [--json]`: what provenance a file carries. Exit code 0 whatever is
//! found; nonzero only when the file cannot be read.
//!
//! The watermark is looked for in up to 96 consecutive frames (8 s at 12 fps). C2PA manifests
//! are not read yet (C2PA signing is still to be built), which the output says rather
//! than claiming there is none.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use clap::Args;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// An MP4, GIF, PNG or JPEG file.
    file: PathBuf,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: VerifyArgs) -> Result<()> {
    let (frames, _) = tessera_media::read_video(&args.file).map_err(|e| anyhow!("{e}"))?;
    let d = tessera_media::watermark::detect(&frames, 96);
    let payload = d.payload.map(|p| serde_json::json!({"mark": format!("{:04x}", tessera_media::watermark::MARK), "id": format!("{:08x}", p.id)}));
    if args.json {
        let out = serde_json::json!({
            "file": args.file.display().to_string(),
            "c2pa": {"checked": false, "present": null, "valid": null, "issuer": null, "actions": []},
            "watermark": {"detected": d.detected, "confidence": d.confidence, "payload": payload},
        });
        println!("{out}");
    } else {
        println!("{}", args.file.display());
        match d.payload {
            Some(p) => println!("  watermark: detected, tessera generation id {:08x} (confidence {:.2})", p.id, d.confidence),
            None => println!("  watermark: not detected (confidence {:.2})", d.confidence),
        }
        println!("  C2PA: not checked (tessera does not read or write C2PA manifests yet)");
    }
    Ok(())
}
