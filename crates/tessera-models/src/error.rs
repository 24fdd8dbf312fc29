//! One error type for the models crate. Every variant reads as one sentence that names
//! the file, key or value at fault, because these messages reach users unchanged.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON for this config: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: no weights found (expected *.safetensors or a *.safetensors.index.json)")]
    NoWeights { path: PathBuf },
    #[error("{path}: {message}")]
    BadWeights { path: PathBuf, message: String },
    #[error("{path}: unsupported `_class_name` {class:?} (supported: {supported})")]
    UnknownClass { path: PathBuf, class: String, supported: String },
    #[error("{path}: {message}")]
    BadConfig { path: PathBuf, message: String },
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
