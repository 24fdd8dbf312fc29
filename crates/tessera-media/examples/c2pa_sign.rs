//! The cost of C2PA signing and verifying: `cargo run --release -p tessera-media --example
//! c2pa_sign [N]`. Makes throwaway keys, encodes a 5 s 128x128 clip (the built-in model's
//! size, 12 fps), a 5 s 832x480 clip (Wan's default size, 16 fps) and a 128x128 PNG, then
//! times N signings and N reads (with validation) of each, in memory.

use std::time::Instant;

use tessera_media::provenance::{self, Claim, Signing};
use tessera_media::{keys, write_video, Frame, WriteOptions};

fn clip(w: usize, h: usize, n: usize) -> Vec<Frame> {
    (0..n)
        .map(|t| {
            let px = (0..w * h).flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [((x + 2 * t) % 256) as u8, ((y * 2) % 256) as u8, (((x + y) / 2 + t) % 256) as u8]
            });
            Frame::new(w, h, px.collect()).unwrap()
        })
        .collect()
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let dir = std::env::temp_dir().join(format!("tessera-c2pa-bench-{}", std::process::id()));
    keys::init(&dir.join("keys"), "tessera", false).unwrap();
    let signing = Signing {
        claim: Claim {
            version: "bench".into(),
            model: "tessera-world".into(),
            task: "text-to-video".into(),
            prompt: "a red ball".into(),
            include_prompt: false,
            watermark_id: Some(1),
        },
        credentials: keys::load(&dir.join("keys")).unwrap(),
    };
    let ca = keys::ca_pem(&dir.join("keys")).unwrap();
    for (name, frames, fps, ext) in [
        ("MP4 128x128, 61 frames", clip(128, 128, 61), 12.0, "mp4"),
        ("MP4 832x480, 81 frames", clip(832, 480, 81), 16.0, "mp4"),
        ("PNG 128x128", clip(128, 128, 1), 1.0, "png"),
    ] {
        let path = dir.join(format!("a.{ext}"));
        write_video(&path, &frames, fps, &WriteOptions::default()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let mime = provenance::mime_of(&path).unwrap();
        let t = Instant::now();
        let mut signed = Vec::new();
        for _ in 0..n {
            signed = signing.sign(&bytes, mime, "a").unwrap();
        }
        let sign_ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
        let t = Instant::now();
        for _ in 0..n {
            let r = provenance::read(&signed, mime, Some(&ca));
            assert!(r.trusted, "{r:?}");
        }
        let read_ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
        println!(
            "{name}: {} -> {} bytes, sign {sign_ms:.1} ms, read+validate {read_ms:.1} ms",
            bytes.len(),
            signed.len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
