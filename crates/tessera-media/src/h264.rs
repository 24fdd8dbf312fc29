//! H.264 (ITU-T H.264) encode and decode with OpenH264, built from the source bundled in the
//! `openh264` crate (plain C when `nasm` is absent, so the build needs no network).
//!
//! The encoder's Annex B byte stream is split into NAL units: parameter sets go to the
//! MP4's `avcC` box and each frame's other NAL units become one sample of length-prefixed
//! NAL units (ISO/IEC 14496-15 §5.3). The decoder takes such samples back, whatever the
//! length-field size, and returns frames in display order.

use openh264::decoder::{Decoder, DecoderConfig, Flush};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, MatrixCoefficients, QpRange,
    RateControlMode, TransferCharacteristics, VuiConfig,
};
use openh264::formats::{YUVBuffer, YUVSource};
use openh264::OpenH264API;

use crate::yuv::{rgb_to_yuv420, yuv420_to_rgb};
use crate::Frame;

/// Encoder quality: a constant quantiser (QP; lower is better and larger). Every frame is
/// coded at this QP, so quality does not depend on content or length. PSNR measured on a
/// smooth moving gradient (tests/roundtrip.rs) at 96x64 / 832x480.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quality {
    /// QP 16: 43 / 48 dB (560 kB for 81 smooth frames of 832x480).
    #[default]
    High,
    /// QP 23: 39 / 46 dB.
    Medium,
    /// QP 30: 35 dB at 96x64; previews.
    Low,
    /// An explicit QP in 12..=51: OpenH264 raises anything lower to 12 when rate control
    /// is on (encoder_ext.cpp, ParamValidation, GOM_MIN_QP_MODE).
    Qp(u8),
}

impl Quality {
    pub fn qp(self) -> u8 {
        match self {
            Self::High => 16,
            Self::Medium => 23,
            Self::Low => 30,
            Self::Qp(q) => q.clamp(12, 51),
        }
    }
}

/// One access unit: its NAL units, each prefixed by its big-endian length.
pub struct Sample {
    pub data: Vec<u8>,
    pub sync: bool,
}

/// An encoded video track.
pub struct Stream {
    /// Display size: the decoded picture is cropped to it (odd sizes are coded padded).
    pub width: usize,
    pub height: usize,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
    /// Bytes of each NAL unit's length prefix in the samples (1, 2 or 4).
    pub nal_length_size: usize,
    pub samples: Vec<Sample>,
    pub fps: f64,
}

/// Strips an Annex B start code (00 00 01 or 00 00 00 01) from the front of a NAL unit.
fn strip_start_code(nal: &[u8]) -> &[u8] {
    if nal.starts_with(&[0, 0, 0, 1]) {
        &nal[4..]
    } else if nal.starts_with(&[0, 0, 1]) {
        &nal[3..]
    } else {
        nal
    }
}

/// Encodes same-sized frames at a constant frame rate.
pub fn encode(frames: &[Frame], fps: f64, quality: Quality) -> Result<Stream, String> {
    let mut enc = StreamEncoder::new(frames[0].width, frames[0].height, fps, quality)?;
    for f in frames {
        enc.push(f)?;
    }
    enc.finish()
}

/// An H.264 encoder fed one frame at a time: only the compressed stream is kept, so
/// memory does not grow with the raw video (minutes of large frames stay small).
pub struct StreamEncoder {
    encoder: Encoder,
    width: usize,
    height: usize,
    fps: f64,
    sps: Vec<u8>,
    pps: Vec<u8>,
    samples: Vec<Sample>,
}

impl StreamEncoder {
    pub fn new(width: usize, height: usize, fps: f64, quality: Quality) -> Result<Self, String> {
        if width < 16 || height < 16 {
            // OpenH264 rejects pictures smaller than one macroblock.
            return Err(format!(
                "H.264 needs frames of at least 16x16 pixels, got {width}x{height} (write a .gif or .png instead)"
            ));
        }
        let qp = quality.qp();
        let config = EncoderConfig::new()
            // Buffer-based rate control with min QP = max QP codes every frame at that QP
            // (openh264 ratectl.cpp, WelRcPictureInitBufferBasedQp); the bitrate is unused.
            .rate_control_mode(RateControlMode::Bufferbased)
            .qp(QpRange::new(qp, qp))
            .bitrate(BitRate::from_bps(100_000_000))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .complexity(Complexity::High)
            .skip_frames(false)
            // Background detection skips "static" macroblocks, which smears slow motion.
            .background_detection(false)
            .adaptive_quantization(false)
            // An IDR every 2 seconds so players can seek.
            .intra_frame_period(IntraFramePeriod::from_num_frames((fps * 2.0).round().clamp(1.0, 1e6) as u32))
            // Say what `yuv.rs` does: BT.601 matrix, limited range; sRGB content, so BT.709
            // primaries with the sRGB transfer curve (H.264 Tables E-3..E-5).
            .vui(
                VuiConfig::bt709()
                    .transfer_characteristics(TransferCharacteristics::Srgb)
                    .matrix_coefficients(MatrixCoefficients::Smpte170M)
                    .full_range(false),
            );
        let encoder =
            Encoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| format!("H.264 encoder: {e}"))?;
        Ok(StreamEncoder { encoder, width, height, fps, sps: Vec::new(), pps: Vec::new(), samples: Vec::new() })
    }

    pub fn push(&mut self, frame: &Frame) -> Result<(), String> {
        let i = self.samples.len();
        if (frame.width, frame.height) != (self.width, self.height) {
            return Err(format!(
                "frame {i} is {}x{}, the video is {}x{}",
                frame.width, frame.height, self.width, self.height
            ));
        }
        let yuv = rgb_to_yuv420(&frame.data, self.width, self.height);
        let buf = YUVBuffer::from_vec(yuv.data, yuv.width, yuv.height);
        let bs = self.encoder.encode(&buf).map_err(|e| format!("H.264 encoder, frame {i}: {e}"))?;
        let mut data = Vec::new();
        let mut sync = false;
        for layer in (0..bs.num_layers()).filter_map(|l| bs.layer(l)) {
            for nal in (0..layer.nal_count()).filter_map(|n| layer.nal_unit(n)) {
                let nal = strip_start_code(nal);
                let Some(&head) = nal.first() else { continue };
                // nal_unit_type (H.264 Table 7-1): 7 SPS, 8 PPS, 5 IDR slice.
                match head & 0x1F {
                    7 => self.sps = nal.to_vec(),
                    8 => self.pps = nal.to_vec(),
                    t => {
                        sync |= t == 5;
                        data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                        data.extend_from_slice(nal);
                    }
                }
            }
        }
        if data.is_empty() {
            return Err(format!("H.264 encoder skipped frame {i}"));
        }
        self.samples.push(Sample { data, sync });
        Ok(())
    }

    pub fn finish(self) -> Result<Stream, String> {
        if self.sps.is_empty() || self.pps.is_empty() {
            return Err("H.264 encoder produced no parameter sets".into());
        }
        Ok(Stream {
            width: self.width,
            height: self.height,
            sps: vec![self.sps],
            pps: vec![self.pps],
            nal_length_size: 4,
            samples: self.samples,
            fps: self.fps,
        })
    }
}

/// Converts one decoded picture, cropped to the display size, to an RGB frame.
fn to_frame(yuv: &dyn YUVSource, (w, h): (usize, usize)) -> Result<Frame, String> {
    let (dw, dh) = yuv.dimensions();
    let (cw, ch) = if w == 0 || h == 0 { (dw, dh) } else { (w.min(dw), h.min(dh)) };
    let (sy, su, sv) = yuv.strides();
    let fits = |plane: &[u8], stride: usize, cols: usize, rows: usize| {
        rows == 0 || stride >= cols && plane.len() >= (rows - 1) * stride + cols
    };
    let (hw, hh) = (cw.div_ceil(2), ch.div_ceil(2));
    if !(fits(yuv.y(), sy, cw, ch) && fits(yuv.u(), su, hw, hh) && fits(yuv.v(), sv, hw, hh)) {
        return Err(format!("H.264 decoder returned a malformed {dw}x{dh} picture"));
    }
    let rgb = yuv420_to_rgb((yuv.y(), yuv.u(), yuv.v()), (sy, su, sv), cw, ch);
    Frame::new(cw, ch, rgb).map_err(|e| e.to_string())
}

/// Decodes every sample to RGB frames in display order.
pub fn decode(stream: &Stream) -> Result<Vec<Frame>, String> {
    // No flush after each call: with B-frames (x264's default) the decoder must hold
    // pictures back to reorder them; the rest come out of `flush_remaining`.
    let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
    let mut decoder =
        Decoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| format!("H.264 decoder: {e}"))?;
    let annex_b = |out: &mut Vec<u8>, nal: &[u8]| {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    };
    let size = (stream.width, stream.height);
    let mut header = Vec::new();
    stream.sps.iter().chain(&stream.pps).for_each(|p| annex_b(&mut header, p));
    if !header.is_empty() {
        decoder.decode(&header).map_err(|e| format!("H.264 parameter sets: {e}"))?;
    }
    let n = stream.nal_length_size;
    let mut frames = Vec::with_capacity(stream.samples.len());
    for (i, s) in stream.samples.iter().enumerate() {
        let mut packet = Vec::with_capacity(s.data.len() + 16);
        let mut p = 0;
        while p + n <= s.data.len() {
            let len = s.data[p..p + n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
            let nal = s
                .data
                .get(p + n..p + n + len)
                .ok_or_else(|| format!("sample {i}: a NAL unit runs past the end of the sample"))?;
            annex_b(&mut packet, nal);
            p += n + len;
        }
        if let Some(yuv) = decoder.decode(&packet).map_err(|e| format!("H.264 frame {i}: {e}"))? {
            frames.push(to_frame(&yuv, size)?);
        }
    }
    for yuv in decoder.flush_remaining().map_err(|e| format!("H.264 flush: {e}"))? {
        frames.push(to_frame(&yuv, size)?);
    }
    Ok(frames)
}
