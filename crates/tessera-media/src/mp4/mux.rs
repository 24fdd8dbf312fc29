//! Writes `ftyp`, `moov`, `mdat` in that order ("fast start"): the index comes before the
//! media data, so browsers and players can start playing while the file downloads.
//!
//! Odd sizes: H.264 4:2:0 can only crop to even sizes (H.264 §7.4.2.1.1, CropUnitX/Y = 2),
//! so an odd-sized video is coded one column/row larger (the last one repeated). The true
//! size is signalled twice: as the track's presentation size (`tkhd`, §8.3.2) and as a
//! clean aperture (`clap`, §12.1.4) in the sample entry. Our reader crops to it, as do
//! players that honour `clap`; the others (ffmpeg 5.1, for one) show the extra column/row.

use crate::h264::Stream;

/// A growing buffer with helpers that write boxes as nested closures, so the code reads
/// like the box tree.
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, x: u8) {
        self.0.push(x);
    }
    fn u16(&mut self, x: u16) {
        self.0.extend_from_slice(&x.to_be_bytes());
    }
    fn u32(&mut self, x: u32) {
        self.0.extend_from_slice(&x.to_be_bytes());
    }
    fn i32(&mut self, x: i32) {
        self.0.extend_from_slice(&x.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn zeros(&mut self, n: usize) {
        self.0.resize(self.0.len() + n, 0);
    }

    /// A box (§4.2): 32-bit size (patched once the payload is written), type, payload.
    fn boxed(&mut self, kind: &[u8; 4], payload: impl FnOnce(&mut Self)) {
        let start = self.0.len();
        self.u32(0);
        self.bytes(kind);
        payload(self);
        let size = (self.0.len() - start) as u32;
        self.0[start..start + 4].copy_from_slice(&size.to_be_bytes());
    }

    /// A full box (§4.2): version and 24-bit flags before the payload.
    fn full(&mut self, kind: &[u8; 4], version: u8, flags: u32, payload: impl FnOnce(&mut Self)) {
        self.boxed(kind, |w| {
            w.u8(version);
            w.bytes(&flags.to_be_bytes()[1..]);
            payload(w);
        });
    }

    /// The unity transformation matrix of mvhd/tkhd (§8.2.2, §8.3.2).
    fn matrix(&mut self) {
        for m in [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
            self.u32(m);
        }
    }
}

/// Timescale and per-sample duration for a frame rate: exact for integer rates and the
/// NTSC rates (24000/1001 ...), to 1/1000 frame per second otherwise.
fn timing(fps: f64) -> (u32, u32) {
    let ntsc = fps * 1.001;
    if (fps - fps.round()).abs() < 1e-9 {
        (fps.round() as u32 * 1000, 1000)
    } else if (ntsc - ntsc.round()).abs() < 1e-6 {
        (ntsc.round() as u32 * 1000, 1001)
    } else {
        ((fps * 1000.0).round().max(1.0) as u32, 1000)
    }
}

/// The ISO/IEC 14496-15 §5.3.3.1 AVCDecoderConfigurationRecord.
fn avcc(w: &mut Writer, s: &Stream) {
    let sps = &s.sps[0];
    let profile = sps.get(1).copied().unwrap_or(66);
    w.u8(1); // configurationVersion
    w.u8(profile); // AVCProfileIndication, profile_compatibility, AVCLevelIndication
    w.u8(sps.get(2).copied().unwrap_or(0));
    w.u8(sps.get(3).copied().unwrap_or(30));
    w.u8(0xFC | (s.nal_length_size as u8 - 1)); // 6 reserved bits, lengthSizeMinusOne
    w.u8(0xE0 | s.sps.len() as u8); // 3 reserved bits, numOfSequenceParameterSets
    for p in &s.sps {
        w.u16(p.len() as u16);
        w.bytes(p);
    }
    w.u8(s.pps.len() as u8);
    for p in &s.pps {
        w.u16(p.len() as u16);
        w.bytes(p);
    }
    if matches!(profile, 100 | 110 | 122 | 144) {
        // High profiles add chroma format 4:2:0, 8-bit luma and chroma, no SPS extensions.
        w.bytes(&[0xFC | 1, 0xF8, 0xF8, 0]);
    }
}

/// The `avc1` visual sample entry (§12.1.3, 14496-15 §5.4.2) with its boxes.
fn avc1(w: &mut Writer, s: &Stream, (cw, ch): (usize, usize)) {
    w.boxed(b"avc1", |w| {
        w.zeros(6);
        w.u16(1); // data_reference_index
        w.zeros(16);
        w.u16(cw as u16); // the coded (even) size
        w.u16(ch as u16);
        w.u32(0x0048_0000); // 72 dpi
        w.u32(0x0048_0000);
        w.u32(0);
        w.u16(1); // frame_count
        let mut compressor = [0u8; 32];
        compressor[0] = 7;
        compressor[1..8].copy_from_slice(b"tessera");
        w.bytes(&compressor);
        w.u16(0x0018); // depth: colour, no alpha
        w.u16(0xFFFF); // pre_defined = -1
        w.boxed(b"avcC", |w| avcc(w, s));
        // §12.1.5 colour information, as the SPS's VUI says (see h264.rs): BT.709
        // primaries, sRGB transfer, BT.601 matrix, limited range.
        w.boxed(b"colr", |w| {
            w.bytes(b"nclx");
            w.u16(1);
            w.u16(13);
            w.u16(6);
            w.u8(0);
        });
        if (cw, ch) != (s.width, s.height) {
            // §12.1.4 clean aperture: width, height and the offset of its centre from the
            // picture's centre, as fractions. Keeping the top-left corner moves the
            // centre by -1/2 per cropped column or row.
            w.boxed(b"clap", |w| {
                w.u32(s.width as u32);
                w.u32(1);
                w.u32(s.height as u32);
                w.u32(1);
                w.i32(-((cw - s.width) as i32));
                w.u32(2);
                w.i32(-((ch - s.height) as i32));
                w.u32(2);
            });
        }
    });
}

/// The `moov` box; `data_offset` is where the first sample starts in the file.
fn moov(s: &Stream, data_offset: u64, co64: bool) -> Result<Vec<u8>, String> {
    let (timescale, delta) = timing(s.fps);
    let n = u32::try_from(s.samples.len()).map_err(|_| "too many frames for MP4")?;
    let duration = n.checked_mul(delta).ok_or("video too long for 32-bit MP4 durations")?;
    let coded = (s.width.div_ceil(2) * 2, s.height.div_ceil(2) * 2);
    if coded.0 > u16::MAX as usize || coded.1 > u16::MAX as usize {
        return Err(format!("{}x{} is too large for MP4", s.width, s.height));
    }
    let mut w = Writer(Vec::new());
    w.boxed(b"moov", |w| {
        w.full(b"mvhd", 0, 0, |w| {
            w.u32(0); // creation and modification time
            w.u32(0);
            w.u32(timescale);
            w.u32(duration);
            w.u32(0x0001_0000); // rate 1.0
            w.u16(0x0100); // volume 1.0
            w.zeros(10);
            w.matrix();
            w.zeros(24);
            w.u32(2); // next_track_ID
        });
        w.boxed(b"trak", |w| {
            // flags: track enabled, in movie.
            w.full(b"tkhd", 0, 3, |w| {
                w.u32(0);
                w.u32(0);
                w.u32(1); // track_ID
                w.u32(0);
                w.u32(duration); // in the movie timescale, equal to the media's here
                w.zeros(8);
                w.u16(0); // layer
                w.u16(0); // alternate_group
                w.u16(0); // volume: not audio
                w.u16(0);
                w.matrix();
                w.u32((s.width as u32) << 16); // presentation size, 16.16 fixed point
                w.u32((s.height as u32) << 16);
            });
            w.boxed(b"mdia", |w| {
                w.full(b"mdhd", 0, 0, |w| {
                    w.u32(0);
                    w.u32(0);
                    w.u32(timescale);
                    w.u32(duration);
                    w.u16(0x55C4); // language "und", packed ISO 639-2/T
                    w.u16(0);
                });
                w.full(b"hdlr", 0, 0, |w| {
                    w.u32(0);
                    w.bytes(b"vide");
                    w.zeros(12);
                    w.bytes(b"VideoHandler\0");
                });
                w.boxed(b"minf", |w| {
                    w.full(b"vmhd", 0, 1, |w| w.zeros(8));
                    w.boxed(b"dinf", |w| {
                        w.full(b"dref", 0, 0, |w| {
                            w.u32(1);
                            // flags 1: the media data is in this file.
                            w.full(b"url ", 0, 1, |_| {});
                        });
                    });
                    w.boxed(b"stbl", |w| stbl(w, s, delta, coded, data_offset, co64));
                });
            });
        });
    });
    Ok(w.0)
}

/// The sample table (§8.5): every frame lasts `delta`, all samples form one chunk.
fn stbl(w: &mut Writer, s: &Stream, delta: u32, coded: (usize, usize), data_offset: u64, co64: bool) {
    let n = s.samples.len() as u32;
    w.full(b"stsd", 0, 0, |w| {
        w.u32(1);
        avc1(w, s, coded);
    });
    w.full(b"stts", 0, 0, |w| {
        w.u32(1);
        w.u32(n);
        w.u32(delta);
    });
    // Sync samples (IDR pictures), numbered from 1.
    let sync: Vec<u32> = (1..=n).filter(|&i| s.samples[i as usize - 1].sync).collect();
    w.full(b"stss", 0, 0, |w| {
        w.u32(sync.len() as u32);
        sync.iter().for_each(|&i| w.u32(i));
    });
    w.full(b"stsc", 0, 0, |w| {
        w.u32(1);
        w.u32(1); // first_chunk
        w.u32(n); // samples_per_chunk
        w.u32(1); // sample_description_index
    });
    w.full(b"stsz", 0, 0, |w| {
        w.u32(0); // sizes differ
        w.u32(n);
        s.samples.iter().for_each(|x| w.u32(x.data.len() as u32));
    });
    match u32::try_from(data_offset) {
        Ok(off) if !co64 => w.full(b"stco", 0, 0, |w| {
            w.u32(1);
            w.u32(off);
        }),
        _ => w.full(b"co64", 0, 0, |w| {
            w.u32(1);
            w.bytes(&data_offset.to_be_bytes());
        }),
    }
}

/// ftyp + moov + mdat, with the chunk offset in moov pointing at the first sample.
pub fn mux(s: &Stream) -> Result<Vec<u8>, String> {
    mux_with(s, false)
}

/// As [`mux`]; `co64` forces 64-bit chunk offsets (otherwise used only when needed).
pub fn mux_with(s: &Stream, co64: bool) -> Result<Vec<u8>, String> {
    let mut w = Writer(Vec::new());
    // §4.3: major brand isom, minor version 0x200, compatible brands as ffmpeg writes.
    w.boxed(b"ftyp", |w| {
        w.bytes(b"isom");
        w.u32(0x200);
        w.bytes(b"isomiso2avc1mp41");
    });
    let data_len: u64 = s.samples.iter().map(|x| x.data.len() as u64).sum();
    // mdat needs a 64-bit size beyond 4 GiB (§4.2).
    let mdat_header = if data_len + 8 > u32::MAX as u64 { 16 } else { 8 };
    // moov's size does not depend on the offset's value, so size it first.
    let co64 = co64 || w.0.len() as u64 + 2 * data_len > u32::MAX as u64;
    let probe = moov(s, 0, co64)?;
    let offset = (w.0.len() + probe.len() + mdat_header) as u64;
    let moov = moov(s, offset, co64)?;
    if moov.len() != probe.len() {
        return Err("internal: MP4 index size changed".into());
    }
    let mut out = w.0;
    out.reserve(moov.len() + mdat_header + data_len as usize);
    out.extend(moov);
    if mdat_header == 16 {
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(b"mdat");
        out.extend_from_slice(&(data_len + 16).to_be_bytes());
    } else {
        out.extend_from_slice(&((data_len + 8) as u32).to_be_bytes());
        out.extend_from_slice(b"mdat");
    }
    for x in &s.samples {
        out.extend_from_slice(&x.data);
    }
    Ok(out)
}
