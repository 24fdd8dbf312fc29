//! What is drawn into every frame tessera outputs: the visible mark (on request) and the
//! invisible watermark (unless provenance is off). One place, so the CLI's files and the
//! server's videos carry the same marks.

use crate::watermark::{Embedder, Payload};
use crate::Frame;

/// What is drawn into every output frame: the visible mark (when asked for), then the
/// invisible watermark (unless provenance is off).
pub struct Marks {
    pub invisible: Option<Payload>,
    pub visible: bool,
    pub fps: f64,
    /// The output is a lossless still (PNG), not a video to be encoded.
    pub still: bool,
    embedder: Option<Embedder>,
    index: usize,
}

impl Marks {
    pub fn new(invisible: Option<Payload>, visible: bool, fps: f64) -> Self {
        Marks { invisible, visible, fps, still: false, embedder: None, index: 0 }
    }

    /// Marks the next frame of the output.
    pub fn apply(&mut self, f: &mut Frame) {
        if self.visible {
            crate::visible::stamp(f, self.index, self.fps);
        }
        if let Some(p) = self.invisible {
            let still = self.still;
            self.embedder
                .get_or_insert_with(|| if still { Embedder::still(f, p) } else { Embedder::new(f, p) })
                .mark(f, self.index);
        }
        self.index += 1;
    }
}
