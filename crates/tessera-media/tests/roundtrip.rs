//! Round trips through every format, checked by decoding what was written.

use std::path::PathBuf;

use tessera_media::{mp4_top_level_boxes, read_video, write_video, Frame, WriteOptions};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-media-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A smooth moving colour gradient with a square: camera-like content.
fn clip(w: usize, h: usize, n: usize) -> Vec<Frame> {
    (0..n)
        .map(|t| {
            let mut d = Vec::with_capacity(w * h * 3);
            for y in 0..h {
                for x in 0..w {
                    let fx = x as f32 / w as f32;
                    let fy = y as f32 / h as f32;
                    let inside = (x + 3 * t) % w < w / 4 && y > h / 3 && y < h / 2;
                    let (r, g, b) = if inside {
                        (220.0, 40.0, 40.0)
                    } else {
                        (
                            60.0 + 150.0 * fx,
                            80.0 + 120.0 * fy,
                            200.0 - 100.0 * (fx + 0.02 * t as f32).fract(),
                        )
                    };
                    d.extend([r as u8, g as u8, b as u8]);
                }
            }
            Frame::new(w, h, d).unwrap()
        })
        .collect()
}

fn mean_psnr(a: &[Frame], b: &[Frame]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x.psnr(y)).sum::<f64>() / a.len() as f64
}

#[test]
fn mp4_round_trip_keeps_frames_size_and_rate() {
    let dir = scratch("mp4");
    let frames = clip(96, 64, 17);
    let path = dir.join("a.mp4");
    write_video(&path, &frames, 16.0, &WriteOptions::default()).unwrap();
    let (back, fps) = read_video(&path).unwrap();
    assert_eq!(back.len(), 17);
    assert_eq!((back[0].width, back[0].height), (96, 64));
    assert!((fps - 16.0).abs() < 1e-9, "fps {fps}");
    let p = mean_psnr(&frames, &back);
    assert!(p >= 35.0, "PSNR {p:.1} dB");
    // Fast start: the index comes before the data.
    assert_eq!(
        mp4_top_level_boxes(&path).unwrap(),
        vec!["ftyp", "moov", "mdat"]
    );
}

#[test]
fn mp4_odd_size_and_single_frame() {
    let dir = scratch("odd");
    let frames = clip(33, 17, 1);
    let path = dir.join("odd.mp4");
    write_video(&path, &frames, 24.0, &WriteOptions::default()).unwrap();
    let (back, _) = read_video(&path).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].width, back[0].height), (33, 17));
    assert!(frames[0].psnr(&back[0]) >= 30.0);
}

#[test]
fn gif_and_png_round_trip() {
    let dir = scratch("gifpng");
    let frames = clip(40, 24, 5);
    let g = dir.join("a.gif");
    write_video(&g, &frames, 10.0, &WriteOptions::default()).unwrap();
    let (back, fps) = read_video(&g).unwrap();
    assert_eq!(back.len(), 5);
    assert!((fps - 10.0).abs() < 0.01, "fps {fps}");
    let p = mean_psnr(&frames, &back);
    assert!(p >= 25.0, "GIF PSNR {p:.1} dB");
    let p = dir.join("a.png");
    write_video(&p, &frames, 10.0, &WriteOptions::default()).unwrap();
    let (back, _) = read_video(&p).unwrap();
    assert_eq!(back, vec![frames[0].clone()]);
}

#[test]
fn bad_paths_are_clear_errors_and_leave_nothing() {
    let dir = scratch("bad");
    let frames = clip(16, 16, 2);
    let e = write_video(&dir.join("a.avi"), &frames, 10.0, &WriteOptions::default()).unwrap_err();
    assert!(e.to_string().contains("avi"), "{e}");
    let missing = dir.join("no/such/folder/a.mp4");
    assert!(write_video(&missing, &frames, 10.0, &WriteOptions::default()).is_err());
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "left files behind"
    );
    std::fs::write(dir.join("junk.mp4"), b"not a video").unwrap();
    let e = read_video(&dir.join("junk.mp4")).unwrap_err();
    assert!(e.to_string().contains("junk.mp4"), "{e}");
}
