//! Step caching as a generation option (`--cache`, the API's `cache`): which policy, at
//! which threshold, and where MagCache's calibrated ratios come from. The mechanism is
//! tessera-models' `wan::cache` (docs/ARCHITECTURE.md, section 1, stage 10).

use std::path::Path;

use serde::{Deserialize, Serialize};
use tessera_models::wan::cache::{fit_ratios, Policy};

use crate::defaults::ModelDefaults;
use crate::{Error, Result};

/// The kinds of step cache; written as `first-block` and `magcache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CacheKind {
    #[serde(rename = "first-block")]
    FirstBlock,
    #[serde(rename = "magcache")]
    MagCache,
}

impl CacheKind {
    pub const NAMES: &'static str = "first-block, magcache";

    pub fn parse(s: &str) -> Option<CacheKind> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "first-block" | "fbc" => Some(CacheKind::FirstBlock),
            "magcache" | "mag-cache" | "mag" => Some(CacheKind::MagCache),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CacheKind::FirstBlock => "first-block",
            CacheKind::MagCache => "magcache",
        }
    }

    /// The threshold used when none is given: diffusers' defaults
    /// (`FirstBlockCacheConfig`, `MagCacheConfig`), so the same setting skips the same
    /// steps in both.
    pub fn default_threshold(self) -> f64 {
        match self {
            CacheKind::FirstBlock => 0.05,
            CacheKind::MagCache => 0.06,
        }
    }
}

/// MagCache's other settings, diffusers' defaults (0.42): at most this many skips in a
/// row...
pub const MAG_MAX_SKIP: usize = 3;
/// ...and never within the first fifth of the steps.
pub const MAG_RETENTION: f64 = 0.2;

/// A step cache request: the kind and its threshold (the kind's default when `None`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepCache {
    pub kind: CacheKind,
    pub threshold: Option<f64>,
}

impl StepCache {
    pub fn threshold(&self) -> f64 {
        self.threshold.unwrap_or(self.kind.default_threshold())
    }

    /// The policy for a run of `steps` steps of the model in `dir`. MagCache needs the
    /// model's calibrated ratios (`mag_ratios` in its `tessera.json`).
    pub fn policy(&self, dir: &Path, steps: usize) -> Result<Policy> {
        let threshold = self.threshold();
        Ok(match self.kind {
            CacheKind::FirstBlock => Policy::FirstBlock { threshold },
            CacheKind::MagCache => {
                let ratios = ModelDefaults::read(dir)?.mag_ratios.filter(|r| !r.is_empty()).ok_or_else(|| {
                    Error::Invalid(format!(
                        "--cache magcache needs the model's magnitude ratios and {} has none (`mag_ratios` in its tessera.json); measure them once with `tessera cache-calibrate --model {} --steps {steps} --write`, or use --cache first-block",
                        dir.display(),
                        dir.display()
                    ))
                })?;
                Policy::Mag {
                    threshold,
                    max_skip: MAG_MAX_SKIP,
                    retention: (MAG_RETENTION * steps as f64 + 0.5) as usize,
                    ratios: fit_ratios(&ratios, steps),
                }
            }
        })
    }
}

/// Checks a threshold as both front ends do.
pub fn check_threshold(t: f64) -> std::result::Result<(), String> {
    if !(t.is_finite() && t > 0.0 && t <= 10.0) {
        return Err(format!("the cache threshold must be above 0 and at most 10 (got {t})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        for k in [CacheKind::FirstBlock, CacheKind::MagCache] {
            assert_eq!(CacheKind::parse(k.name()), Some(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{}\"", k.name()));
        }
        assert_eq!(CacheKind::parse("First_Block"), Some(CacheKind::FirstBlock));
        assert_eq!(CacheKind::parse("teacache"), None);
        assert!(check_threshold(0.0).is_err() && check_threshold(f64::NAN).is_err() && check_threshold(0.1).is_ok());
    }

    #[test]
    fn magcache_reads_the_ratios_and_says_how_to_get_them() {
        let dir = std::env::temp_dir().join(format!("tessera-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = StepCache { kind: CacheKind::MagCache, threshold: None };
        let e = c.policy(&dir, 10).unwrap_err().to_string();
        assert!(e.contains("tessera cache-calibrate") && e.contains("--steps 10"), "{e}");
        std::fs::write(dir.join("tessera.json"), r#"{"mag_ratios": [1.0, 0.9, 0.8]}"#).unwrap();
        let p = c.policy(&dir, 5).unwrap();
        assert_eq!(
            p,
            Policy::Mag { threshold: 0.06, max_skip: 3, retention: 1, ratios: vec![1.0, 1.0, 0.9, 0.8, 0.8] }
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
