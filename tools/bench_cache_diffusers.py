#!/usr/bin/env python3
"""Times diffusers' denoising loop on the benchmark model (tools/bench_model.py) without a
cache and with its own FirstBlockCache and MagCache hooks (MagCache with the ratios in the
model's tessera.json, the ones tessera uses), counting the passes through the last block
to know how many were skipped. Prints one JSON line per setting. Used by benches/cache.sh.

    venv/bin/python tools/bench_cache_diffusers.py MODEL LATENTS STEPS FBC_THRESHOLD MAG_THRESHOLD
"""
import json
import os
import sys
import time

import torch
from safetensors.torch import load_file

from diffusers import WanPipeline
from diffusers.hooks import FirstBlockCacheConfig, MagCacheConfig

torch.set_num_threads(2)
torch.set_grad_enabled(False)
model, latents_path, steps, fbc, mag = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
latents = load_file(latents_path)["latents"]
ratios = json.load(open(os.path.join(model, "tessera.json")))["mag_ratios"]
settings = [("uncached", None), (f"first-block:{fbc}", FirstBlockCacheConfig(threshold=fbc)),
            (f"magcache:{mag}", MagCacheConfig(threshold=mag, mag_ratios=ratios, num_inference_steps=steps))]
for name, config in settings:
    pipe = WanPipeline.from_pretrained(model, torch_dtype=torch.float32)
    calls = [0]
    pipe.transformer.blocks[-1].attn1.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    if config is not None:
        pipe.transformer.enable_cache(config)
    t0 = time.perf_counter()
    pipe(prompt="a red ball bounces on a wooden floor", negative_prompt="blurry", height=256, width=256,
         num_frames=17, num_inference_steps=steps, guidance_scale=5.0, latents=latents.clone(),
         max_sequence_length=512, output_type="latent")
    # The loop alone: the text encoder's time is taken off by timing it separately.
    t1 = time.perf_counter()
    te0 = time.perf_counter()
    pipe.encode_prompt("a red ball bounces on a wooden floor", "blurry", max_sequence_length=512)
    te = time.perf_counter() - te0
    print(json.dumps(dict(setting=name, loop_s=t1 - t0 - te, computed=calls[0], passes=2 * steps)), flush=True)
