//! Typed configs of the Wan transformer, deserialised from `transformer/config.json` with
//! diffusers' defaults (models/transformers/transformer_wan.py, `WanTransformer3DModel.__init__`).

use std::path::Path;

use serde::Deserialize;

use crate::loading::{check_class, read_json};
use crate::{Error, Result};

fn d_patch() -> [usize; 3] {
    [1, 2, 2]
}
fn d_heads() -> usize {
    40
}
fn d_head_dim() -> usize {
    128
}
fn d_in() -> usize {
    16
}
fn d_text() -> usize {
    4096
}
fn d_freq() -> usize {
    256
}
fn d_ffn() -> usize {
    13824
}
fn d_layers() -> usize {
    40
}
fn d_true() -> bool {
    true
}
fn d_qk() -> Option<String> {
    Some("rms_norm_across_heads".into())
}
fn d_eps() -> f64 {
    1e-6
}
fn d_rope() -> usize {
    1024
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WanTransformerConfig {
    #[serde(default = "d_patch")]
    pub patch_size: [usize; 3],
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d_head_dim")]
    pub attention_head_dim: usize,
    #[serde(default = "d_in")]
    pub in_channels: usize,
    /// `null` in the checkpoint means "same as in_channels"; resolved by [`Self::out_channels`].
    #[serde(default)]
    pub out_channels: Option<usize>,
    #[serde(default = "d_text")]
    pub text_dim: usize,
    #[serde(default = "d_freq")]
    pub freq_dim: usize,
    #[serde(default = "d_ffn")]
    pub ffn_dim: usize,
    #[serde(default = "d_layers")]
    pub num_layers: usize,
    #[serde(default = "d_true")]
    pub cross_attn_norm: bool,
    #[serde(default = "d_qk")]
    pub qk_norm: Option<String>,
    #[serde(default = "d_eps")]
    pub eps: f64,
    /// Wan 2.1 I2V: CLIP image embedding width; enables the image context in cross-attention.
    #[serde(default)]
    pub image_dim: Option<usize>,
    #[serde(default)]
    pub added_kv_proj_dim: Option<usize>,
    #[serde(default = "d_rope")]
    pub rope_max_seq_len: usize,
    #[serde(default)]
    pub pos_embed_seq_len: Option<usize>,
}

impl WanTransformerConfig {
    pub fn load(path: &Path) -> Result<Self> {
        check_class(path, &["WanTransformer3DModel"])?;
        let cfg: Self = read_json(path)?;
        cfg.validate().map_err(|message| Error::BadConfig { path: path.to_path_buf(), message })?;
        Ok(cfg)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.patch_size.contains(&0) {
            return Err(format!("`patch_size` {:?} has a zero", self.patch_size));
        }
        if self.num_attention_heads == 0 || self.attention_head_dim == 0 {
            return Err("`num_attention_heads` and `attention_head_dim` must be positive".into());
        }
        if !self.attention_head_dim.is_multiple_of(2) || self.attention_head_dim < 6 {
            return Err(format!(
                "`attention_head_dim` {} must be even and >= 6 for the 3-axis rotary embedding",
                self.attention_head_dim
            ));
        }
        match self.qk_norm.as_deref() {
            Some("rms_norm_across_heads") | None => {}
            Some(other) => {
                return Err(format!(
                    "`qk_norm` {other:?} is not supported (supported: \"rms_norm_across_heads\", null)"
                ))
            }
        }
        Ok(())
    }

    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// The configuration of the parity fixtures (tools/make_fixtures.py).
    pub fn tiny() -> Self {
        Self {
            patch_size: [1, 2, 2],
            num_attention_heads: 2,
            attention_head_dim: 12,
            in_channels: 16,
            out_channels: Some(16),
            text_dim: 32,
            freq_dim: 256,
            ffn_dim: 32,
            num_layers: 2,
            cross_attn_norm: true,
            qk_norm: d_qk(),
            eps: 1e-6,
            image_dim: None,
            added_kv_proj_dim: None,
            rope_max_seq_len: 32,
            pos_embed_seq_len: None,
        }
    }
}
