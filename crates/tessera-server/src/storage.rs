//! Where videos and uploaded inputs live: a folder on local disk (the default) or an
//! S3-compatible bucket (`--storage s3://bucket/prefix`), which every server of a
//! scaled-out service shares. Keys are made by the server from checked ids only
//! (`videos/{id}/{attempt}/video.mp4`, `inputs/{id}/reference.png`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::s3::S3Store;

pub enum Storage {
    Local(PathBuf),
    S3(S3Store),
}

impl Storage {
    /// `s3://bucket/prefix`, `file://DIR` or a plain folder path.
    pub fn open(url: &str) -> Result<Self> {
        if url.starts_with("s3://") {
            return Ok(Storage::S3(S3Store::from_url(url)?));
        }
        let dir = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create storage folder {}", dir.display()))?;
        Ok(Storage::Local(dir))
    }

    fn local_path(dir: &Path, key: &str) -> Result<PathBuf> {
        // Belt and braces: keys come from checked ids, but nothing with `..`, a leading
        // slash or odd characters ever becomes a path.
        let ok = !key.is_empty()
            && !key.starts_with('/')
            && key.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
        if !ok {
            bail!("storage key {key:?} is not allowed");
        }
        Ok(dir.join(key))
    }

    /// Stores `bytes` under `key`, whole or not at all (local: temporary file and rename;
    /// S3: one PUT).
    pub fn put(&self, key: &str, bytes: &[u8], content_type: &str) -> Result<()> {
        match self {
            Storage::Local(dir) => {
                let path = Self::local_path(dir, key)?;
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
                }
                tessera_media::write_atomic(&path, bytes)?;
                Ok(())
            }
            Storage::S3(s3) => s3.put(key, bytes, content_type),
        }
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Storage::Local(dir) => {
                let path = Self::local_path(dir, key)?;
                match std::fs::read(&path) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
                }
            }
            Storage::S3(s3) => s3.get(key),
        }
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        match self {
            Storage::Local(dir) => {
                let path = Self::local_path(dir, key)?;
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        // Tidy the emptied folders up to the storage root.
                        let mut p = path.parent();
                        while let Some(d) = p.filter(|d| d.starts_with(dir) && *d != dir.as_path()) {
                            if std::fs::remove_dir(d).is_err() {
                                break;
                            }
                            p = d.parent();
                        }
                        Ok(())
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e).with_context(|| format!("cannot delete {}", path.display())),
                }
            }
            Storage::S3(s3) => s3.delete(key),
        }
    }

    /// Deletes the files of one finished video (or of one attempt at it).
    pub fn delete_output(&self, prefix: &str) -> Result<()> {
        for f in [VIDEO, THUMBNAIL, SPRITESHEET] {
            self.delete(&format!("{prefix}/{f}"))?;
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        match self {
            Storage::Local(dir) => format!("folder {}", dir.display()),
            Storage::S3(s3) => s3.describe(),
        }
    }
}

/// The files of a finished video, under its output prefix.
pub const VIDEO: &str = "video.mp4";
pub const THUMBNAIL: &str = "thumbnail.png";
pub const SPRITESHEET: &str = "spritesheet.png";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_round_trip_and_key_checks() {
        let dir = std::env::temp_dir().join(format!("tessera-storage-{}", crate::db::new_id()));
        let s = Storage::open(dir.to_str().unwrap()).unwrap();
        s.put("videos/a/1/video.mp4", b"abc", "video/mp4").unwrap();
        assert_eq!(s.get("videos/a/1/video.mp4").unwrap().as_deref(), Some(&b"abc"[..]));
        assert_eq!(s.get("videos/a/1/missing.png").unwrap(), None);
        s.delete("videos/a/1/video.mp4").unwrap();
        assert_eq!(s.get("videos/a/1/video.mp4").unwrap(), None);
        assert!(!dir.join("videos").exists(), "emptied folders are removed");
        for bad in ["../x", "/etc/passwd", "a/../../b", "a//b", "a/b c", ""] {
            assert!(s.put(bad, b"x", "x").is_err(), "{bad}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
