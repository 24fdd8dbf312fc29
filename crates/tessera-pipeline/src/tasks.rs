//! Tasks: every capability beyond plain text-to-video is a choice of given frames
//! ([`crate::conditioning`]) in one or more generation windows.
//!
//! - images, image-to-video, last frame, keyframes: one window with frames given where
//!   they belong;
//! - extension forward: windows that each take the last frames made so far as a given
//!   prefix (and so a video longer than the model's window: a minute is windows of
//!   forward extension from a plain first window);
//! - extension backward: the same with a given suffix, windows prepended;
//! - connecting A to B: one window with A's last frames as prefix and B's first as suffix;
//! - loops: the first frame is given at both ends;
//! - in-betweening (frame rate up): windows where the input frames are given at their
//!   times and the frames between are generated;
//! - editing: SDEdit over windows of the input.
//!
//! Given frames come back in the output exactly as given (the input's pixels, not their
//! VAE round trip). Windows stream their new frames to a sink, so a long video's memory
//! is one window's, whatever its length.

use candle_core::{DType, Device, Tensor};
use tessera_media::Frame;

use crate::conditioning::{Edit, Given};
use crate::error::invalid;
use crate::wan::{GenerateParams, Progress, WanPipeline};
use crate::Result;

/// Frames of context carried from one window into the next (latent-aligned: a prefix of
/// 4k + 1 frames, or a suffix of 4k frames, covers whole latent frames, so text-to-video
/// models can take it by replacement too).
pub const PREFIX_CONTEXT: usize = 9;
pub const SUFFIX_CONTEXT: usize = 8;

/// A generation session: the pipeline, the parameters every window shares (prompt, size,
/// steps, guidance, seed) and the prompt's embeddings, encoded once.
pub struct Session<'a> {
    pipe: &'a WanPipeline,
    base: GenerateParams,
    cond: Tensor,
    uncond: Option<Tensor>,
    /// Frames per window (the model's clip length).
    pub window: usize,
    windows_done: usize,
}

/// Where finished frames go, in order.
pub type Sink<'s> = dyn FnMut(Frame) -> Result<()> + 's;

impl<'a> Session<'a> {
    /// `base.frames` is the window length.
    pub fn new(pipe: &'a WanPipeline, base: GenerateParams, progress: &mut dyn FnMut(Progress)) -> Result<Self> {
        pipe.validate(&base)?;
        let (cond, uncond) = pipe.encode_text(&base, progress)?;
        let window = base.frames;
        Ok(Session { pipe, base, cond, uncond, window, windows_done: 0 })
    }

    pub fn size(&self) -> (usize, usize) {
        (self.base.width, self.base.height)
    }

    fn tf(&self) -> usize {
        self.pipe.temporal_factor()
    }

    /// Frames counts a window can have: tf k + 1.
    pub fn valid_frames(&self, n: usize) -> usize {
        let tf = self.tf();
        (n.max(1) - 1).div_ceil(tf) * tf + 1
    }

    /// One window of `given.len()` frames (tf k + 1) with the given frames in place; the
    /// output has the given frames exactly as given. Each window draws its own noise
    /// (seed + window number).
    pub fn window(
        &mut self,
        given: &[Option<Frame>],
        edit: Option<(&[Frame], f64)>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Frame>> {
        let n = given.len();
        let (w, h) = self.size();
        let mut p = self.base.clone();
        p.frames = n;
        p.seed = self.base.seed.wrapping_add(self.windows_done as u64);
        p.latents = if self.windows_done == 0 { self.base.latents.clone() } else { None };
        if p.latents.as_ref().is_some_and(|l| l.dims() != self.pipe.latent_shape(&p)) {
            p.latents = None;
        }
        if given.iter().any(Option::is_some) {
            let mask: Vec<bool> = given.iter().map(Option::is_some).collect();
            let frames: Vec<Frame> = given.iter().map(|g| g.clone().unwrap_or_else(|| grey(w, h))).collect();
            p.given = Some(Given::new(video_tensor(&frames, self.pipe.device())?, mask)?);
        }
        if let Some((video, strength)) = edit {
            p.edit = Some(Edit { video: video_tensor(video, self.pipe.device())?, strength });
        }
        self.pipe.validate(&p)?;
        self.windows_done += 1;
        let latents = self.pipe.denoise(&p, &self.cond, self.uncond.as_ref(), progress)?;
        let frames = self.pipe.decode(&latents, progress)?;
        let (t, fh, fw, _) = frames.dims4()?;
        let data: Vec<f32> = frames.flatten_all()?.to_vec1()?;
        let mut out =
            tessera_media::frames_from_f32(&data, t, fh, fw).map_err(|e| crate::Error::Invalid(e.to_string()))?;
        for (o, g) in out.iter_mut().zip(given) {
            if let Some(g) = g {
                *o = g.clone();
            }
        }
        Ok(out)
    }

    /// Text (and keyframes) to video: `frames` frames with `keys` (frame index, image)
    /// given. Covers images (frames = 1), image-to-video (a key at 0), last frame, first
    /// and last, and keyframes anywhere.
    pub fn keyframes(
        &mut self,
        frames: usize,
        keys: &[(usize, Frame)],
        sink: &mut Sink,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        let mut given = vec![None; frames];
        for (i, f) in keys {
            if *i >= frames {
                return invalid(format!("a keyframe at frame {i} is beyond the video's {frames} frames"));
            }
            given[*i] = Some(f.clone());
        }
        if frames <= self.window {
            for f in self.window(&given, None, progress)? {
                sink(f)?;
            }
            return Ok(());
        }
        // Longer than one window: the keyframes in the first window condition it, later
        // keyframes are placed in the window that reaches them.
        self.forward(given, frames, sink, progress)
    }

    /// Generates `frames` frames in windows, each window taking the last frames made so
    /// far as its given prefix; `given[i]` (when set) is kept at frame i. Only the last
    /// window's frames are held: the rest have gone to `sink`.
    fn forward(
        &mut self,
        given: Vec<Option<Frame>>,
        frames: usize,
        sink: &mut Sink,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        let win = self.window;
        let ctx = PREFIX_CONTEXT.min(win.saturating_sub(self.tf()));
        let mut made: Vec<Frame> = Vec::new(); // the last `ctx` frames emitted
        let mut start = 0; // index of the window's first frame in the video
        let mut emitted = 0;
        while emitted < frames {
            let carried = if start == 0 { 0 } else { ctx };
            let len = win.min(frames - emitted + carried);
            let len = self.valid_frames(len).max(len);
            let mut g: Vec<Option<Frame>> = (0..len).map(|k| given.get(start + k).cloned().flatten()).collect();
            for (k, f) in made.iter().enumerate() {
                g[k] = Some(f.clone());
            }
            progress(Progress::Stage("window"));
            let out = self.window(&g, None, progress)?;
            let new = &out[carried..];
            let take = new.len().min(frames - emitted);
            for f in &new[..take] {
                sink(f.clone())?;
            }
            emitted += take;
            made = out[out.len() - ctx.min(out.len())..].to_vec();
            start = emitted - ctx.min(emitted);
        }
        Ok(())
    }

    /// The video followed by `new` generated frames that continue it.
    pub fn extend_forward(
        &mut self,
        video: &[Frame],
        new: usize,
        sink: &mut Sink,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        if video.is_empty() {
            return invalid("the video to extend has no frames");
        }
        let ctx = PREFIX_CONTEXT.min(video.len());
        for f in video {
            sink(f.clone())?;
        }
        let mut given: Vec<Option<Frame>> = video[video.len() - ctx..].iter().cloned().map(Some).collect();
        given.resize(ctx + new, None);
        // `forward` treats the context as part of the video it makes; skip re-emitting it.
        let mut skipped = 0;
        self.forward(
            given,
            ctx + new,
            &mut |f| {
                if skipped < ctx {
                    skipped += 1;
                    Ok(())
                } else {
                    sink(f)
                }
            },
            progress,
        )
    }

    /// `new` generated frames that lead into the video, then the video.
    pub fn extend_backward(
        &mut self,
        video: &[Frame],
        new: usize,
        sink: &mut Sink,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        if video.is_empty() {
            return invalid("the video to extend has no frames");
        }
        let win = self.window;
        let ctx = SUFFIX_CONTEXT.min(video.len()).min(win - 1);
        // Windows from the end backwards: each ends with the first frames known so far.
        let mut before: Vec<Frame> = Vec::new(); // generated, in order
        let mut head: Vec<Frame> = video[..ctx].to_vec();
        while before.len() < new {
            let want = new - before.len();
            let len = self.valid_frames((want + ctx).min(win)).max(ctx + 1);
            let mut g: Vec<Option<Frame>> = vec![None; len];
            for (k, f) in head.iter().enumerate() {
                g[len - ctx + k] = Some(f.clone());
            }
            progress(Progress::Stage("window"));
            let out = self.window(&g, None, progress)?;
            let fresh = &out[..len - ctx];
            let take = fresh.len().min(want);
            let mut chunk = fresh[fresh.len() - take..].to_vec();
            chunk.extend(before);
            before = chunk;
            head = before.iter().chain(video).take(ctx).cloned().collect();
        }
        for f in before.into_iter().chain(video.iter().cloned()) {
            sink(f)?;
        }
        Ok(())
    }

    /// A, a transition of about `new` frames that starts where A ends and ends where B
    /// starts, then B.
    pub fn connect(
        &mut self,
        a: &[Frame],
        b: &[Frame],
        new: usize,
        sink: &mut Sink,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        if a.is_empty() || b.is_empty() {
            return invalid("both videos to connect need frames");
        }
        let (ca, cb) = (PREFIX_CONTEXT.min(a.len()), SUFFIX_CONTEXT.min(b.len()));
        let len = self.valid_frames(ca + new + cb);
        let mut g: Vec<Option<Frame>> = vec![None; len];
        for (k, f) in a[a.len() - ca..].iter().enumerate() {
            g[k] = Some(f.clone());
        }
        for (k, f) in b[..cb].iter().enumerate() {
            g[len - cb + k] = Some(f.clone());
        }
        let out = self.window(&g, None, progress)?;
        for f in a.iter().cloned().chain(out[ca..len - cb].iter().cloned()).chain(b.iter().cloned()) {
            sink(f)?;
        }
        Ok(())
    }

    /// A video of `frames` frames whose last frame is its first (given, or generated as
    /// an image first), so it plays as a loop.
    pub fn make_loop(
        &mut self,
        frames: usize,
        first: Option<Frame>,
        sink: &mut Sink,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        let first = match first {
            Some(f) => f,
            None => self.window(&[None], None, progress)?.remove(0),
        };
        let frames = self.valid_frames(frames.max(self.tf() + 1));
        let mut g = vec![None; frames];
        g[0] = Some(first.clone());
        g[frames - 1] = Some(first);
        for f in self.window(&g, None, progress)? {
            sink(f)?;
        }
        Ok(())
    }

    /// The video at `factor` times its frame rate: input frame i is output frame
    /// factor * i, the frames between are generated, in windows that share their
    /// boundary frames.
    pub fn interpolate(
        &mut self,
        video: &[Frame],
        factor: usize,
        sink: &mut Sink,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        if factor < 2 {
            for f in video {
                sink(f.clone())?;
            }
            return Ok(());
        }
        if video.len() < 2 {
            return invalid("a video to interpolate needs at least two frames");
        }
        let total = (video.len() - 1) * factor + 1;
        // Windows of whole input intervals: (len - 1) divisible by factor, len tf k + 1.
        let mut len = self.window.max(factor + 1);
        while !(len - 1).is_multiple_of(factor) || !(len - 1).is_multiple_of(self.tf()) {
            len += 1;
        }
        let mut start = 0;
        let mut first = true;
        while start < total - 1 {
            let end = (start + len).min(total);
            let n = self.valid_frames(end - start);
            let g: Vec<Option<Frame>> = (0..n)
                .map(|k| {
                    let j = start + k;
                    (j < total && j % factor == 0).then(|| video[j / factor].clone())
                })
                .collect();
            progress(Progress::Stage("window"));
            let out = self.window(&g, None, progress)?;
            let skip = if first { 0 } else { 1 };
            for f in &out[skip..end - start] {
                sink(f.clone())?;
            }
            first = false;
            start = end - 1;
        }
        Ok(())
    }

    /// SDEdit of the video with the session's prompt, window by window.
    pub fn edit(
        &mut self,
        video: &[Frame],
        strength: f64,
        sink: &mut Sink,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        if !(0.0..=1.0).contains(&strength) {
            return invalid(format!("--strength must be between 0 and 1, got {strength}"));
        }
        let mut start = 0;
        while start < video.len() {
            let rest = video.len() - start;
            let len = self.valid_frames(rest.min(self.window));
            // Pad the last window by repeating the final frame; the padding is dropped.
            let clip: Vec<Frame> = (0..len).map(|k| video[(start + k).min(video.len() - 1)].clone()).collect();
            let out = self.window(&vec![None; len], Some((&clip, strength)), progress)?;
            let take = len.min(rest);
            for f in &out[..take] {
                sink(f.clone())?;
            }
            start += take;
        }
        Ok(())
    }
}

fn grey(w: usize, h: usize) -> Frame {
    Frame { width: w, height: h, data: vec![128; w * h * 3] }
}

/// Frames (all of one size) as (1, 3, T, H, W) f32 in [-1, 1].
pub fn video_tensor(frames: &[Frame], device: &Device) -> Result<Tensor> {
    let (w, h) = (frames[0].width, frames[0].height);
    let mut data = Vec::with_capacity(frames.len() * h * w * 3);
    for f in frames {
        if (f.width, f.height) != (w, h) {
            return invalid("frames given to one generation differ in size");
        }
        data.extend(f.data.iter().map(|&v| v as f32 / 127.5 - 1.0));
    }
    let t = Tensor::from_vec(data, (frames.len(), h, w, 3), &Device::Cpu)?;
    Ok(t.permute((3, 0, 1, 2))?.unsqueeze(0)?.contiguous()?.to_dtype(DType::F32)?.to_device(device)?)
}
