//! A small ISO Base Media File Format (ISO/IEC 14496-12) muxer and demuxer for one H.264
//! video track, carried as an `avc1` sample entry with an `avcC` decoder configuration
//! (ISO/IEC 14496-15 §5). Box layouts cite the sections of 14496-12 (5th edition).

mod demux;
mod mux;

pub use demux::demux;
pub use mux::mux;
#[cfg(test)]
use mux::mux_with;

/// A box: its four-character type and its payload (the bytes after the header).
pub type BoxRef<'a> = ([u8; 4], &'a [u8]);

/// The boxes laid end to end in `data`, in order (14496-12 §4.2: 32-bit size, type, and a
/// 64-bit size when the 32-bit one is 1; size 0 runs to the end of the enclosing data).
pub fn boxes(data: &[u8]) -> Result<Vec<BoxRef<'_>>, String> {
    let mut out = Vec::new();
    let mut p = 0usize;
    while p < data.len() {
        let head = data.get(p..p + 8).ok_or_else(|| format!("truncated box header at byte {p}"))?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let kind = [head[4], head[5], head[6], head[7]];
        let (header, size) = match size32 {
            0 => (8, (data.len() - p) as u64),
            1 => {
                let b = data.get(p + 8..p + 16).ok_or_else(|| format!("truncated box header at byte {p}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::{Sample, Stream};

    fn stream() -> Stream {
        Stream {
            width: 35,
            height: 20,
            sps: vec![vec![0x67, 66, 0xC0, 30, 1, 2]],
            pps: vec![vec![0x68, 9]],
            nal_length_size: 4,
            samples: (0..5u8).map(|i| Sample { data: vec![0, 0, 0, 2, 0x65, i], sync: i == 0 }).collect(),
            fps: 24000.0 / 1001.0,
        }
    }

    /// The demuxer gives back what the muxer wrote, with 32- and 64-bit chunk offsets.
    #[test]
    fn demux_inverts_mux_with_stco_and_co64() {
        let s = stream();
        for co64 in [false, true] {
            let bytes = mux_with(&s, co64).unwrap();
            let moov = boxes(&bytes).unwrap()[1].1;
            let has = |k: &[u8]| moov.windows(4).any(|w| w == k);
            assert_eq!((has(b"co64"), has(b"stco")), (co64, !co64));
            let back = demux(&bytes).unwrap();
            assert_eq!((back.width, back.height), (35, 20), "from clap");
            assert_eq!((back.sps, back.pps), (s.sps.clone(), s.pps.clone()));
            assert!((back.fps - s.fps).abs() < 1e-9);
            let data: Vec<_> = back.samples.iter().map(|x| (x.data.clone(), x.sync)).collect();
            let want: Vec<_> = s.samples.iter().map(|x| (x.data.clone(), x.sync)).collect();
            assert_eq!(data, want);
        }
    }

    /// Damaged files are errors, never panics: every truncation of a valid file.
    #[test]
    fn truncated_files_are_errors() {
        let bytes = mux_with(&stream(), false).unwrap();
        for n in 0..bytes.len() {
            assert!(demux(&bytes[..n]).is_err(), "truncated to {n} bytes");
        }
    }
}
