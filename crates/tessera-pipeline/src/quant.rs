//! Weight quantization as a generation option (`--quantize`): the transformer's block
//! linear layers are quantized as they load (tessera-models `linear.rs`,
//! `WanTransformer3DModel::new_quantized`; docs/ARCHITECTURE.md, section 1, stage 10).

use candle_core::quantized::GgmlDType;
use serde::{Deserialize, Serialize};

/// The formats offered; written `q8_0` and `q4_k` (llama.cpp's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Quantize {
    /// 8-bit: blocks of 32 weights with one f16 scale (8.5 bits a weight).
    #[serde(rename = "q8_0")]
    Q8_0,
    /// 4-bit K-quant: super-blocks of 256 weights (4.5 bits a weight).
    #[serde(rename = "q4_k")]
    Q4K,
}

impl Quantize {
    pub const NAMES: &'static str = "q8_0, q4_k";

    pub fn parse(s: &str) -> Option<Quantize> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "q8_0" | "q8" => Some(Quantize::Q8_0),
            "q4_k" | "q4k" | "q4" => Some(Quantize::Q4K),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Quantize::Q8_0 => "q8_0",
            Quantize::Q4K => "q4_k",
        }
    }

    pub fn ggml(self) -> GgmlDType {
        match self {
            Quantize::Q8_0 => GgmlDType::Q8_0,
            Quantize::Q4K => GgmlDType::Q4K,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for q in [Quantize::Q8_0, Quantize::Q4K] {
            assert_eq!(Quantize::parse(q.name()), Some(q));
            assert_eq!(serde_json::to_string(&q).unwrap(), format!("\"{}\"", q.name()));
        }
        assert_eq!(Quantize::parse("Q4-K"), Some(Quantize::Q4K));
        assert_eq!(Quantize::parse("q5_k"), None);
    }
}
