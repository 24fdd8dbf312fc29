#!/usr/bin/env python3
"""Writes the benchmark model: random weights in the diffusers layout at the size the
engine issue sets as its speed goal (transformer: 8 layers of width 512, head dim 128;
the real Wan 2.1 VAE architecture; a 4-layer UMT5 of width 512 with the fixture
tokenizer). Random weights: only speed and memory are measured with it.

    venv/bin/python tools/bench_model.py /work/bench/model
    SHAPE=wan13 venv/bin/python tools/bench_model.py /work/bench13/model

SHAPE=wan13: the engine issue's second configuration, shaped like Wan 2.1 T2V 1.3B
(transformer of 30 layers, width 1536 = 12 heads of 128, FFN 8960, text width 4096) with
the same VAE and a UMT5 of the real width (4096, FFN 10240, 64 heads of 64) but 2 layers.
"""
import os
import sys

import torch
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import MODELS, UNIPC  # noqa: E402

out = sys.argv[1] if len(sys.argv) > 1 else "/work/bench/model"
torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained(os.path.join(MODELS, "wan21/tokenizer"))
wan13 = os.environ.get("SHAPE") == "wan13"
width, d_ff, layers, heads = (4096, 10240, 2, 64) if wan13 else (512, 1024, 4, 8)
enc = UMT5EncoderModel(UMT5Config(vocab_size=len(tok), d_model=width, d_kv=64, d_ff=d_ff, num_layers=layers,
                                  num_heads=heads, feed_forward_proj="gated-gelu", dropout_rate=0.0))
heads, ffn, layers = (12, 8960, 30) if wan13 else (4, 2048, 8)
tr = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=128, in_channels=16,
                           out_channels=16, text_dim=width, freq_dim=256, ffn_dim=ffn, num_layers=layers,
                           cross_attn_norm=True, qk_norm="rms_norm_across_heads")
vae = AutoencoderKLWan()  # Wan 2.1 VAE: base_dim 96, dim_mult [1, 2, 4, 4], 2 res blocks
pipe = WanPipeline(tokenizer=tok, text_encoder=enc, vae=vae, scheduler=UniPCMultistepScheduler(**UNIPC), transformer=tr)
pipe.save_pretrained(out)
print("wrote", out)
