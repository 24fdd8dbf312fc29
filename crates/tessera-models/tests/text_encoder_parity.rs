use candle_core::{DType, Device, Tensor};
use std::path::PathBuf;
use tessera_models::tokenizer::WanTokenizer;
use tessera_models::umt5::{encode_prompts, UMT5EncoderModel};

fn fixtures() -> PathBuf {
    tessera_models::testing::model_fixtures()
}

#[test]
fn tokenizer_matches_transformers() {
    let tok = WanTokenizer::from_file(&fixtures().join("wan21/tokenizer/tokenizer.json")).unwrap();
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("ref/tokenizer.json")).unwrap()).unwrap();
    for c in cases.as_array().unwrap() {
        let prompt = c["prompt"].as_str().unwrap();
        assert_eq!(
            tessera_models::tokenizer::prompt_clean(prompt),
            c["cleaned"].as_str().unwrap(),
            "cleaning {prompt:?}"
        );
        let (ids, mask) = tok.encode(prompt, c["max_length"].as_u64().unwrap() as usize).unwrap();
        let want: Vec<u32> = c["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let want_mask: Vec<u32> =
            c["attention_mask"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(ids, want, "ids of {prompt:?}");
        assert_eq!(mask, want_mask, "mask of {prompt:?}");
    }
}

#[test]
fn encoder_matches_transformers() {
    let enc = UMT5EncoderModel::load(&fixtures().join("wan21/text_encoder"), DType::F32, &Device::Cpu).unwrap();
    let r = candle_core::safetensors::load(fixtures().join("ref/text_encoder.safetensors"), &Device::Cpu).unwrap();
    let out = enc.forward(&r["input_ids"].to_dtype(DType::U32).unwrap(), &r["attention_mask"]).unwrap();
    let e = rel_l2(&out, &r["last_hidden_state"]);
    println!("last_hidden_state rel L2 {e:.2e}");
    assert!(e <= 1e-4, "{e:.3e}");
    let tok = WanTokenizer::from_file(&fixtures().join("wan21/tokenizer/tokenizer.json")).unwrap();
    let prompts = ["A red ball bounces on a wooden floor.", "  two &amp; blue   boxes\n slide &lt;fast&gt;\t "];
    let emb = encode_prompts(&tok, &enc, &prompts, 24, &Device::Cpu).unwrap();
    let e = rel_l2(&emb, &r["prompt_embeds"]);
    println!("prompt_embeds rel L2 {e:.2e}");
    assert!(e <= 1e-4, "{e:.3e}");
}

#[test]
fn sharded_text_encoder_loads() {
    UMT5EncoderModel::load(&fixtures().join("wan22_a14b/text_encoder"), DType::F32, &Device::Cpu).unwrap();
}

/// Relative L2 error, see tessera_models::testing.
fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    tessera_models::testing::rel_l2(a, b).expect("comparable tensors")
}
