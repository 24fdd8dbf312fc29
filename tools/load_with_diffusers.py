"""Loads a model folder that `tessera train` exported (a diffusers
WanImageToVideoPipeline without an image encoder) with diffusers, runs it on a prompt
with the same empty-mask conditioning tessera uses for text to video, and optionally
compares the frames with tessera's `.safetensors` output for the same initial latents.

    python tools/load_with_diffusers.py MODEL_DIR "a red ball bounces" \
        --size 32x32 --frames 5 --steps 4 [--latents L.safetensors --compare FRAMES.safetensors]

Needs torch, diffusers, transformers, safetensors (never needed to build or test tessera).
"""
import argparse

import numpy as np
import torch
from diffusers import WanImageToVideoPipeline
from safetensors.torch import load_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("prompt")
    ap.add_argument("--size", default="32x32")
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--max-sequence-length", type=int, default=96)
    ap.add_argument("--latents")
    ap.add_argument("--compare")
    a = ap.parse_args()
    w, h = map(int, a.size.split("x"))
    d = a.model
    # The folder loads as diffusers' own pipeline (no image encoder: conditioning goes
    # through the mask and latent channels). Its __call__ wants an image, so text to video
    # runs the same loop by hand below, with an empty mask as tessera does.
    pipe = WanImageToVideoPipeline.from_pretrained(d)
    transformer, vae, text_encoder = pipe.transformer.eval(), pipe.vae.eval(), pipe.text_encoder.eval()
    tokenizer, scheduler = pipe.tokenizer, pipe.scheduler
    print("loaded:", type(pipe).__name__, type(transformer).__name__, type(vae).__name__, type(text_encoder).__name__, type(scheduler).__name__)

    def embed(text):
        t = tokenizer([text], padding="max_length", max_length=a.max_sequence_length, truncation=True, return_tensors="pt")
        with torch.no_grad():
            e = text_encoder(t.input_ids, t.attention_mask).last_hidden_state
        n = int(t.attention_mask.sum())
        e[:, n:] = 0
        return e

    cond, uncond = embed(a.prompt), embed("")
    z = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean).view(1, z, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, z, 1, 1, 1)
    with torch.no_grad():
        zero = vae.encode(torch.zeros(1, 3, a.frames, h, w)).latent_dist.mode()
    c_lat = (zero - mean) / std
    # The latent grid is whatever the VAE's spatial compression makes it (8x for Wan's,
    # 4x for tessera-world since v3): read it from the encoded zeros, not assumed.
    f, lh, lw = c_lat.shape[2:]
    extra = torch.cat([torch.zeros(1, 4, f, lh, lw), c_lat], 1)
    if a.latents:
        x = load_file(a.latents)["latents"].float()
    else:
        x = torch.randn(1, z, f, lh, lw, generator=torch.Generator().manual_seed(0))
    scheduler.set_timesteps(a.steps)
    for t in scheduler.timesteps:
        inp = torch.cat([x, extra], 1)
        with torch.no_grad():
            vc = transformer(inp, t.expand(1), cond, return_dict=False)[0]
            vu = transformer(inp, t.expand(1), uncond, return_dict=False)[0]
        v = vu + a.guidance * (vc - vu)
        x = scheduler.step(v, t, x, return_dict=False)[0]
    with torch.no_grad():
        video = vae.decode(x * std + mean, return_dict=False)[0]
    frames = ((video[0].permute(1, 2, 3, 0).clamp(-1, 1) + 1) / 2).numpy()
    print("frames:", frames.shape)
    if a.compare:
        ours = load_file(a.compare)["frames"].numpy()
        rel = np.linalg.norm(ours - frames) / np.linalg.norm(frames)
        print(f"relative L2 against tessera: {rel:.3e}")


if __name__ == "__main__":
    main()
