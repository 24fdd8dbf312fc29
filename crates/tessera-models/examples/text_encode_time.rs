//! Times the text encoder of a model folder: `cargo run --release -p tessera-models
//! --example text_encode_time -- MODEL_DIR [MAX_LEN]`.
use candle_core::{DType, Device};
use std::time::Instant;
use tessera_models::tokenizer::WanTokenizer;
use tessera_models::umt5::{encode_prompts, UMT5EncoderModel};

fn main() -> anyhow::Result<()> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("MODEL_DIR"));
    let len: usize = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(512);
    let tok = WanTokenizer::from_file(&dir.join("tokenizer/tokenizer.json"))?;
    let enc = UMT5EncoderModel::load(&dir.join("text_encoder"), DType::F32, &Device::Cpu)?;
    for _ in 0..2 {
        let t = Instant::now();
        let e = encode_prompts(&tok, &enc, &["a red ball bounces on a wooden floor"], len, &Device::Cpu)?;
        println!("{:?} in {:.3}s", e.dims(), t.elapsed().as_secs_f64());
    }
    Ok(())
}
