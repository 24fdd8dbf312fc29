//! Round trips through every format, checked by decoding what was written, plus the MP4
//! container's structure checked by an independent box walker.

use std::path::{Path, PathBuf};

use tessera_media::{
    frames_from_f32, mp4_top_level_boxes, read_video, write_video, Frame, Quality, Video, WriteOptions,
};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-media-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// A smooth colour gradient drifting over time: the kind of content generated video has.
fn gradient(w: usize, h: usize, n: usize) -> Vec<Frame> {
    let tau = std::f32::consts::TAU;
    (0..n)
        .map(|t| {
            let t = t as f32;
            let mut d = Vec::with_capacity(w * h * 3);
            for y in 0..h {
                for x in 0..w {
                    let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
                    let r = 128.0 + 100.0 * (tau * (fx + t / 24.0)).sin();
                    let g = 128.0 + 90.0 * (tau * (0.7 * fy - t / 36.0) + 1.0).sin();
                    let b = 128.0 + 100.0 * (tau * 0.8 * (fx + fy) + t / 10.0).cos();
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

/// Walks an MP4's boxes, checking that every size adds up: each container's children
/// fill it exactly. Returns (path, payload offset, payload length) for every box.
fn walk(data: &[u8], start: usize, end: usize, path: &str, out: &mut Vec<(String, usize, usize)>) {
    const CONTAINERS: [&str; 7] = ["moov", "trak", "mdia", "minf", "dinf", "stbl", "avc1"];
    let mut p = start;
    while p < end {
        assert!(p + 8 <= end, "{path}: a box header runs past its parent");
        let size = u32::from_be_bytes(data[p..p + 4].try_into().unwrap()) as usize;
        let kind = String::from_utf8_lossy(&data[p + 4..p + 8]).into_owned();
        assert!(size >= 8 && p + size <= end, "{path}/{kind}: size {size} overruns its parent");
        let here = format!("{path}/{kind}");
        out.push((here.clone(), p + 8, size - 8));
        let skip = match kind.as_str() {
            "stsd" | "dref" => 8, // full box header and entry count
            "avc1" => 78,         // visual sample entry fields
            _ => 0,
        };
        if CONTAINERS.contains(&kind.as_str()) || skip > 0 {
            walk(data, p + 8 + skip, p + size, &here, out);
        }
        p += size;
    }
    assert_eq!(p, end, "{path}: children do not fill it");
}

fn be32(d: &[u8], at: usize) -> usize {
    u32::from_be_bytes(d[at..at + 4].try_into().unwrap()) as usize
}

#[test]
fn mp4_round_trip_keeps_frames_size_and_rate() {
    let dir = scratch("mp4");
    let frames = gradient(96, 64, 17);
    let path = dir.join("a.mp4");
    write_video(&path, &frames, 16.0, &WriteOptions::default()).unwrap();
    let (back, fps) = read_video(&path).unwrap();
    assert_eq!(back.len(), 17);
    assert_eq!((back[0].width, back[0].height), (96, 64));
    assert!((fps - 16.0).abs() < 1e-9, "fps {fps}");
    // Measured: 43.1 dB at the default quality (QP 16).
    let p = mean_psnr(&frames, &back);
    assert!(p >= 40.0, "PSNR {p:.1} dB");
    let worst = frames.iter().zip(&back).map(|(a, b)| a.psnr(b)).fold(f64::INFINITY, f64::min);
    assert!(worst >= 35.0, "worst frame {worst:.1} dB");
    assert_eq!(files_in(&dir), vec!["a.mp4"], "no temporary file left");
}

#[test]
fn mp4_index_precedes_data_and_box_sizes_add_up() {
    let dir = scratch("boxes");
    let path = dir.join("a.mp4");
    write_video(&path, &gradient(64, 48, 40), 24.0, &WriteOptions::default()).unwrap();
    // Fast start: the index comes before the data.
    assert_eq!(mp4_top_level_boxes(&path).unwrap(), vec!["ftyp", "moov", "mdat"]);
    let data = std::fs::read(&path).unwrap();
    let mut boxes = Vec::new();
    walk(&data, 0, data.len(), "", &mut boxes);
    let find = |p: &str| {
        boxes.iter().find(|(q, _, _)| q == p).map(|&(_, at, len)| (at, len)).unwrap_or_else(|| panic!("no {p}"))
    };
    let stbl = "/moov/trak/mdia/minf/stbl";
    for p in ["/moov/mvhd", "/moov/trak/tkhd", "/moov/trak/mdia/mdhd", "/moov/trak/mdia/hdlr"] {
        find(p);
    }
    find("/moov/trak/mdia/minf/vmhd");
    find("/moov/trak/mdia/minf/dinf/dref");
    find(&format!("{stbl}/stsd/avc1/avcC"));
    // All 40 samples are listed and lie, back to back, exactly inside mdat.
    let (stsz, _) = find(&format!("{stbl}/stsz"));
    assert_eq!(be32(&data, stsz + 8), 40);
    let total: usize = (0..40).map(|i| be32(&data, stsz + 12 + 4 * i)).sum();
    let (mdat, mdat_len) = find("/mdat");
    let (stco, _) = find(&format!("{stbl}/stco"));
    assert_eq!(be32(&data, stco + 4), 1, "one chunk");
    assert_eq!(be32(&data, stco + 8), mdat, "the chunk starts where mdat's payload does");
    assert_eq!(total, mdat_len);
    // The first sample is a sync sample; the first NAL unit is an IDR slice (type 5).
    let (stss, _) = find(&format!("{stbl}/stss"));
    assert_eq!(be32(&data, stss + 8), 1);
    assert_eq!(data[mdat + 4] & 0x1F, 5);
    // 24 fps as timescale 24000 and 1000 per frame.
    let (stts, _) = find(&format!("{stbl}/stts"));
    assert_eq!((be32(&data, stts + 8), be32(&data, stts + 12)), (40, 1000));
}

#[test]
fn mp4_odd_size_is_padded_and_cropped_back() {
    let dir = scratch("odd");
    let frames = gradient(33, 17, 3);
    let path = dir.join("odd.mp4");
    write_video(&path, &frames, 24.0, &WriteOptions::default()).unwrap();
    let (back, _) = read_video(&path).unwrap();
    assert_eq!(back.len(), 3);
    assert_eq!((back[0].width, back[0].height), (33, 17));
    let p = mean_psnr(&frames, &back);
    assert!(p >= 35.0, "PSNR {p:.1} dB");
    let data = std::fs::read(&path).unwrap();
    assert!(data.windows(4).any(|w| w == b"clap"), "clean aperture signalled");
}

#[test]
fn mp4_single_frame_and_ntsc_rate() {
    let dir = scratch("one");
    let frames = gradient(48, 32, 1);
    let path = dir.join("one.mp4");
    let ntsc = 24000.0 / 1001.0;
    write_video(&path, &frames, ntsc, &WriteOptions::default()).unwrap();
    let (back, fps) = read_video(&path).unwrap();
    assert_eq!(back.len(), 1);
    assert!((fps - ntsc).abs() < 1e-9, "fps {fps}");
    assert!(frames[0].psnr(&back[0]) >= 35.0);
}

#[test]
fn mp4_quality_knob_trades_size_for_fidelity() {
    let dir = scratch("quality");
    let frames = gradient(96, 64, 8);
    let mut sizes = Vec::new();
    let mut psnrs = Vec::new();
    for q in [Quality::High, Quality::Low] {
        let path = dir.join("q.mp4");
        write_video(&path, &frames, 8.0, &WriteOptions { quality: q, ..Default::default() }).unwrap();
        sizes.push(std::fs::metadata(&path).unwrap().len());
        psnrs.push(mean_psnr(&frames, &read_video(&path).unwrap().0));
    }
    assert!(sizes[0] > sizes[1] && psnrs[0] > psnrs[1], "{sizes:?} {psnrs:?}");
}

/// A file from ffmpeg/libx264 (tests/fixtures, made by the command in README.md there):
/// High profile with B-frames in a pyramid, an AAC track before the video track, moov
/// after mdat. Reference: ffmpeg's decoded luma planes.
#[test]
fn reads_x264_files_with_b_frames_and_audio() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let (frames, fps) = read_video(&fixtures.join("x264_bframes_audio_first.mp4")).unwrap();
    assert_eq!(frames.len(), 14);
    assert_eq!((frames[0].width, frames[0].height), (64, 48));
    assert_eq!(fps, 12.0);
    let luma = std::fs::read(fixtures.join("x264_bframes_audio_first.y")).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let reference = &luma[i * 64 * 48..(i + 1) * 64 * 48];
        // Y' from our RGB with the BT.601 weights, vs the decoder's own Y' plane.
        let diff = f
            .data
            .chunks(3)
            .zip(reference)
            .map(|(p, &y)| {
                let ours = 16.0 + 219.0 / 255.0 * (0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64);
                (ours - y as f64).abs()
            })
            .sum::<f64>()
            / reference.len() as f64;
        // Measured 0.9..2.6 (RGB clipping of saturated colours); out of order: 28..56.
        assert!(diff < 4.0, "frame {i}: mean luma difference {diff:.2}");
    }
}

#[test]
fn gif_and_png_round_trip() {
    let dir = scratch("gifpng");
    let frames = gradient(40, 24, 5);
    let g = dir.join("a.gif");
    write_video(&g, &frames, 10.0, &WriteOptions::default()).unwrap();
    let (back, fps) = read_video(&g).unwrap();
    assert_eq!(back.len(), 5);
    assert!((fps - 10.0).abs() < 0.01, "fps {fps}");
    // Measured: ~37 dB here; 32.5 dB at 832x480 (PIL, as diffusers uses: 30.5 dB).
    let p = mean_psnr(&frames, &back);
    assert!(p >= 30.0, "GIF PSNR {p:.1} dB");
    let p = dir.join("a.png");
    write_video(&p, &frames, 10.0, &WriteOptions::default()).unwrap();
    let (back, _) = read_video(&p).unwrap();
    assert_eq!(back, vec![frames[0].clone()]);
}

#[test]
fn pipeline_f32_output_writes_as_video() {
    let dir = scratch("f32");
    // (T, H, W, 3) in [0, 1]: two 16x16 frames, black then white.
    let mut data = vec![0f32; 2 * 16 * 16 * 3];
    data[16 * 16 * 3..].fill(1.0);
    let video = Video::from_f32(&data, 2, 16, 16, 8.0).unwrap();
    assert_eq!(video.frames, frames_from_f32(&data, 2, 16, 16).unwrap());
    let path = dir.join("v.png");
    video.write(&path, &WriteOptions::default()).unwrap();
    assert_eq!(Video::read(&path).unwrap().frames[0].data, vec![0; 16 * 16 * 3]);
}

#[test]
fn failed_writes_leave_nothing_behind() {
    let dir = scratch("atomic");
    let frames = gradient(16, 16, 2);
    let opts = WriteOptions::default();
    // No such folder: the temporary file cannot even be created.
    assert!(write_video(&dir.join("no/such/folder/a.mp4"), &frames, 10.0, &opts).is_err());
    // The target is a folder: the temporary file is written, the rename fails.
    std::fs::create_dir(dir.join("taken.gif")).unwrap();
    let e = write_video(&dir.join("taken.gif"), &frames, 10.0, &opts).unwrap_err();
    assert!(e.to_string().contains("taken.gif"), "{e}");
    // The encoder refuses: too small for H.264. An existing file stays as it was.
    std::fs::write(dir.join("small.mp4"), b"old").unwrap();
    let e = write_video(&dir.join("small.mp4"), &gradient(8, 8, 1), 10.0, &opts).unwrap_err();
    assert!(e.to_string().contains("small.mp4") && e.to_string().contains("16x16"), "{e}");
    assert_eq!(std::fs::read(dir.join("small.mp4")).unwrap(), b"old");
    assert_eq!(files_in(&dir), vec!["small.mp4", "taken.gif"]);
}

#[test]
fn bad_paths_and_inputs_are_clear_errors() {
    let dir = scratch("bad");
    let frames = gradient(16, 16, 2);
    let opts = WriteOptions::default();
    let e = write_video(&dir.join("a.avi"), &frames, 10.0, &opts).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("a.avi") && msg.contains(".mp4, .gif or .png"), "{msg}");
    let e = write_video(&dir.join("a.mp4"), &frames, 0.0, &opts).unwrap_err();
    assert!(e.to_string().contains("a.mp4"), "{e}");
    let e = write_video(&dir.join("a.mp4"), &[], 10.0, &opts).unwrap_err();
    assert!(e.to_string().contains("a.mp4"), "{e}");
    std::fs::write(dir.join("junk.mp4"), b"not a video").unwrap();
    let e = read_video(&dir.join("junk.mp4")).unwrap_err();
    assert!(e.to_string().contains("junk.mp4"), "{e}");
    let e = read_video(&dir.join("missing.gif")).unwrap_err();
    assert!(e.to_string().contains("missing.gif"), "{e}");
}

/// Only where ffprobe is installed (never needed): the stream is standard H.264 that
/// ffmpeg reads with the right frame count and rate.
#[test]
fn ffprobe_accepts_our_mp4_if_present() {
    let Ok(out) = std::process::Command::new("ffprobe").arg("-version").output() else {
        eprintln!("ffprobe not installed; skipped");
        return;
    };
    assert!(out.status.success());
    let dir = scratch("ffprobe");
    let path = dir.join("a.mp4");
    write_video(&path, &gradient(64, 48, 12), 12.0, &WriteOptions::default()).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .arg("stream=codec_name,pix_fmt,nb_read_frames,r_frame_rate,color_space")
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    for want in
        ["codec_name=h264", "pix_fmt=yuv420p", "nb_read_frames=12", "r_frame_rate=12/1", "color_space=smpte170m"]
    {
        assert!(text.contains(want), "{want} not in\n{text}");
    }
}
