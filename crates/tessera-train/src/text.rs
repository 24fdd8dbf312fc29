//! The text side of a world model: a word-level tokenizer over the world's vocabulary
//! (written as a standard tokenizer.json, so the engine's tokenizer loads it) and the
//! configuration of the small UMT5 encoder trained with the transformer.

use std::collections::HashMap;
use std::path::Path;

use tokenizers::models::wordlevel::WordLevel;
use tokenizers::normalizers::Lowercase;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::Tokenizer;

/// Special tokens, with T5's ids: <pad> 0, </s> 1, <unk> 2.
pub const SPECIAL: [&str; 3] = ["<pad>", "</s>", "<unk>"];

/// Builds the tokenizer: special tokens, then every word of the world's vocabulary, plus
/// digits and punctuation; unknown words map to <unk>; "</s>" ends every sequence.
pub fn world_tokenizer() -> anyhow::Result<Tokenizer> {
    let mut vocab: HashMap<String, u32> = HashMap::new();
    let add = |w: &str, vocab: &mut HashMap<String, u32>| {
        let n = vocab.len() as u32;
        vocab.entry(w.to_string()).or_insert(n);
    };
    for s in SPECIAL {
        add(s, &mut vocab);
    }
    for w in tessera_world::language::vocabulary() {
        add(w, &mut vocab);
    }
    for w in ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", ".", ",", ";", "!", "?", "-", "'"] {
        add(w, &mut vocab);
    }
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("<unk>".into())
        .build()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tok = Tokenizer::new(model);
    tok.with_normalizer(Some(Lowercase));
    tok.with_pre_tokenizer(Some(Whitespace {}));
    let post = TemplateProcessing::builder()
        .try_single("$A </s>")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .special_tokens(vec![("</s>", 1)])
        .build()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tok.with_post_processor(Some(post));
    Ok(tok)
}

/// Writes tokenizer.json (and a tokenizer_config.json naming the class) into `dir`.
pub fn save_tokenizer(tok: &Tokenizer, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    tok.save(dir.join("tokenizer.json"), false).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cfg = serde_json::json!({"tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>", "model_max_length": 512});
    std::fs::write(dir.join("tokenizer_config.json"), serde_json::to_vec_pretty(&cfg)?)?;
    Ok(())
}
