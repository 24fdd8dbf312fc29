//! `model_index.json`: which class lives in which sub-folder, plus pipeline options
//! (`boundary_ratio` for Wan 2.2's two experts, `expand_timesteps` for Wan 2.2 TI2V).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tessera_models::loading::read_json;

use crate::{Error, Result};

/// Pipeline classes whose folders this engine runs.
/// `WanImageToVideoPipeline` is run when it has no CLIP image encoder (the layout of Wan 2.2
/// image-to-video and of tessera's own world models: conditioning through mask and latent
/// channels only).
pub const SUPPORTED_PIPELINES: &[&str] = &["WanPipeline", "WanImageToVideoPipeline"];

#[derive(Debug, Clone)]
pub struct ModelIndex {
    pub path: PathBuf,
    pub class_name: String,
    /// component name -> (library, class), e.g. "vae" -> ("diffusers", "AutoencoderKLWan").
    /// A component saved as `[null, null]` (absent) is left out.
    pub components: BTreeMap<String, (String, String)>,
    /// Wan 2.2 A14B: timesteps >= boundary_ratio * num_train_timesteps go to `transformer`,
    /// the rest to `transformer_2`.
    pub boundary_ratio: Option<f64>,
    /// Wan 2.2 TI2V: one timestep per latent token instead of one per sample.
    pub expand_timesteps: bool,
}

impl ModelIndex {
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("model_index.json");
        if !path.is_file() {
            return Err(Error::Invalid(format!(
                "{} is not a diffusers model folder: {} is missing",
                dir.display(),
                path.display()
            )));
        }
        let value: Value = read_json(&path)?;
        let bad = |message: String| Error::Model(tessera_models::Error::BadConfig { path: path.clone(), message });
        let obj = value.as_object().ok_or_else(|| bad("expected a JSON object".into()))?;
        let class_name = obj.get("_class_name").and_then(Value::as_str).unwrap_or_default().to_string();
        if !SUPPORTED_PIPELINES.contains(&class_name.as_str()) {
            return Err(tessera_models::Error::UnknownClass {
                path: path.clone(),
                class: class_name,
                supported: SUPPORTED_PIPELINES.join(", "),
            }
            .into());
        }
        let mut components = BTreeMap::new();
        for (key, v) in obj {
            if key.starts_with('_') {
                continue;
            }
            if let Some([lib, class]) = v.as_array().map(Vec::as_slice) {
                if let (Some(lib), Some(class)) = (lib.as_str(), class.as_str()) {
                    components.insert(key.clone(), (lib.to_string(), class.to_string()));
                }
            }
        }
        let boundary_ratio = match obj.get("boundary_ratio") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_f64()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| bad(format!("`boundary_ratio` must be a number in [0, 1], got {v}")))?,
            ),
        };
        let expand_timesteps = obj.get("expand_timesteps").and_then(Value::as_bool).unwrap_or(false);
        Ok(Self { path, class_name, components, boundary_ratio, expand_timesteps })
    }

    /// The class of a component, or an error naming model_index.json if it is absent.
    pub fn require(&self, component: &str) -> Result<&str> {
        self.components.get(component).map(|(_, c)| c.as_str()).ok_or_else(|| {
            Error::Model(tessera_models::Error::BadConfig {
                path: self.path.clone(),
                message: format!("has no `{component}` component"),
            })
        })
    }

    pub fn has(&self, component: &str) -> bool {
        self.components.contains_key(component)
    }
}
