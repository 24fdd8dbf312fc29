//! H.264 (ITU-T H.264) encode and decode with OpenH264 (built from its bundled source by
//! the `openh264` crate). The encoder's Annex B output is split into NAL units; parameter
//! sets go to the MP4's avcC box and each frame's slices become one length-prefixed
//! sample (ISO/IEC 14496-15).

use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, QpRange, RateControlMode,
};
use openh264::formats::{YUVBuffer, YUVSource};
use openh264::OpenH264API;

use crate::yuv::{rgb_to_yuv420, yuv420_to_rgb};
use crate::Frame;

/// Encoder quality: the quantiser range. Lower is better and larger.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Quality {
    #[default]
    /// QP 8..18: visually lossless for generated content (the default).
    High,
    /// QP 20..32.
    Medium,
    /// An explicit QP range (0..=51).
    Qp(u8, u8),
}

impl Quality {
    fn range(self) -> (u8, u8) {
        match self {
            Self::High => (8, 18),
            Self::Medium => (20, 32),
            Self::Qp(a, b) => (a.min(51), b.min(51).max(a.min(51))),
        }
    }
}

/// One access unit: its NAL units, each prefixed by its 4-byte big-endian length.
pub struct Sample {
    pub data: Vec<u8>,
    pub sync: bool,
}

/// An encoded video: parameter sets, samples, display size and frame rate.
pub struct Stream {
    pub width: usize,
    pub height: usize,
    pub sps: Vec<u8>,
    pub pps: Vec<u8>,
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

pub fn encode(frames: &[Frame], fps: f64, quality: Quality) -> Result<Stream, String> {
    let (width, height) = (frames[0].width, frames[0].height);
    let (w2, h2) = (width.div_ceil(2) * 2, height.div_ceil(2) * 2);
    let (qmin, qmax) = quality.range();
    // Bitrate only bounds the rate controller in quality mode; the QP range decides.
    let bps = ((w2 * h2) as f64 * fps * 4.0).clamp(1e5, 2e9) as u32;
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(bps))
        .max_frame_rate(FrameRate::from_hz(fps as f32))
        .rate_control_mode(RateControlMode::Bufferbased)
        .qp(QpRange::new(qmin, qmax))
        .skip_frames(false)
        // An IDR every 2 seconds so players can seek.
        .intra_frame_period(IntraFramePeriod::from_num_frames(
            (fps * 2.0).round().max(1.0) as u32,
        ));
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| format!("H.264 encoder: {e}"))?;
    let mut sps = Vec::new();
    let mut pps = Vec::new();
    let mut samples = Vec::with_capacity(frames.len());
    for frame in frames {
        let yuv = rgb_to_yuv420(&frame.data, width, height);
        let buf = YUVBuffer::from_vec(yuv.data, yuv.width, yuv.height);
        let bs = encoder
            .encode(&buf)
            .map_err(|e| format!("H.264 encoder: {e}"))?;
        let mut data = Vec::new();
        let mut sync = false;
        for l in 0..bs.num_layers() {
            let Some(layer) = bs.layer(l) else { continue };
            for n in 0..layer.nal_count() {
                let Some(nal) = layer.nal_unit(n) else {
                    continue;
                };
                let nal = strip_start_code(nal);
                let Some(&head) = nal.first() else { continue };
                match head & 0x1F {
                    7 => sps = nal.to_vec(),
                    8 => pps = nal.to_vec(),
                    t => {
                        sync |= t == 5;
                        data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                        data.extend_from_slice(nal);
                    }
                }
            }
        }
        if data.is_empty() {
            return Err("H.264 encoder skipped a frame".into());
        }
        samples.push(Sample { data, sync });
    }
    if sps.is_empty() || pps.is_empty() {
        return Err("H.264 encoder produced no parameter sets".into());
    }
    Ok(Stream {
        width,
        height,
        sps,
        pps,
        samples,
        fps,
    })
}

/// Decodes every sample to RGB frames cropped to the stream's display size.
pub fn decode(stream: &Stream) -> Result<Vec<Frame>, String> {
    let mut decoder = Decoder::new().map_err(|e| format!("H.264 decoder: {e}"))?;
    let annex_b = |nal: &[u8]| [&[0u8, 0, 0, 1][..], nal].concat();
    let mut frames = Vec::with_capacity(stream.samples.len());
    let (w, h) = (stream.width, stream.height);
    let push = |yuv: &dyn YUVSource, frames: &mut Vec<Frame>| -> Result<(), String> {
        let (dw, dh) = yuv.dimensions();
        let (cw, ch) = if w == 0 || h == 0 {
            (dw, dh)
        } else {
            (w.min(dw), h.min(dh))
        };
        let rgb = yuv420_to_rgb((yuv.y(), yuv.u(), yuv.v()), yuv.strides(), cw, ch);
        frames.push(Frame::new(cw, ch, rgb).map_err(|e| e.to_string())?);
        Ok(())
    };
    let mut header = annex_b(&stream.sps);
    header.extend(annex_b(&stream.pps));
    decoder
        .decode(&header)
        .map_err(|e| format!("H.264 parameter sets: {e}"))?;
    for (i, s) in stream.samples.iter().enumerate() {
        let mut packet = Vec::with_capacity(s.data.len() + 16);
        let mut p = 0;
        while p + 4 <= s.data.len() {
            let n = u32::from_be_bytes([s.data[p], s.data[p + 1], s.data[p + 2], s.data[p + 3]])
                as usize;
            let end = (p + 4 + n).min(s.data.len());
            packet.extend(annex_b(&s.data[p + 4..end]));
            p = end;
        }
        if let Some(yuv) = decoder
            .decode(&packet)
            .map_err(|e| format!("H.264 frame {i}: {e}"))?
        {
            push(&yuv, &mut frames)?;
        }
    }
    for yuv in decoder
        .flush_remaining()
        .map_err(|e| format!("H.264 flush: {e}"))?
    {
        push(&yuv, &mut frames)?;
    }
    Ok(frames)
}
