//! Video and image files for tessera: MP4 (H.264 through OpenH264, with our own ISO BMFF
//! muxer and demuxer), GIF and PNG. Frames are plain RGB8 buffers; this crate knows
//! nothing of tensors. Writes are atomic: a temporary file beside the target is renamed
//! over it at the end, so a failure never leaves a partial output.

mod frame;
mod gif_io;
mod h264;
pub mod keys;
mod limits;
pub mod marks;
mod mp4;
mod png_io;
pub mod provenance;
mod quantize;
pub mod resize;
pub mod rng;
pub mod visible;
pub mod watermark;
mod yuv;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub use frame::{frames_from_f32, quantize, Frame, Video};
pub use h264::Quality;
pub use limits::{decode_limits, set_decode_limits, DecodeLimits};
pub use resize::{fit, resample, Fit};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path} has an unknown extension {ext:?}: use .mp4, .gif or .png")]
    UnknownExtension { path: PathBuf, ext: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Settings of the written file.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// H.264 quantiser for `.mp4` (GIF and PNG ignore it).
    pub quality: Quality,
    /// A C2PA manifest to sign into the file (MP4, PNG, GIF) before it is written.
    pub c2pa: Option<provenance::Signing>,
}

/// The encoded file, with its C2PA manifest when `opts` asks for one.
fn finish_bytes(path: &Path, bytes: Vec<u8>, opts: &WriteOptions) -> Result<Vec<u8>> {
    let Some(signing) = &opts.c2pa else { return Ok(bytes) };
    let mime = provenance::mime_of(path).ok_or_else(|| format_err(path, "C2PA: not a signable kind of file".into()))?;
    let title = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    signing.sign(&bytes, mime, &title).map_err(|e| format_err(path, e.to_string()))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Mp4,
    Gif,
    Png,
    /// Read only (inputs: images to animate).
    Jpeg,
}

fn kind(path: &Path) -> Result<Kind> {
    let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "mp4" => Ok(Kind::Mp4),
        "gif" => Ok(Kind::Gif),
        "png" => Ok(Kind::Png),
        "jpg" | "jpeg" => Ok(Kind::Jpeg),
        _ => Err(Error::UnknownExtension { path: path.to_path_buf(), ext }),
    }
}

/// The temporary file a write goes through: hidden, beside the target (the same folder,
/// so the final rename is atomic), unique per process and write.
pub fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{n}.partial", std::process::id()))
}

/// Writes `bytes` to `path` atomically: into a temporary file beside it, flushed to disk,
/// then renamed over it. On failure the temporary file is removed and `path` untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(source) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Write { path: path.to_path_buf(), source });
    }
    Ok(())
}

/// Writes frames as the extension says: `.mp4` (H.264), `.gif` (looping), `.png` (the
/// first frame: the image of a one-frame generation).
pub fn write_video(path: &Path, frames: &[Frame], fps: f64, opts: &WriteOptions) -> Result<()> {
    let bytes = encode_video(path, frames, fps, opts)?;
    write_atomic(path, &bytes)
}

/// The bytes [`write_video`] would write to `path` (whose extension picks the format and
/// whose name titles the C2PA manifest), kept in memory.
pub fn encode_video(path: &Path, frames: &[Frame], fps: f64, opts: &WriteOptions) -> Result<Vec<u8>> {
    let kind = kind(path)?;
    let first = frames.first().ok_or_else(|| Error::Invalid(format!("no frames to write to {}", path.display())))?;
    if frames.iter().any(|f| f.width != first.width || f.height != first.height) {
        return Err(Error::Invalid(format!("frames written to {} differ in size", path.display())));
    }
    if !(fps.is_finite() && fps > 0.0) {
        return Err(Error::Invalid(format!("frame rate {fps} for {} is not a positive number", path.display())));
    }
    let bytes = match kind {
        Kind::Mp4 => {
            let stream = h264::encode(frames, fps, opts.quality).map_err(|m| format_err(path, m))?;
            mp4::mux(&stream).map_err(|m| format_err(path, m))?
        }
        Kind::Gif => gif_io::encode(frames, fps).map_err(|m| format_err(path, m))?,
        Kind::Png => png_io::encode(first).map_err(|m| format_err(path, m))?,
        Kind::Jpeg => return Err(jpeg_not_written(path)),
    };
    finish_bytes(path, bytes, opts)
}

/// Writes a video frame by frame. MP4 keeps only the compressed stream in memory (so a
/// minute of large frames costs its file size, not its raw size); GIF and PNG keep the
/// frames until [`VideoWriter::finish`]. Nothing is written to `path` until then, and
/// then atomically.
pub struct VideoWriter {
    path: PathBuf,
    fps: f64,
    opts: WriteOptions,
    inner: WriterKind,
}

// One per writer, so the encoder's size is not worth a box.
#[allow(clippy::large_enum_variant)]
enum WriterKind {
    Mp4(Option<h264::StreamEncoder>),
    Frames(Vec<Frame>),
}

impl VideoWriter {
    pub fn create(path: &Path, fps: f64, opts: &WriteOptions) -> Result<Self> {
        let k = kind(path)?;
        if k == Kind::Jpeg {
            return Err(jpeg_not_written(path));
        }
        if !(fps.is_finite() && fps > 0.0) {
            return Err(Error::Invalid(format!("frame rate {fps} for {} is not a positive number", path.display())));
        }
        let inner = if k == Kind::Mp4 { WriterKind::Mp4(None) } else { WriterKind::Frames(Vec::new()) };
        Ok(VideoWriter { path: path.to_path_buf(), fps, opts: opts.clone(), inner })
    }

    pub fn push(&mut self, frame: Frame) -> Result<()> {
        let path = self.path.clone();
        match &mut self.inner {
            WriterKind::Mp4(enc) => {
                if enc.is_none() {
                    *enc = Some(
                        h264::StreamEncoder::new(frame.width, frame.height, self.fps, self.opts.quality)
                            .map_err(|m| format_err(&path, m))?,
                    );
                }
                enc.as_mut().unwrap().push(&frame).map_err(|m| format_err(&path, m))
            }
            WriterKind::Frames(v) => {
                v.push(frame);
                Ok(())
            }
        }
    }

    pub fn finish(self) -> Result<()> {
        match self.inner {
            WriterKind::Mp4(enc) => {
                let enc =
                    enc.ok_or_else(|| Error::Invalid(format!("no frames to write to {}", self.path.display())))?;
                let stream = enc.finish().map_err(|m| format_err(&self.path, m))?;
                let bytes = mp4::mux(&stream).map_err(|m| format_err(&self.path, m))?;
                let bytes = finish_bytes(&self.path, bytes, &self.opts)?;
                write_atomic(&self.path, &bytes)
            }
            WriterKind::Frames(frames) => write_video(&self.path, &frames, self.fps, &self.opts),
        }
    }
}

fn jpeg_not_written(path: &Path) -> Error {
    Error::Invalid(format!("{}: tessera reads JPEG but does not write it; use .mp4, .gif or .png", path.display()))
}

/// Baseline and progressive JPEG (jpeg-decoder), greyscale and CMYK converted to RGB8.
fn decode_jpeg(bytes: &[u8], limits: &DecodeLimits) -> std::result::Result<Frame, String> {
    let mut dec = jpeg_decoder::Decoder::new(std::io::Cursor::new(bytes));
    // The declared size is checked before the decoder allocates for it.
    dec.read_info().map_err(|e| format!("not a readable JPEG ({e})"))?;
    if let Some(i) = dec.info() {
        limits.check_frame(i.width as usize, i.height as usize)?;
    }
    let px = dec.decode().map_err(|e| format!("not a readable JPEG ({e})"))?;
    let info = dec.info().ok_or("not a readable JPEG (no header)")?;
    let (w, h) = (info.width as usize, info.height as usize);
    let rgb: Vec<u8> = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => px,
        jpeg_decoder::PixelFormat::L8 => px.iter().flat_map(|&v| [v, v, v]).collect(),
        jpeg_decoder::PixelFormat::L16 => px.chunks(2).flat_map(|v| [v[0], v[0], v[0]]).collect(),
        jpeg_decoder::PixelFormat::CMYK32 => px
            .chunks(4)
            .flat_map(|c| {
                let k = 255 - c[3] as u32;
                [c[0], c[1], c[2]].map(|v| ((255 - v as u32) * k / 255) as u8)
            })
            .collect(),
    };
    Frame::new(w, h, rgb).map_err(|e| e.to_string())
}

/// Reads all frames and the frame rate of an MP4 (H.264), GIF, PNG or JPEG (one frame,
/// 0 fps).
pub fn read_video(path: &Path) -> Result<(Vec<Frame>, f64)> {
    kind(path)?;
    let bytes = std::fs::read(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    decode_video(path, &bytes)
}

/// [`read_video`] of bytes already in memory (an upload, an object from storage): `path`
/// names them, its extension picking the format.
pub fn decode_video(path: &Path, bytes: &[u8]) -> Result<(Vec<Frame>, f64)> {
    decode_video_within(path, bytes, &decode_limits())
}

/// [`decode_video`] under the given limits instead of the process's.
pub fn decode_video_within(path: &Path, bytes: &[u8], limits: &DecodeLimits) -> Result<(Vec<Frame>, f64)> {
    let r = match kind(path)? {
        Kind::Mp4 => mp4::demux(bytes).and_then(|s| {
            // The sample table's claims are checked before any frame is decoded.
            limits.check_video(s.width, s.height, s.samples.len())?;
            h264::decode(&s).map(|f| (f, s.fps))
        }),
        Kind::Gif => gif_io::decode(bytes, limits),
        Kind::Png => png_io::decode(bytes, limits).map(|f| (vec![f], 0.0)),
        Kind::Jpeg => decode_jpeg(bytes, limits).map(|f| (vec![f], 0.0)),
    };
    r.map_err(|m| format_err(path, m))
}

/// The top-level boxes of an MP4 file in order, e.g. ["ftyp", "moov", "mdat"].
pub fn mp4_top_level_boxes(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    mp4::top_level_boxes(&bytes).map_err(|m| format_err(path, m))
}

fn format_err(path: &Path, message: String) -> Error {
    Error::Format { path: path.to_path_buf(), message }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    /// CRC-32 (ISO-HDLC), as PNG chunks carry it.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }

    /// Files that declare sizes far past the limits, in a few bytes, are refused with the
    /// limit named, before anything is allocated for them (a 65535x65535 canvas would be
    /// 17 GB).
    #[test]
    fn files_declaring_huge_sizes_are_refused_before_allocating() {
        let limits = DecodeLimits::default();
        let tiny = Frame::new(2, 2, vec![200; 12]).unwrap();
        // GIF: the logical screen (bytes 6..10, little-endian) claims 65535x65535.
        let mut gif =
            encode_video(Path::new("a.gif"), std::slice::from_ref(&tiny), 10.0, &WriteOptions::default()).unwrap();
        gif[6..10].copy_from_slice(&[0xFF; 4]);
        let e = decode_video_within(Path::new("a.gif"), &gif, &limits).unwrap_err().to_string();
        assert!(e.contains("65535x65535") && e.contains("--max-input-pixels"), "{e}");
        // PNG: IHDR's width and height (bytes 16..24, big-endian), its CRC made right.
        let mut png =
            encode_video(Path::new("a.png"), std::slice::from_ref(&tiny), 1.0, &WriteOptions::default()).unwrap();
        assert_eq!(&png[12..16], b"IHDR");
        png[16..24].copy_from_slice(&[0, 0, 0xFF, 0xFF, 0, 0, 0xFF, 0xFF]);
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let e = decode_video_within(Path::new("a.png"), &png, &limits).unwrap_err().to_string();
        assert!(e.contains("65535x65535"), "{e}");
        // MP4: the sample table's frame count and the decoded size, against lower limits.
        let frames = vec![Frame::new(16, 16, vec![90; 16 * 16 * 3]).unwrap(); 5];
        let mp4 = encode_video(Path::new("a.mp4"), &frames, 10.0, &WriteOptions::default()).unwrap();
        let few = DecodeLimits { max_frames: 4, ..limits };
        let e = decode_video_within(Path::new("a.mp4"), &mp4, &few).unwrap_err().to_string();
        assert!(e.contains("5 frames") && e.contains("--max-input-frames"), "{e}");
        let small = DecodeLimits { max_bytes: 16 * 16 * 3 * 4, ..limits };
        let e = decode_video_within(Path::new("a.mp4"), &mp4, &small).unwrap_err().to_string();
        assert!(e.contains("--max-input-mib"), "{e}");
        // A GIF's frames count against the limits as they come.
        let gif5 = encode_video(Path::new("b.gif"), &frames, 10.0, &WriteOptions::default()).unwrap();
        assert!(decode_video_within(Path::new("b.gif"), &gif5, &few).is_err());
        // Within the limits, all of them read.
        assert_eq!(decode_video_within(Path::new("a.mp4"), &mp4, &limits).unwrap().0.len(), 5);
        assert_eq!(decode_video_within(Path::new("b.gif"), &gif5, &limits).unwrap().0.len(), 5);
    }
}

#[cfg(test)]
mod writer_tests {
    use super::*;

    #[test]
    fn streaming_writer_matches_the_whole_video_writer() {
        let frames: Vec<Frame> = (0..10)
            .map(|t| Frame::new(32, 16, (0..32 * 16 * 3).map(|i| ((i * 7 + t * 13) % 256) as u8).collect()).unwrap())
            .collect();
        let dir = std::env::temp_dir().join(format!("tessera-media-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for ext in ["mp4", "gif"] {
            let (a, b) = (dir.join(format!("a.{ext}")), dir.join(format!("b.{ext}")));
            write_video(&a, &frames, 12.0, &WriteOptions::default()).unwrap();
            let mut w = VideoWriter::create(&b, 12.0, &WriteOptions::default()).unwrap();
            for f in &frames {
                w.push(f.clone()).unwrap();
            }
            assert!(!b.exists(), "nothing written before finish");
            w.finish().unwrap();
            assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "{ext}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
