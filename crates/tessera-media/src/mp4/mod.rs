//! A small ISO Base Media File Format (ISO/IEC 14496-12) muxer and demuxer for one H.264
//! video track, carried as an `avc1` sample entry with an `avcC` decoder configuration
//! (ISO/IEC 14496-15 §5). Box layouts cite the sections of 14496-12 (5th edition).

mod demux;
mod mux;

pub use demux::demux;
pub use mux::mux;

/// A box: its four-character type and its payload (the bytes after the header).
pub type BoxRef<'a> = ([u8; 4], &'a [u8]);

/// The boxes laid end to end in `data`, in order (14496-12 §4.2: 32-bit size, type, and a
/// 64-bit size when the 32-bit one is 1; size 0 runs to the end of the enclosing data).
pub fn boxes(data: &[u8]) -> Result<Vec<BoxRef<'_>>, String> {
    let mut out = Vec::new();
    let mut p = 0usize;
    while p < data.len() {
        let head = data
            .get(p..p + 8)
            .ok_or_else(|| format!("truncated box header at byte {p}"))?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let kind = [head[4], head[5], head[6], head[7]];
        let (header, size) = match size32 {
            0 => (8, (data.len() - p) as u64),
            1 => {
                let b = data
                    .get(p + 8..p + 16)
                    .ok_or_else(|| format!("truncated box header at byte {p}"))?;
                (16, u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            }
            n => (8, n as u64),
        };
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| p.checked_add(s))
            .filter(|&e| size >= header as u64 && e <= data.len())
            .ok_or_else(|| format!("box {} overruns its container", name(&kind)))?;
        out.push((kind, &data[p + header..end]));
        p = end;
    }
    Ok(out)
}

/// A four-character code as text, for messages.
pub fn name(kind: &[u8; 4]) -> String {
    String::from_utf8_lossy(kind).into_owned()
}

/// The types of the top-level boxes in file order (for checks such as "moov before mdat").
pub fn top_level_boxes(data: &[u8]) -> Result<Vec<String>, String> {
    Ok(boxes(data)?.iter().map(|(k, _)| name(k)).collect())
}
