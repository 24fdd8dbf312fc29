#!/usr/bin/env python3
"""Writes the parity fixtures of the tasks issue: diffusers' WanImageToVideoPipeline
(first frame; first and last frame) on a tiny random Wan image-to-video model without an
image encoder (the layout of Wan 2.2 A14B I2V and of tessera's own models), and
WanVideoToVideoPipeline (SDEdit) on the tiny Wan 2.1 text-to-video fixture.

Never needed to build or test tessera: the outputs are committed. Re-run after changing
a case (needs torch, diffusers 0.42, transformers, tokenizers; see make_fixtures.py):

    venv/bin/python tools/task_fixtures.py

Outputs
  crates/tessera-models/tests/fixtures/wan21_i2v/     the model folder (wan21's VAE, text
                                                      encoder and tokenizer; a 36-channel
                                                      transformer)
  crates/tessera-pipeline/tests/fixtures/tasks.json   the cases
  crates/tessera-pipeline/tests/fixtures/task_*.safetensors  inputs (image, last_image,
                                                      video as [-1,1] tensors), noise, frames
"""

import json
import os
import shutil
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import MODELS, PIPE, make_transformer, save  # noqa: E402

from diffusers import WanImageToVideoPipeline, WanVideoToVideoPipeline  # noqa: E402
from diffusers.utils.torch_utils import randn_tensor  # noqa: E402

torch.set_grad_enabled(False)
W, H = 48, 32


def build_i2v():
    src, dst = os.path.join(MODELS, "wan21"), os.path.join(MODELS, "wan21_i2v")
    shutil.rmtree(dst, ignore_errors=True)
    for sub in ("scheduler", "text_encoder", "tokenizer", "vae"):
        shutil.copytree(os.path.join(src, sub), os.path.join(dst, sub))
    make_transformer(31, in_channels=36).save_pretrained(os.path.join(dst, "transformer"))
    with open(os.path.join(src, "model_index.json")) as f:
        index = json.load(f)
    index["_class_name"] = "WanImageToVideoPipeline"
    index["image_encoder"] = [None, None]
    index["image_processor"] = [None, None]
    with open(os.path.join(dst, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2)
    return dst


def build_i2v_clip():
    """A Wan 2.1 image-to-video folder: the transformer reads CLIP features of the image
    (image_dim, added_kv_proj_dim) from a tiny CLIPVisionModel image encoder."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel
    src, dst = os.path.join(MODELS, "wan21"), os.path.join(MODELS, "wan21_i2v_clip")
    shutil.rmtree(dst, ignore_errors=True)
    for sub in ("scheduler", "text_encoder", "tokenizer", "vae"):
        shutil.copytree(os.path.join(src, sub), os.path.join(dst, sub))
    shutil.copytree(os.path.join(MODELS, "wan21_i2v_transformer"), os.path.join(dst, "transformer"))
    torch.manual_seed(41)
    enc = CLIPVisionModel(CLIPVisionConfig(hidden_size=20, intermediate_size=40, num_hidden_layers=3,
                                           num_attention_heads=2, image_size=32, patch_size=8,
                                           hidden_act="gelu", layer_norm_eps=1e-5)).eval()
    from make_fixtures import perturb
    perturb(enc, 0.05, 42)
    enc.save_pretrained(os.path.join(dst, "image_encoder"))
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        os.path.join(dst, "image_processor"))
    with open(os.path.join(src, "model_index.json")) as f:
        index = json.load(f)
    index["_class_name"] = "WanImageToVideoPipeline"
    index["image_encoder"] = ["transformers", "CLIPVisionModel"]
    index["image_processor"] = ["transformers", "CLIPImageProcessor"]
    with open(os.path.join(dst, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2)
    return dst


def picture(seed):
    """A W x H RGB image with structure (gradients and a square), as uint8."""
    g = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    img = np.stack([x * 255 / W, y * 255 / H, np.full_like(x, 128.0)], -1)
    a, b = g.integers(0, W - 12), g.integers(0, H - 12)
    img[b:b + 12, a:a + 12] = g.integers(0, 255, 3)
    return img.astype(np.uint8)


def to_tensor(img):
    """uint8 (H, W, 3) -> (3, H, W) in [-1, 1], as diffusers' image processor."""
    return torch.from_numpy(img).float().permute(2, 0, 1) / 255.0 * 2.0 - 1.0


def record(cases, name, model, frames, tensors, **case):
    """Saves one case: the reference frames (diffusers' np output) with its inputs, and
    its entry for tasks.json."""
    frames = torch.from_numpy(np.ascontiguousarray(frames)).float()
    file = f"task_{name}.safetensors"
    save(os.path.join(PIPE, file), dict(tensors, frames=frames))
    cases.append(dict(name=name, model=model, file=file, **case))
    print(f"{name}: frames {tuple(frames.shape)} mean {frames.mean():.4f} std {frames.std():.4f}")


def main():
    cases = []
    model = build_i2v()
    pipe = WanImageToVideoPipeline.from_pretrained(model)
    frames_n, steps = 9, 3
    common = dict(prompt="A red ball bounces on a wooden floor.", negative_prompt="blurry, static",
                  height=H, width=W, num_frames=frames_n, num_inference_steps=steps, guidance_scale=4.0,
                  max_sequence_length=16)
    lat_shape = (1, 16, (frames_n - 1) // 4 + 1, H // 8, W // 8)
    g = torch.Generator().manual_seed(5)
    for name, last in (("i2v_first", False), ("i2v_first_last", True)):
        first_img, last_img = picture(1), picture(2)
        latents = torch.randn(*lat_shape, generator=g)
        kw = dict(common, image=Image.fromarray(first_img))
        if last:
            kw["last_image"] = Image.fromarray(last_img)
        frames = pipe(latents=latents.clone(), output_type="np", **kw).frames[0]
        tensors = dict(latents=latents, image=to_tensor(first_img))
        if last:
            tensors["last_image"] = to_tensor(last_img)
        record(cases, name, "wan21_i2v", frames, tensors, **common)

    # Wan 2.1 image-to-video with CLIP image features.
    clip_pipe = WanImageToVideoPipeline.from_pretrained(build_i2v_clip())
    first_img = picture(3)
    latents = torch.randn(*lat_shape, generator=g)
    # 512 text tokens: diffusers' attention processor splits image from text context at
    # L - 512, so it is only right with max_sequence_length = 512 (as real checkpoints use).
    clip_common = dict(common, max_sequence_length=512)
    frames = clip_pipe(latents=latents.clone(), output_type="np", image=Image.fromarray(first_img), **clip_common).frames[0]
    record(cases, "i2v_clip", "wan21_i2v_clip", frames, dict(latents=latents, image=to_tensor(first_img)), **clip_common)

    # Wan 2.2 TI2V image-to-video (expand_timesteps): the first latent frame is the
    # image's, its tokens at timestep 0. The fixture folder is a WanPipeline; its parts make
    # the image-to-video pipeline.
    from diffusers import WanPipeline
    t2v = WanPipeline.from_pretrained(os.path.join(MODELS, "wan22_ti2v"))
    ti2v = WanImageToVideoPipeline(tokenizer=t2v.tokenizer, text_encoder=t2v.text_encoder, vae=t2v.vae,
                                   scheduler=t2v.scheduler, transformer=t2v.transformer, expand_timesteps=True)
    th, tw = 64, 96
    ti2v_common = dict(common, height=th, width=tw)
    img = np.array(Image.fromarray(picture(4)).resize((tw, th), Image.NEAREST))
    lat = (1, t2v.vae.config.z_dim, (frames_n - 1) // 4 + 1, th // 16, tw // 16)
    latents = torch.randn(*lat, generator=g)
    frames = ti2v(latents=latents.clone(), output_type="np", image=Image.fromarray(img), **ti2v_common).frames[0]
    record(cases, "ti2v", "wan22_ti2v", frames, dict(latents=latents, image=to_tensor(img)), **ti2v_common)

    # SDEdit on the text-to-video fixture: the noise is drawn by the pipeline after the
    # (deterministic, argmax) encode, so the same generator reproduces it here.
    v2v = WanVideoToVideoPipeline.from_pretrained(os.path.join(MODELS, "wan21"))
    video = [picture(10 + i) for i in range(frames_n)]
    for strength in (0.6, 1.0):
        name = f"v2v_{int(strength * 100)}"
        seed = 7
        out = v2v(video=[Image.fromarray(f) for f in video], strength=strength,
                  generator=torch.Generator().manual_seed(seed), output_type="np",
                  **{k: v for k, v in common.items() if k != "num_frames"}).frames[0]
        noise = randn_tensor(lat_shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
        tensors = dict(latents=noise, video=torch.stack([to_tensor(f) for f in video], 1))
        record(cases, name, "wan21", out, tensors, strength=strength, **common)
    with open(os.path.join(PIPE, "tasks.json"), "w") as f:
        json.dump(cases, f, indent=1)


if __name__ == "__main__":
    main()
