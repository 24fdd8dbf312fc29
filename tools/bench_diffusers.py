#!/usr/bin/env python3
"""Times diffusers' WanPipeline on the benchmark model (tools/bench_model.py) with the
same settings `benches/run.sh` gives tessera, and prints one JSON line:
whole-run wall time, mean denoising step, VAE decode, peak RSS.

    venv/bin/python tools/bench_diffusers.py MODEL_DIR LATENTS.safetensors [FRAMES.safetensors]

With a third argument the decoded frames ((T, H, W, 3) in [0, 1]) are saved there, for
the parity check of `benches/run.sh`.
"""
import json
import os
import resource
import sys
import time

import torch
from safetensors.torch import load_file

from diffusers import WanPipeline

torch.set_num_threads(2)
torch.set_grad_enabled(False)
model, latents_path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
pipe = WanPipeline.from_pretrained(model, torch_dtype=torch.float32)
latents = load_file(latents_path)["latents"]
step_times = []
last = [time.perf_counter()]


def on_step(p, i, t, kw):
    now = time.perf_counter()
    step_times.append(now - last[0])
    last[0] = now
    return kw


# The first step is timed from the transformer's first call, not from the pipeline call:
# the prompt's encoding (the UMT5) comes before it and is not a denoising step (tessera's
# step is timed from its "denoise..." stage, after the encoding, the same way).
first_call = []
pipe.transformer.register_forward_pre_hook(lambda m, a: first_call.append(time.perf_counter()) if not first_call else None)

# Time the decode separately: run the loop to latents, then decode as the pipeline does.
t_loop = time.perf_counter()
last[0] = t_loop
final = pipe(prompt="a red ball bounces on a wooden floor", negative_prompt="blurry", height=256, width=256,
             num_frames=17, num_inference_steps=int(os.environ.get("STEPS", "4")), guidance_scale=5.0, latents=latents.clone(),
             max_sequence_length=512, output_type="latent", callback_on_step_end=on_step).frames
t_dec = time.perf_counter()
step_times[0] -= first_call[0] - t_loop
lm = torch.tensor(pipe.vae.config.latents_mean).view(1, -1, 1, 1, 1)
ls = 1.0 / torch.tensor(pipe.vae.config.latents_std).view(1, -1, 1, 1, 1)
video = pipe.vae.decode(final / ls + lm, return_dict=False)[0]
frames = pipe.video_processor.postprocess_video(video, output_type="np")
t_end = time.perf_counter()
if len(sys.argv) > 3:
    from safetensors.torch import save_file
    save_file({"frames": torch.from_numpy(frames[0]).contiguous()}, sys.argv[3])
print(json.dumps(dict(
    impl="diffusers", total_s=t_end - t0, step_s=sum(step_times) / len(step_times), decode_s=t_end - t_dec,
    peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, frames=list(frames.shape),
)))
