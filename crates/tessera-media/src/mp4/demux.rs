//! Reads the first H.264 video track of an MP4: what we write, and what ffmpeg/x264 and
//! most encoders write (moov before or after mdat, any number of chunks, stco or co64,
//! 1/2/4-byte NAL lengths, other tracks such as audio skipped).
//!
//! Not handled, because generated and typical files do not need them: fragmented MP4
//! (moof), edit lists (every coded frame is returned), and data in other files (dref).

use super::{boxes, name, BoxRef};
use crate::h264::{Sample, Stream};

/// Big-endian fields of a box payload, with truncation as an error instead of a panic.
struct Fields<'a> {
    kind: &'a str,
    data: &'a [u8],
}

impl<'a> Fields<'a> {
    fn bytes(&self, at: usize, n: usize) -> Result<&'a [u8], String> {
        at.checked_add(n)
            .and_then(|end| self.data.get(at..end))
            .ok_or_else(|| format!("{} box is truncated", self.kind))
    }
    fn u8(&self, at: usize) -> Result<u8, String> {
        Ok(self.bytes(at, 1)?[0])
    }
    fn u16(&self, at: usize) -> Result<u16, String> {
        let b = self.bytes(at, 2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&self, at: usize) -> Result<u32, String> {
        let b = self.bytes(at, 4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&self, at: usize) -> Result<u64, String> {
        Ok((u64::from(self.u32(at)?) << 32) | u64::from(self.u32(at + 4)?))
    }
    /// A table of `count` entries of `width` bytes after the header, each read by `f`.
    /// The count is checked against the payload before anything is allocated.
    fn table<T>(&self, at: usize, width: usize, f: impl Fn(usize) -> Result<T, String>) -> Result<Vec<T>, String> {
        let count = self.u32(at)? as usize;
        self.bytes(at + 4, count.saturating_mul(width))?;
        (0..count).map(|i| f(at + 4 + i * width)).collect()
    }
}

fn find<'a>(list: &[BoxRef<'a>], kind: &[u8; 4]) -> Option<&'a [u8]> {
    list.iter().find(|(k, _)| k == kind).map(|(_, d)| *d)
}

/// The child `kind` of a container payload, as a field reader.
fn child<'a>(parent: &'a [u8], kind: &'static [u8; 4]) -> Result<Fields<'a>, String> {
    let data = find(&boxes(parent)?, kind).ok_or_else(|| format!("no {} box", name(kind)))?;
    Ok(Fields { kind: std::str::from_utf8(kind).unwrap_or("?"), data })
}

/// SPS and PPS lists and the NAL length size from an AVCDecoderConfigurationRecord
/// (ISO/IEC 14496-15 §5.3.3.1).
type AvcConfig = (Vec<Vec<u8>>, Vec<Vec<u8>>, usize);

fn parameter_sets(c: &Fields, count: usize, p: &mut usize) -> Result<Vec<Vec<u8>>, String> {
    let mut v = Vec::with_capacity(count);
    for _ in 0..count {
        let n = c.u16(*p)? as usize;
        v.push(c.bytes(*p + 2, n)?.to_vec());
        *p += 2 + n;
    }
    Ok(v)
}

fn avc_config(c: &Fields) -> Result<AvcConfig, String> {
    let nal_length_size = (c.u8(4)? & 3) as usize + 1;
    if nal_length_size == 3 {
        return Err("avcC declares 3-byte NAL lengths, which ISO/IEC 14496-15 forbids".into());
    }
    let mut p = 6;
    let sps = parameter_sets(c, (c.u8(5)? & 0x1F) as usize, &mut p)?;
    let npps = c.u8(p)? as usize;
    p += 1;
    let pps = parameter_sets(c, npps, &mut p)?;
    Ok((sps, pps, nal_length_size))
}

/// A `clap` clean aperture (§12.1.4) that keeps the top-left corner and has whole-pixel
/// size: the display size of an odd-sized picture coded at `coded` (see mux.rs).
fn clean_aperture(c: &Fields, coded: (usize, usize)) -> Option<(usize, usize)> {
    let ratio = |at: usize| -> Option<f64> {
        let (n, d) = (c.u32(at).ok()? as i32, c.u32(at + 4).ok()?);
        (d != 0).then(|| n as f64 / d as f64)
    };
    let (w, h, dx, dy) = (ratio(0)?, ratio(8)?, ratio(16)?, ratio(24)?);
    let whole = |x: f64| x > 0.0 && x.fract() == 0.0;
    let top_left = (coded.0 as f64 - w) / 2.0 + dx == 0.0 && (coded.1 as f64 - h) / 2.0 + dy == 0.0;
    (whole(w) && whole(h) && top_left).then_some((w as usize, h as usize))
}

/// Reads the first H.264 video track of an MP4 file's bytes.
pub fn demux(data: &[u8]) -> Result<Stream, String> {
    let top = boxes(data).map_err(|e| format!("not an MP4 file ({e})"))?;
    let moov = find(&top, b"moov").ok_or("not an MP4 file (no moov box)")?;
    if find(&boxes(moov)?, b"mvex").is_some() {
        return Err("fragmented MP4 is not supported".into());
    }
    for (kind, trak) in boxes(moov)? {
        if &kind != b"trak" {
            continue;
        }
        let mdia = child(trak, b"mdia")?.data;
        // hdlr: pre_defined, then handler_type (§8.4.3).
        if child(mdia, b"hdlr")?.bytes(8, 4)? != b"vide" {
            continue;
        }
        return track(data, mdia);
    }
    Err("no video track".into())
}

fn track(data: &[u8], mdia: &[u8]) -> Result<Stream, String> {
    // mdhd (§8.4.2): the timescale follows 64-bit times in version 1, 32-bit in version 0.
    let mdhd = child(mdia, b"mdhd")?;
    let timescale = mdhd.u32(if mdhd.u8(0)? == 1 { 20 } else { 12 })?;
    let stbl = child(child(mdia, b"minf")?.data, b"stbl")?.data;

    let stsd = child(stbl, b"stsd")?;
    let entries = boxes(stsd.bytes(8, stsd.data.len().saturating_sub(8))?)?;
    let (ekind, entry) = entries.first().ok_or("empty stsd box")?;
    if ekind != b"avc1" && ekind != b"avc3" {
        return Err(format!("video codec {} is not H.264 (avc1)", name(ekind)));
    }
    // The visual sample entry's fields take 78 bytes (§12.1.3), then its boxes.
    let entry_fields = Fields { kind: "avc1", data: entry };
    let coded = (entry_fields.u16(24)? as usize, entry_fields.u16(26)? as usize);
    let children = entry_fields.bytes(78, entry.len().saturating_sub(78))?;
    let (sps, pps, nal_length_size) = avc_config(&child(children, b"avcC")?)?;
    let display = child(children, b"clap").ok().and_then(|c| clean_aperture(&c, coded)).unwrap_or(coded);

    // Sample sizes (§8.7.3), chunk offsets (§8.7.5), samples per chunk (§8.7.4),
    // durations (§8.6.1.2), sync samples (§8.6.2; none listed = all are sync).
    let stsz = child(stbl, b"stsz")?;
    let fixed = stsz.u32(4)? as usize;
    let sizes: Vec<usize> = if fixed != 0 {
        let count = stsz.u32(8)? as usize;
        if count.saturating_mul(fixed) > data.len() {
            return Err("stsz lists more data than the file holds".into());
        }
        vec![fixed; count]
    } else {
        stsz.table(8, 4, |at| stsz.u32(at).map(|x| x as usize))?
    };
    let offsets: Vec<u64> = match child(stbl, b"stco") {
        Ok(stco) => stco.table(4, 4, |at| stco.u32(at).map(u64::from))?,
        Err(_) => {
            let co64 = child(stbl, b"co64")?;
            co64.table(4, 8, |at| co64.u64(at))?
        }
    };
    let stsc = child(stbl, b"stsc")?;
    let runs = stsc.table(4, 12, |at| Ok((stsc.u32(at)? as usize, stsc.u32(at + 4)? as usize)))?;
    let sync: Option<Vec<usize>> = match child(stbl, b"stss") {
        Ok(stss) => {
            // Listed in increasing order, but sort anyway so the lookup below can bisect.
            let mut v = stss.table(4, 4, |at| stss.u32(at).map(|x| x as usize))?;
            v.sort_unstable();
            Some(v)
        }
        Err(_) => None,
    };
    let stts = child(stbl, b"stts")?;
    let (mut ticks, mut counted) = (0f64, 0f64);
    for (n, d) in stts.table(4, 8, |at| Ok((stts.u32(at)?, stts.u32(at + 4)?)))? {
        ticks += n as f64 * d as f64;
        counted += n as f64;
    }
    let fps = if ticks > 0.0 { counted * timescale as f64 / ticks } else { 0.0 };

    // Walk the chunks: run r covers chunks runs[r].0 ..runs[r+1].0 (numbered from 1).
    let mut samples = Vec::with_capacity(sizes.len());
    for (c, &off) in offsets.iter().enumerate() {
        let per = runs.iter().take_while(|(first, _)| *first <= c + 1).last().map_or(0, |r| r.1);
        let mut pos = usize::try_from(off).map_err(|_| "chunk offset beyond the file")?;
        for _ in 0..per {
            let k = samples.len();
            let Some(&size) = sizes.get(k) else { break };
            let bytes = pos
                .checked_add(size)
                .and_then(|end| data.get(pos..end))
                .ok_or_else(|| format!("sample {k} lies beyond the end of the file"))?;
            samples.push(Sample {
                data: bytes.to_vec(),
                sync: sync.as_ref().is_none_or(|s| s.binary_search(&(k + 1)).is_ok()),
            });
            pos += size;
        }
    }
    if samples.len() < sizes.len() {
        return Err(format!("the chunk table covers {} of {} samples", samples.len(), sizes.len()));
    }
    Ok(Stream { width: display.0, height: display.1, sps, pps, nal_length_size, samples, fps })
}
