#!/usr/bin/env python3
"""Writes the benchmark model: random weights in the diffusers layout at the size the
engine issue sets as its speed goal (transformer: 8 layers of width 512, head dim 128;
the real Wan 2.1 VAE architecture; a 4-layer UMT5 of width 512 with the fixture
tokenizer). Random weights: only speed and memory are measured with it.

    venv/bin/python tools/bench_model.py /work/bench/model
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
enc = UMT5EncoderModel(UMT5Config(vocab_size=len(tok), d_model=512, d_kv=64, d_ff=1024, num_layers=4, num_heads=8,
                                  feed_forward_proj="gated-gelu", dropout_rate=0.0))
tr = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=128, in_channels=16,
                           out_channels=16, text_dim=512, freq_dim=256, ffn_dim=2048, num_layers=8,
                           cross_attn_norm=True, qk_norm="rms_norm_across_heads")
vae = AutoencoderKLWan()  # Wan 2.1 VAE: base_dim 96, dim_mult [1, 2, 4, 4], 2 res blocks
pipe = WanPipeline(tokenizer=tok, text_encoder=enc, vae=vae, scheduler=UniPCMultistepScheduler(**UNIPC), transformer=tr)
pipe.save_pretrained(out)
print("wrote", out)
