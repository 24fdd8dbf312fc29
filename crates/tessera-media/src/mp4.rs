//! A minimal ISO Base Media File Format (ISO/IEC 14496-12) muxer and demuxer for one
//! H.264 video track (sample entry `avc1` with `avcC`, ISO/IEC 14496-15).
//!
//! The muxer writes `ftyp`, then `moov`, then `mdat` ("fast start"): players and browsers
//! read the index before the data and can start playing while downloading. The demuxer
//! accepts `moov` before or after `mdat` and the common sample tables (stts, stsc, stsz,
//! stco/co64, stss), as written by us, ffmpeg/x264 and most encoders.

use crate::h264::{Sample, Stream};

/// Appends a box: 32-bit size, 4-char type, payload.
fn boxed(out: &mut Vec<u8>, kind: &[u8; 4], payload: &[u8]) {
    out.extend_from_slice(&((payload.len() + 8) as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(payload);
}

/// A full box: version and flags before the payload.
fn full(out: &mut Vec<u8>, kind: &[u8; 4], version: u8, flags: u32, payload: &[u8]) {
    let mut p = vec![version];
    p.extend_from_slice(&flags.to_be_bytes()[1..]);
    p.extend_from_slice(payload);
    boxed(out, kind, &p);
}

fn be32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn be16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// Timescale and per-sample duration for a frame rate: exact for integer rates and
/// for the NTSC rates, to the millisecond otherwise.
fn timing(fps: f64) -> (u32, u32) {
    if (fps - fps.round()).abs() < 1e-9 {
        ((fps.round() as u32) * 1000, 1000)
    } else if (fps * 1.001 - (fps * 1.001).round()).abs() < 1e-6 {
        (((fps * 1.001).round() as u32) * 1000, 1001)
    } else {
        ((fps * 1000.0).round().max(1.0) as u32, 1000)
    }
}

fn moov(s: &Stream, data_offset: u64) -> Vec<u8> {
    let (timescale, delta) = timing(s.fps);
    let n = s.samples.len() as u32;
    let duration = n * delta;
    let mut mvhd = Vec::new();
    be32(&mut mvhd, 0); // creation time
    be32(&mut mvhd, 0); // modification time
    be32(&mut mvhd, timescale);
    be32(&mut mvhd, duration);
    be32(&mut mvhd, 0x0001_0000); // rate 1.0
    be16(&mut mvhd, 0x0100); // volume 1.0
    mvhd.extend_from_slice(&[0; 10]);
    MATRIX.iter().for_each(|&m| be32(&mut mvhd, m));
    mvhd.extend_from_slice(&[0; 24]);
    be32(&mut mvhd, 2); // next track id

    let mut tkhd = Vec::new();
    be32(&mut tkhd, 0);
    be32(&mut tkhd, 0);
    be32(&mut tkhd, 1); // track id
    be32(&mut tkhd, 0);
    be32(&mut tkhd, duration);
    tkhd.extend_from_slice(&[0; 8]);
    be16(&mut tkhd, 0); // layer
    be16(&mut tkhd, 0); // alternate group
    be16(&mut tkhd, 0); // volume
    be16(&mut tkhd, 0);
    MATRIX.iter().for_each(|&m| be32(&mut tkhd, m));
    be32(&mut tkhd, (s.width as u32) << 16);
    be32(&mut tkhd, (s.height as u32) << 16);

    let mut mdhd = Vec::new();
    be32(&mut mdhd, 0);
    be32(&mut mdhd, 0);
    be32(&mut mdhd, timescale);
    be32(&mut mdhd, duration);
    be16(&mut mdhd, 0x55C4); // language "und"
    be16(&mut mdhd, 0);

    let mut hdlr = Vec::new();
    be32(&mut hdlr, 0);
    hdlr.extend_from_slice(b"vide");
    hdlr.extend_from_slice(&[0; 12]);
    hdlr.extend_from_slice(b"VideoHandler\0");

    // Sample description: avc1 with avcC. The coded size is the even-padded size.
    let (cw, ch) = (s.width.div_ceil(2) * 2, s.height.div_ceil(2) * 2);
    let mut avcc = vec![
        1,
        s.sps.get(1).copied().unwrap_or(66),
        s.sps.get(2).copied().unwrap_or(0),
        s.sps.get(3).copied().unwrap_or(30),
        0xFF,
        0xE1,
    ];
    be16(&mut avcc, s.sps.len() as u16);
    avcc.extend_from_slice(&s.sps);
    avcc.push(1);
    be16(&mut avcc, s.pps.len() as u16);
    avcc.extend_from_slice(&s.pps);
    let mut avc1 = vec![0; 6];
    be16(&mut avc1, 1); // data reference index
    avc1.extend_from_slice(&[0; 16]);
    be16(&mut avc1, cw as u16);
    be16(&mut avc1, ch as u16);
    be32(&mut avc1, 0x0048_0000);
    be32(&mut avc1, 0x0048_0000);
    be32(&mut avc1, 0);
    be16(&mut avc1, 1); // frame count
    let mut name = [0u8; 32];
    name[0] = 7;
    name[1..8].copy_from_slice(b"tessera");
    avc1.extend_from_slice(&name);
    be16(&mut avc1, 0x0018);
    be16(&mut avc1, 0xFFFF);
    boxed(&mut avc1, b"avcC", &avcc);
    let mut stsd = Vec::new();
    be32(&mut stsd, 1);
    boxed(&mut stsd, b"avc1", &avc1);

    let mut stts = Vec::new();
    be32(&mut stts, 1);
    be32(&mut stts, n);
    be32(&mut stts, delta);
    let mut stss = Vec::new();
    let syncs: Vec<u32> = (0..n)
        .filter(|&i| s.samples[i as usize].sync)
        .map(|i| i + 1)
        .collect();
    be32(&mut stss, syncs.len() as u32);
    syncs.iter().for_each(|&i| be32(&mut stss, i));
    let mut stsc = Vec::new();
    be32(&mut stsc, 1);
    be32(&mut stsc, 1); // first chunk
    be32(&mut stsc, n); // all samples in one chunk
    be32(&mut stsc, 1);
    let mut stsz = Vec::new();
    be32(&mut stsz, 0);
    be32(&mut stsz, n);
    s.samples
        .iter()
        .for_each(|x| be32(&mut stsz, x.data.len() as u32));

    let mut stbl = Vec::new();
    full(&mut stbl, b"stsd", 0, 0, &stsd);
    full(&mut stbl, b"stts", 0, 0, &stts);
    full(&mut stbl, b"stss", 0, 0, &stss);
    full(&mut stbl, b"stsc", 0, 0, &stsc);
    full(&mut stbl, b"stsz", 0, 0, &stsz);
    if data_offset > u32::MAX as u64 / 2 {
        let mut co64 = Vec::new();
        be32(&mut co64, 1);
        co64.extend_from_slice(&data_offset.to_be_bytes());
        full(&mut stbl, b"co64", 0, 0, &co64);
    } else {
        let mut stco = Vec::new();
        be32(&mut stco, 1);
        be32(&mut stco, data_offset as u32);
        full(&mut stbl, b"stco", 0, 0, &stco);
    }

    let mut dref = Vec::new();
    be32(&mut dref, 1);
    full(&mut dref, b"url ", 0, 1, &[]);
    let mut dinf = Vec::new();
    full(&mut dinf, b"dref", 0, 0, &dref);
    let mut minf = Vec::new();
    full(&mut minf, b"vmhd", 0, 1, &[0; 8]);
    boxed(&mut minf, b"dinf", &dinf);
    boxed(&mut minf, b"stbl", &stbl);
    let mut mdia = Vec::new();
    full(&mut mdia, b"mdhd", 0, 0, &mdhd);
    full(&mut mdia, b"hdlr", 0, 0, &hdlr);
    boxed(&mut mdia, b"minf", &minf);
    let mut trak = Vec::new();
    full(&mut trak, b"tkhd", 0, 3, &tkhd);
    boxed(&mut trak, b"mdia", &mdia);
    let mut moov = Vec::new();
    full(&mut moov, b"mvhd", 0, 0, &mvhd);
    boxed(&mut moov, b"trak", &trak);
    let mut out = Vec::new();
    boxed(&mut out, b"moov", &moov);
    out
}

/// ftyp + moov + mdat, with the moov's chunk offset pointing into mdat.
pub fn mux(s: &Stream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ftyp = b"isom".to_vec();
    be32(&mut ftyp, 0x200);
    ftyp.extend_from_slice(b"isomiso2avc1mp41");
    boxed(&mut out, b"ftyp", &ftyp);
    let data_len: usize = s.samples.iter().map(|x| x.data.len()).sum();
    // The moov's size does not depend on the offset value (only on stco vs co64), so
    // size it with the right box kind, then write it for real.
    let probe = moov(s, (out.len() + data_len) as u64);
    let offset = (out.len() + probe.len() + 8) as u64;
    out.extend(moov(s, offset));
    out.extend_from_slice(&((data_len + 8) as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    for x in &s.samples {
        out.extend_from_slice(&x.data);
    }
    out
}

/// A box: its four-character type and its payload.
type BoxRef<'a> = ([u8; 4], &'a [u8]);

/// The boxes of a byte range, in order.
fn boxes(data: &[u8]) -> Result<Vec<BoxRef<'_>>, String> {
    let mut out = Vec::new();
    let mut p = 0;
    while p + 8 <= data.len() {
        let size32 = u32::from_be_bytes([data[p], data[p + 1], data[p + 2], data[p + 3]]) as usize;
        let kind = [data[p + 4], data[p + 5], data[p + 6], data[p + 7]];
        let (header, size) = match size32 {
            0 => (8, data.len() - p),
            1 => {
                if p + 16 > data.len() {
                    return Err("truncated box header".into());
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[p + 8..p + 16]);
                (16, u64::from_be_bytes(b) as usize)
            }
            n => (8, n),
        };
        if size < header || p + size > data.len() {
            return Err(format!(
                "box {:?} overruns the file",
                String::from_utf8_lossy(&kind)
            ));
        }
        out.push((kind, &data[p + header..p + size]));
        p += size;
    }
    Ok(out)
}

fn find<'a>(data: &'a [u8], kind: &[u8; 4]) -> Result<Option<&'a [u8]>, String> {
    Ok(boxes(data)?
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, d)| d))
}

fn need<'a>(data: &'a [u8], kind: &[u8; 4]) -> Result<&'a [u8], String> {
    find(data, kind)?.ok_or_else(|| format!("no {} box", String::from_utf8_lossy(kind)))
}

fn u32_at(d: &[u8], i: usize) -> Result<u32, String> {
    d.get(i..i + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| "truncated sample table".to_string())
}

/// Reads the first H.264 video track of an MP4.
pub fn demux(data: &[u8]) -> Result<Stream, String> {
    let moov = need(data, b"moov").map_err(|_| "not an MP4 file (no moov box)".to_string())?;
    for (kind, trak) in boxes(moov)? {
        if &kind != b"trak" {
            continue;
        }
        let mdia = need(trak, b"mdia")?;
        let hdlr = need(mdia, b"hdlr")?;
        if hdlr.get(8..12) != Some(b"vide") {
            continue;
        }
        let tkhd = need(trak, b"tkhd")?;
        let (w, h) = if tkhd.first() == Some(&1) {
            (u32_at(tkhd, 88)? >> 16, u32_at(tkhd, 92)? >> 16)
        } else {
            (u32_at(tkhd, 76)? >> 16, u32_at(tkhd, 80)? >> 16)
        };
        let mdhd = need(mdia, b"mdhd")?;
        let timescale = if mdhd.first() == Some(&1) {
            u32_at(mdhd, 20)?
        } else {
            u32_at(mdhd, 12)?
        };
        let stbl = need(need(mdia, b"minf")?, b"stbl")?;
        let stsd = need(stbl, b"stsd")?;
        let entry = stsd.get(8..).ok_or("empty stsd")?;
        let (ekind, avc1) = boxes(entry)?.into_iter().next().ok_or("empty stsd")?;
        if &ekind != b"avc1" && &ekind != b"avc3" {
            return Err(format!(
                "video codec {:?} is not H.264 (avc1)",
                String::from_utf8_lossy(&ekind)
            ));
        }
        let avcc = need(avc1.get(78..).ok_or("short avc1 entry")?, b"avcC")?;
        let nsps = (*avcc.get(5).ok_or("short avcC")? & 0x1F) as usize;
        let mut p = 6;
        let take = |p: &mut usize| -> Result<Vec<u8>, String> {
            let n = u16::from_be_bytes([
                *avcc.get(*p).ok_or("short avcC")?,
                *avcc.get(*p + 1).ok_or("short avcC")?,
            ]) as usize;
            let v = avcc.get(*p + 2..*p + 2 + n).ok_or("short avcC")?.to_vec();
            *p += 2 + n;
            Ok(v)
        };
        let mut sps = Vec::new();
        for i in 0..nsps {
            let v = take(&mut p)?;
            if i == 0 {
                sps = v;
            }
        }
        let npps = *avcc.get(p).ok_or("short avcC")? as usize;
        p += 1;
        let mut pps = Vec::new();
        for i in 0..npps {
            let v = take(&mut p)?;
            if i == 0 {
                pps = v;
            }
        }
        // Sample sizes, chunk offsets, samples per chunk, durations, sync samples.
        let stsz = need(stbl, b"stsz")?;
        let fixed = u32_at(stsz, 4)?;
        let count = u32_at(stsz, 8)? as usize;
        let sizes: Vec<usize> = (0..count)
            .map(|i| {
                if fixed != 0 {
                    Ok(fixed as usize)
                } else {
                    u32_at(stsz, 12 + 4 * i).map(|x| x as usize)
                }
            })
            .collect::<Result<_, _>>()?;
        let offsets: Vec<u64> =
            if let Some(stco) = find(stbl, b"stco")? {
                (0..u32_at(stco, 4)? as usize)
                    .map(|i| u32_at(stco, 8 + 4 * i).map(u64::from))
                    .collect::<Result<_, _>>()?
            } else {
                let co64 = need(stbl, b"co64")?;
                (0..u32_at(co64, 4)? as usize)
                    .map(|i| {
                        Ok(((u32_at(co64, 8 + 8 * i)? as u64) << 32)
                            | u32_at(co64, 12 + 8 * i)? as u64)
                    })
                    .collect::<Result<_, String>>()?
            };
        let stsc = need(stbl, b"stsc")?;
        let runs: Vec<(usize, usize)> = (0..u32_at(stsc, 4)? as usize)
            .map(|i| {
                Ok((
                    u32_at(stsc, 8 + 12 * i)? as usize,
                    u32_at(stsc, 12 + 12 * i)? as usize,
                ))
            })
            .collect::<Result<_, String>>()?;
        let syncs: Option<Vec<usize>> = match find(stbl, b"stss")? {
            Some(stss) => Some(
                (0..u32_at(stss, 4)? as usize)
                    .map(|i| u32_at(stss, 8 + 4 * i).map(|x| x as usize))
                    .collect::<Result<_, _>>()?,
            ),
            None => None,
        };
        let stts = need(stbl, b"stts")?;
        let (mut total_dur, mut total_n) = (0u64, 0u64);
        for i in 0..u32_at(stts, 4)? as usize {
            let (n, d) = (
                u32_at(stts, 8 + 8 * i)? as u64,
                u32_at(stts, 12 + 8 * i)? as u64,
            );
            total_dur += n * d;
            total_n += n;
        }
        let fps = if total_dur > 0 {
            total_n as f64 * timescale as f64 / total_dur as f64
        } else {
            0.0
        };
        let mut samples = Vec::with_capacity(count);
        let mut k = 0;
        for (c, &off) in offsets.iter().enumerate() {
            let chunk = c + 1;
            let per = runs
                .iter()
                .rev()
                .find(|(first, _)| *first <= chunk)
                .map(|r| r.1)
                .unwrap_or(0);
            let mut pos = off as usize;
            for _ in 0..per {
                if k >= count {
                    break;
                }
                let d = data
                    .get(pos..pos + sizes[k])
                    .ok_or("sample data beyond the end of the file")?;
                samples.push(Sample {
                    data: d.to_vec(),
                    sync: syncs.as_ref().is_none_or(|s| s.contains(&(k + 1))),
                });
                pos += sizes[k];
                k += 1;
            }
        }
        return Ok(Stream {
            width: w as usize,
            height: h as usize,
            sps,
            pps,
            samples,
            fps,
        });
    }
    Err("no video track".into())
}

/// The types of the top-level boxes in file order (for checks such as "moov before mdat").
pub fn top_level_boxes(data: &[u8]) -> Result<Vec<String>, String> {
    Ok(boxes(data)?
        .into_iter()
        .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
        .collect())
}
