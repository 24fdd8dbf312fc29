//! Limits on what decoding an input may allocate. Images and videos come from anyone the
//! server accepts a key from, and a few bytes can declare a 65535x65535 GIF or an MP4 of
//! millions of frames: every decoder checks the sizes a file declares against these limits
//! before it allocates for them, and refuses the file with a clear error otherwise.
//!
//! The limits are process-wide (`tessera generate --max-input-pixels ...`, `tessera serve`
//! the same flags), with defaults that hold any video tessera makes or takes in practice.

use std::sync::RwLock;

/// What one decoded input may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Pixels of one frame (width x height).
    pub max_pixels: usize,
    /// Frames of one video.
    pub max_frames: usize,
    /// Bytes of all its decoded frames together (RGB, 3 bytes a pixel).
    pub max_bytes: usize,
}

impl Default for DecodeLimits {
    /// 8192x8192 a frame (Wan's and tessera's sizes are far below), 100,000 frames (over an
    /// hour at 24 fps) and 2 GiB of decoded frames.
    fn default() -> Self {
        DecodeLimits { max_pixels: 8192 * 8192, max_frames: 100_000, max_bytes: 2 << 30 }
    }
}

static LIMITS: RwLock<Option<DecodeLimits>> = RwLock::new(None);

/// The limits every decode in this process checks.
pub fn decode_limits() -> DecodeLimits {
    LIMITS.read().map(|l| l.unwrap_or_default()).unwrap_or_default()
}

/// Sets the limits every later decode in this process checks.
pub fn set_decode_limits(limits: DecodeLimits) {
    if let Ok(mut l) = LIMITS.write() {
        *l = Some(limits);
    }
}

impl DecodeLimits {
    /// Checks one frame's declared size.
    pub fn check_frame(&self, width: usize, height: usize) -> Result<(), String> {
        let pixels = width.saturating_mul(height);
        if pixels > self.max_pixels {
            return Err(format!(
                "it declares {width}x{height} frames ({pixels} pixels), more than the limit of {} pixels (raise it with --max-input-pixels)",
                self.max_pixels
            ));
        }
        Ok(())
    }

    /// Checks a video's declared frame count and decoded size.
    pub fn check_video(&self, width: usize, height: usize, frames: usize) -> Result<(), String> {
        self.check_frame(width, height)?;
        if frames > self.max_frames {
            return Err(format!(
                "it declares {frames} frames, more than the limit of {} (raise it with --max-input-frames)",
                self.max_frames
            ));
        }
        let bytes = width.saturating_mul(height).saturating_mul(3).saturating_mul(frames);
        if bytes > self.max_bytes {
            return Err(format!(
                "its {frames} frames of {width}x{height} decode to {} MiB, more than the limit of {} MiB (raise it with --max-input-mib)",
                bytes >> 20,
                self.max_bytes >> 20
            ));
        }
        Ok(())
    }
}
