#!/usr/bin/env python3
"""Writes tessera's parity fixtures: tiny random-weight Wan model folders in the diffusers
layout and reference tensors computed by diffusers/transformers on them.

Never needed to build or test tessera: the outputs are committed. Re-run after changing
a case (needs torch, diffusers 0.42, transformers 5.x, tokenizers):

    python3 -m venv venv && venv/bin/pip install torch diffusers transformers tokenizers safetensors accelerate gguf
    venv/bin/python tools/make_fixtures.py

Outputs
  crates/tessera-models/tests/fixtures/<model>/   wan21, wan21_euler, wan22_ti2v, wan22_a14b
  crates/tessera-models/tests/fixtures/ref/       per-module reference dumps
  crates/tessera-pipeline/tests/fixtures/         whole-pipeline runs (pipelines.json + tensors)
"""

import json
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from diffusers import (
    AutoencoderKLWan,
    FlowMatchEulerDiscreteScheduler,
    UniPCMultistepScheduler,
    WanPipeline,
    WanTransformer3DModel,
)
from transformers import T5TokenizerFast, UMT5Config, UMT5EncoderModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "crates/tessera-models/tests/fixtures")
REF = os.path.join(MODELS, "ref")
PIPE = os.path.join(ROOT, "crates/tessera-pipeline/tests/fixtures")

torch.set_grad_enabled(False)

# Wan's shipped scheduler config (Wan-AI/Wan2.1-T2V-1.3B-Diffusers scheduler/scheduler_config.json).
UNIPC = dict(
    beta_end=0.02, beta_schedule="linear", beta_start=0.0001, disable_corrector=[],
    dynamic_thresholding_ratio=0.995, final_sigmas_type="zero", flow_shift=3.0, lower_order_final=True,
    num_train_timesteps=1000, predict_x0=True, prediction_type="flow_prediction", rescale_betas_zero_snr=False,
    sample_max_value=1.0, solver_order=2, solver_p=None, solver_type="bh2", steps_offset=0, thresholding=False,
    timestep_spacing="linspace", trained_betas=None, use_beta_sigmas=False, use_exponential_sigmas=False,
    use_flow_sigmas=True, use_karras_sigmas=False,
)

CORPUS = [
    "A red ball bounces on a wooden floor.",
    "A small blue box slides down a ramp and stops on the grass.",
    "Two yellow triangles fall and collide in front of a night sky with stars.",
    "The camera pans left while a large green ball rolls behind a tree and comes back.",
    "An orange ball is thrown to the right at sunset; it bounces twice on stone.",
    "A purple box and a white ball on a checker floor, indoor wall, zoom in.",
    "cinematic, high quality, detailed, slow motion, bright colours, 4k video",
    "blurry, low quality, static, worst quality, jpeg artifacts, ugly, deformed",
]


def perturb(module, scale, seed):
    """Random weights with every parameter moved off its init (norm weights off 1, biases
    off 0) so that a parity test catches a forgotten weight or bias."""
    g = torch.Generator().manual_seed(seed)
    for _, p in sorted(module.named_parameters()):
        noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
        std = p.detach().float().std().item() if p.numel() > 1 else 0.0
        p.add_(noise * max(std, scale) * 0.5)


def make_tokenizer(out_dir):
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=200, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", shrinking_factor=0.75
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
    )
    fast = T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=0)
    fast.save_pretrained(out_dir)
    return fast


def make_text_encoder(vocab_size):
    torch.manual_seed(1)
    cfg = UMT5Config(
        vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=32, relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu", dropout_rate=0.0, tie_word_embeddings=False,
    )
    enc = UMT5EncoderModel(cfg).eval()
    perturb(enc, 0.05, 11)
    return enc


def make_transformer(seed, in_channels=16, out_channels=16, layers=2):
    torch.manual_seed(seed)
    t = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=in_channels,
        out_channels=out_channels, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=layers,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    ).eval()
    perturb(t, 0.05, seed + 100)
    return t


def make_vae(seed, residual=False):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 7)
    if residual:
        z = 48
        vae = AutoencoderKLWan(
            base_dim=8, decoder_base_dim=12, z_dim=z, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
            temperal_downsample=[False, True, True], is_residual=True, in_channels=12, out_channels=12,
            patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
            latents_mean=(torch.randn(z, generator=g) * 0.3).tolist(),
            latents_std=(torch.rand(z, generator=g) + 0.5).tolist(),
        )
    else:
        z = 16
        vae = AutoencoderKLWan(
            base_dim=8, z_dim=z, dim_mult=[1, 2, 2, 2], num_res_blocks=1, temperal_downsample=[False, True, True],
            latents_mean=(torch.randn(z, generator=g) * 0.3).tolist(),
            latents_std=(torch.rand(z, generator=g) + 0.5).tolist(),
        )
    vae.eval()
    perturb(vae, 0.02, seed + 200)
    return vae


def save(path, tensors):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path)


def stats(name, x):
    x = x.float()
    clamped = (x.abs() >= 0.999).float().mean().item()
    print(f"  {name}: shape {tuple(x.shape)} mean {x.mean():.4f} std {x.std():.4f} clamped {clamped:.3f}")


def build_models():
    for d in (MODELS, PIPE):
        if os.path.isdir(d):
            shutil.rmtree(d)
    os.makedirs(REF)
    os.makedirs(PIPE)

    tok_dir = "/tmp/tessera_tok"
    tokenizer = make_tokenizer(tok_dir)
    vocab = len(tokenizer)
    text_encoder = make_text_encoder(vocab)

    # Wan 2.1 T2V, UniPC.
    p21 = WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=make_vae(3), scheduler=UniPCMultistepScheduler(**UNIPC),
        transformer=make_transformer(2),
    )
    p21.save_pretrained(os.path.join(MODELS, "wan21"))
    # Same weights, flow-match Euler (shift 3, as diffusers' Wan docs suggest for Euler).
    shutil.copytree(os.path.join(MODELS, "wan21"), os.path.join(MODELS, "wan21_euler"))
    shutil.rmtree(os.path.join(MODELS, "wan21_euler/scheduler"))
    FlowMatchEulerDiscreteScheduler(shift=3.0).save_pretrained(os.path.join(MODELS, "wan21_euler/scheduler"))
    # diffusers picks the scheduler class from model_index.json, so name Euler there too.
    index_path = os.path.join(MODELS, "wan21_euler/model_index.json")
    with open(index_path) as f:
        index = json.load(f)
    index["scheduler"] = ["diffusers", "FlowMatchEulerDiscreteScheduler"]
    with open(index_path, "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)

    # Wan 2.2 TI2V: residual VAE with patchify, z 48, per-token timesteps.
    p22 = WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=make_vae(5, residual=True),
        scheduler=UniPCMultistepScheduler(**{**UNIPC, "flow_shift": 5.0}),
        transformer=make_transformer(4, in_channels=48, out_channels=48), expand_timesteps=True,
    )
    p22.save_pretrained(os.path.join(MODELS, "wan22_ti2v"))

    # Wan 2.2 A14B: two experts split at boundary_ratio; sharded weights, the low-noise expert in bf16.
    t2 = make_transformer(6)
    for p in t2.parameters():
        p.copy_(p.to(torch.bfloat16).float())
    pa = WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=make_vae(3), scheduler=UniPCMultistepScheduler(**UNIPC),
        transformer=make_transformer(7), transformer_2=t2, boundary_ratio=0.875,
    )
    a_dir = os.path.join(MODELS, "wan22_a14b")
    pa.save_pretrained(a_dir, max_shard_size="60KB")
    # Re-save the low-noise expert in bf16 (sharded) to exercise dtype conversion on load.
    shutil.rmtree(os.path.join(a_dir, "transformer_2"))
    t2.to(torch.bfloat16).save_pretrained(os.path.join(a_dir, "transformer_2"), max_shard_size="60KB")
    t2.float()


def module_refs():
    g = torch.Generator().manual_seed(1234)
    w21 = os.path.join(MODELS, "wan21")

    # Tokenizer and text encoder.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(os.path.join(w21, "tokenizer"))
    enc = UMT5EncoderModel.from_pretrained(os.path.join(w21, "text_encoder")).eval()
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean

    cases = []
    prompts = [
        "A red ball bounces on a wooden floor.",
        "  two &amp; blue   boxes\n slide &lt;fast&gt;\t ",
        "a ball",
        "",
        "The camera pans left while a large green ball rolls behind a tree and comes back, bounces twice.",
        "Caf\u00e9 &#233; &#x41; &quot;quoted&quot; &nbsp;text",
    ]
    for p in prompts:
        for max_len in (8, 24):
            c = prompt_clean(p)
            t = tok(c, padding="max_length", max_length=max_len, truncation=True, add_special_tokens=True,
                    return_attention_mask=True)
            cases.append(dict(prompt=p, cleaned=c, max_length=max_len, input_ids=t["input_ids"],
                              attention_mask=t["attention_mask"]))
    with open(os.path.join(REF, "tokenizer.json"), "w") as f:
        json.dump(cases, f, indent=1, ensure_ascii=False)

    pipe = WanPipeline.from_pretrained(w21)
    two = [prompts[0], prompts[1]]
    t = tok([prompt_clean(p) for p in two], padding="max_length", max_length=24, truncation=True,
            add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    hidden = enc(t.input_ids, t.attention_mask).last_hidden_state
    embeds = pipe._get_t5_prompt_embeds(two, max_sequence_length=24)
    save(os.path.join(REF, "text_encoder.safetensors"), dict(
        input_ids=t.input_ids.long(), attention_mask=t.attention_mask.long(), last_hidden_state=hidden,
        prompt_embeds=embeds))
    print("text encoder ref written")

    # Transformers.
    tr = WanTransformer3DModel.from_pretrained(os.path.join(w21, "transformer")).eval()
    x = torch.randn(2, 16, 3, 4, 6, generator=g)
    ts = torch.tensor([999.0, 250.0])
    ctx = torch.randn(2, 24, 32, generator=g)
    out = tr(hidden_states=x, timestep=ts, encoder_hidden_states=ctx, return_dict=False)[0]
    save(os.path.join(REF, "transformer_wan21.safetensors"),
         dict(hidden_states=x, timestep=ts, encoder_hidden_states=ctx, output=out))
    stats("transformer_wan21 out", out)

    tr22 = WanTransformer3DModel.from_pretrained(os.path.join(MODELS, "wan22_ti2v/transformer")).eval()
    x = torch.randn(1, 48, 3, 4, 6, generator=g)
    mask = torch.ones(1, 1, 3, 4, 6)
    mask[:, :, 0] = 0  # first latent frame given (image-to-video layout): timestep 0 there
    ts = (mask[0][0][:, ::2, ::2] * 700.0).flatten().unsqueeze(0)
    ctx = torch.randn(1, 24, 32, generator=g)
    out = tr22(hidden_states=x, timestep=ts, encoder_hidden_states=ctx, return_dict=False)[0]
    save(os.path.join(REF, "transformer_wan22.safetensors"),
         dict(hidden_states=x, timestep=ts, encoder_hidden_states=ctx, output=out))
    stats("transformer_wan22 out", out)

    # Wan 2.1 I2V transformer: CLIP image context through add_k_proj/add_v_proj (the
    # reference splits the context at 512 text tokens, so the text part is 512 long).
    torch.manual_seed(8)
    ti = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32, image_dim=20, added_kv_proj_dim=24,
    ).eval()
    perturb(ti, 0.05, 108)
    ti.save_pretrained(os.path.join(MODELS, "wan21_i2v_transformer"))
    x = torch.randn(1, 36, 2, 4, 6, generator=g)
    ts = torch.tensor([600.0])
    ctx = torch.randn(1, 512, 32, generator=g)
    img = torch.randn(1, 7, 20, generator=g)
    out = ti(hidden_states=x, timestep=ts, encoder_hidden_states=ctx, encoder_hidden_states_image=img,
             return_dict=False)[0]
    save(os.path.join(REF, "transformer_wan21_i2v.safetensors"),
         dict(hidden_states=x, timestep=ts, encoder_hidden_states=ctx, encoder_hidden_states_image=img, output=out))
    stats("transformer_wan21_i2v out", out)

    # VAEs.
    for name, folder, hw, zc, sp in (("wan21", "wan21", (32, 48), 16, 8), ("wan22", "wan22_ti2v", (64, 96), 48, 16)):
        vae = AutoencoderKLWan.from_pretrained(os.path.join(MODELS, folder, "vae")).eval()
        h, w = hw
        # Smooth moving content in [-1, 1] plus a little noise: closer to real video than pure noise.
        tt = torch.arange(9).view(1, 1, 9, 1, 1).float()
        yy = torch.linspace(-1, 1, h).view(1, 1, 1, h, 1)
        xx = torch.linspace(-1, 1, w).view(1, 1, 1, 1, w)
        ch = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1, 1)
        video = torch.sin(ch * (xx * 2 + yy) + tt * 0.4) * 0.8 + torch.randn(1, 3, 9, h, w, generator=g) * 0.1
        video = video.clamp(-1, 1)
        mean = vae.encode(video).latent_dist.mode()
        latents = torch.randn(1, zc, 3, h // sp, w // sp, generator=g)
        decoded = vae.decode(latents, return_dict=False)[0]
        save(os.path.join(REF, f"vae_{name}.safetensors"),
             dict(video=video, latent_mean=mean, latents=latents, decoded=decoded))
        stats(f"vae_{name} latent_mean", mean)
        stats(f"vae_{name} decoded", decoded)


PIPELINE_CASES = [
    dict(name="wan21_unipc", model="wan21", prompt="A red ball bounces on a wooden floor.",
         negative_prompt="blurry, low quality", width=48, height=32, frames=9, steps=4, guidance=5.0,
         max_sequence_length=24),
    dict(name="wan21_euler", model="wan21_euler", prompt="A small blue box slides down a ramp.",
         negative_prompt="", width=48, height=32, frames=9, steps=4, guidance=4.0, max_sequence_length=24),
    dict(name="wan21_image", model="wan21", prompt="A purple box on a checker floor.",
         negative_prompt="ugly", width=32, height=48, frames=1, steps=3, guidance=5.0, max_sequence_length=16),
    dict(name="wan21_noguidance", model="wan21", prompt="Two yellow triangles fall.",
         negative_prompt="", width=32, height=32, frames=5, steps=3, guidance=1.0, max_sequence_length=16),
    dict(name="wan22_ti2v", model="wan22_ti2v", prompt="An orange ball is thrown to the right at sunset.",
         negative_prompt="static", width=96, height=64, frames=9, steps=3, guidance=4.0, max_sequence_length=24),
    dict(name="wan22_a14b", model="wan22_a14b", prompt="A large green ball rolls behind a tree.",
         negative_prompt="worst quality", width=48, height=32, frames=5, steps=6, guidance=3.0, guidance_2=2.0,
         max_sequence_length=24),
]


def pipeline_refs():
    g = torch.Generator().manual_seed(99)
    for case in PIPELINE_CASES:
        pipe = WanPipeline.from_pretrained(os.path.join(MODELS, case["model"]))
        vae = pipe.vae.config
        lat_shape = (1, pipe.transformer.config.in_channels, (case["frames"] - 1) // vae.scale_factor_temporal + 1,
                     case["height"] // vae.scale_factor_spatial, case["width"] // vae.scale_factor_spatial)
        latents = torch.randn(*lat_shape, generator=g)
        kw = dict(prompt=case["prompt"], negative_prompt=case["negative_prompt"], height=case["height"],
                  width=case["width"], num_frames=case["frames"], num_inference_steps=case["steps"],
                  guidance_scale=case["guidance"], max_sequence_length=case["max_sequence_length"])
        if "guidance_2" in case:
            kw["guidance_scale_2"] = case["guidance_2"]
        final = pipe(latents=latents.clone(), output_type="latent", **kw).frames
        frames = pipe(latents=latents.clone(), output_type="np", **kw).frames[0]
        frames = torch.from_numpy(np.ascontiguousarray(frames)).float()
        case["file"] = case["name"] + ".safetensors"
        case["timesteps"] = [float(t) for t in pipe.scheduler.timesteps]
        save(os.path.join(PIPE, case["file"]), dict(latents=latents, final_latents=final, frames=frames))
        print(f"pipeline {case['name']}: frames {tuple(frames.shape)} mean {frames.mean():.4f} "
              f"std {frames.std():.4f} timesteps {case['timesteps']}")
    with open(os.path.join(PIPE, "pipelines.json"), "w") as f:
        json.dump(PIPELINE_CASES, f, indent=1)


CACHE_CASE = dict(model="wan21", prompt="A red ball bounces on a wooden floor.", negative_prompt="blurry",
                  width=48, height=32, frames=9, steps=12, guidance=5.0, max_sequence_length=24)


def cache_refs():
    """Step caching as diffusers' own hooks do it on the tiny wan21 model: FirstBlockCache at
    a threshold between the relative first-block differences seen (none on the edge), and
    MagCache with ratios from its calibration mode. Passes through the last block are
    counted to know how many were skipped."""
    from diffusers.hooks import FirstBlockCacheConfig, MagCacheConfig
    from diffusers.hooks import first_block_cache, mag_cache

    c = CACHE_CASE
    g = torch.Generator().manual_seed(7)
    kw = dict(prompt=c["prompt"], negative_prompt=c["negative_prompt"], height=c["height"], width=c["width"],
              num_frames=c["frames"], num_inference_steps=c["steps"], guidance_scale=c["guidance"],
              max_sequence_length=c["max_sequence_length"], output_type="latent")

    def fresh():
        pipe = WanPipeline.from_pretrained(os.path.join(MODELS, c["model"]))
        calls = [0]
        pipe.transformer.blocks[-1].attn1.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        return pipe, calls

    pipe, _ = fresh()
    vae = pipe.vae.config
    shape = (1, 16, (c["frames"] - 1) // vae.scale_factor_temporal + 1, c["height"] // vae.scale_factor_spatial,
             c["width"] // vae.scale_factor_spatial)
    latents = torch.randn(*shape, generator=g)
    plain = pipe(latents=latents.clone(), **kw).frames

    # First-block: record the relative differences the hook computes, then pick a threshold
    # in the widest gap between them so that float noise cannot flip a decision.
    diffs = []
    orig = first_block_cache.FBCHeadBlockHook._should_compute_remaining_blocks

    def spy(self, r):
        st = self.state_manager.get_state()
        if st.head_block_residual is not None:
            prev = st.head_block_residual
            diffs.append(((r - prev).abs().mean() / prev.abs().mean()).item())
        return orig(self, r)

    first_block_cache.FBCHeadBlockHook._should_compute_remaining_blocks = spy
    pipe, _ = fresh()
    pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=1e-9))
    pipe(latents=latents.clone(), **kw)
    first_block_cache.FBCHeadBlockHook._should_compute_remaining_blocks = orig
    d = sorted(diffs)
    gaps = [(d[i + 1] - d[i], (d[i] + d[i + 1]) / 2) for i in range(len(d) // 3, len(d) - 1)]
    fbc_threshold = round(max(gaps)[1], 6)
    pipe, calls = fresh()
    pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=fbc_threshold))
    fbc = pipe(latents=latents.clone(), **kw).frames
    fbc_computed = calls[0]

    # MagCache: calibrate (nothing skipped; the ratios of the conditional pass), then run.
    pipe, _ = fresh()
    printed = []
    orig_print = print
    mag_cache.print = lambda *a, **k: printed.append(" ".join(str(x) for x in a))
    pipe.transformer.enable_cache(MagCacheConfig(calibrate=True, num_inference_steps=c["steps"]))
    pipe(latents=latents.clone(), **kw)
    mag_cache.print = orig_print
    lists = [eval(p.strip()) for p in printed if p.strip().startswith("[") and not p.strip().startswith("[MagCache")]
    ratios = [float(x) for x in lists[0]]  # the "cond" context finishes first
    mag_threshold = 0.06
    pipe, calls = fresh()
    pipe.transformer.enable_cache(MagCacheConfig(threshold=mag_threshold, mag_ratios=ratios,
                                                 num_inference_steps=c["steps"]))
    mag = pipe(latents=latents.clone(), **kw).frames
    mag_computed = calls[0]

    case = dict(c, file="cache.safetensors", first_block_threshold=fbc_threshold,
                first_block_diffs=diffs, first_block_computed=fbc_computed, mag_threshold=mag_threshold,
                mag_ratios=ratios, mag_ratios_uncond=[float(x) for x in lists[1]] if len(lists) > 1 else None,
                mag_computed=mag_computed, passes=2 * c["steps"])
    save(os.path.join(PIPE, "cache.safetensors"), dict(latents=latents, plain=plain, first_block=fbc, magcache=mag))
    with open(os.path.join(PIPE, "cache.json"), "w") as f:
        json.dump(case, f, indent=1)
    print(f"cache: first-block threshold {fbc_threshold} computed {fbc_computed}/{2 * c['steps']}; "
          f"magcache computed {mag_computed}/{2 * c['steps']}; ratios {ratios}")


GGUF_DIR = os.path.join(MODELS, "gguf")


def to_original(k):
    """A diffusers key of WanTransformer3DModel under the original Wan layout (the inverse of
    diffusers' convert_wan_transformer_to_diffusers table)."""
    p = k.split(".")
    attn = {"to_q": "q", "to_k": "k", "to_v": "v", "to_out": "o", "add_k_proj": "k_img", "add_v_proj": "v_img",
            "norm_added_k": "norm_k_img"}
    if p[0] == "blocks":
        i, rest = p[1], p[2:]
        if rest[0] in ("attn1", "attn2"):
            layer = attn.get(rest[1], rest[1])
            tail = rest[3:] if rest[1] == "to_out" else rest[2:]
            return ".".join(["blocks", i, "self_attn" if rest[0] == "attn1" else "cross_attn", layer] + tail)
        if rest[0] == "norm2":
            return f"blocks.{i}.norm3.{rest[1]}"
        if rest[:3] == ["ffn", "net", "0"]:
            return f"blocks.{i}.ffn.0.{rest[-1]}"
        if rest[:3] == ["ffn", "net", "2"]:
            return f"blocks.{i}.ffn.2.{rest[-1]}"
        if rest == ["scale_shift_table"]:
            return f"blocks.{i}.modulation"
    if p[0] == "proj_out":
        return f"head.head.{p[1]}"
    if k == "scale_shift_table":
        return "head.modulation"
    if k.startswith("condition_embedder."):
        if p[1] == "time_proj":
            return f"time_projection.1.{p[2]}"
        sub, layer, param = p[1], p[2], p[3]
        n = {"linear_1": "0", "linear_2": "2"}
        if sub == "text_embedder":
            return f"text_embedding.{n[layer]}.{param}"
        if sub == "time_embedder":
            return f"time_embedding.{n[layer]}.{param}"
    return k


def gguf_refs():
    """Two tiny GGUF transformers written with the `gguf` package, as the community publishes
    Wan: (1) the original key layout, block linears in mixed formats as llama.cpp's _K_M files
    mix them (self-attention q, k Q4_K and v Q5_K, so they cannot be fused; cross-attention
    Q8_0; the FFN Q5_K and Q4_K), embeddings F16/BF16/F32, the 5-D patch embedding in F32
    (as ComfyUI-GGUF's fix_5d_tensors adds it back); (2) diffusers' layout, every block linear
    , the text embedder's first layer and the time projection Q8_0, the rest F16, a 64-byte alignment. References:
    diffusers' forward with the weights gguf dequantizes from each file."""
    import gguf
    from gguf import GGMLQuantizationType as T
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import kquants

    torch.manual_seed(31)
    # Widths the K formats' 256-value blocks fit: 2 heads of 128, FFN 512.
    t = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=128, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=512, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    ).eval()
    perturb(t, 0.05, 131)
    sd = {k: v.float().numpy() for k, v in t.state_dict().items()}
    folder = os.path.join(GGUF_DIR, "transformer")
    shutil.rmtree(GGUF_DIR, ignore_errors=True)
    t.save_config(folder)

    def mixed_type(k):
        if ".attn1.to_q.weight" in k or ".attn1.to_k.weight" in k or ".attn1.to_out.0.weight" in k:
            return T.Q4_K
        if ".attn1.to_v.weight" in k or ".ffn.net.0.proj.weight" in k:
            return T.Q5_K
        if ".ffn.net.2.weight" in k:
            return T.Q4_K
        if ".attn2." in k and k.endswith(".weight") and "norm" not in k:
            return T.Q8_0
        if k.startswith("condition_embedder.text_embedder") or k.startswith("proj_out"):
            return T.F16
        if k.startswith("condition_embedder.time_proj"):
            return T.BF16
        return T.F32

    def q8_type(k):
        if k.startswith("blocks.") and k.endswith(".weight") and sd[k].ndim == 2:
            return T.Q8_0
        if k in ("condition_embedder.text_embedder.linear_1.weight", "condition_embedder.time_proj.weight"):
            return T.Q8_0
        if sd[k].ndim == 1 or k.startswith("patch_embedding") or "scale_shift_table" in k:
            return T.F32
        return T.F16

    def encode(a, qtype):
        if qtype == T.Q4_K:
            return kquants.quantize_q4_k(a)
        if qtype == T.Q5_K:
            return kquants.quantize_q5_k(a)
        return gguf.quants.quantize(a, qtype)

    def write(path, pick, rename, alignment=None):
        w = gguf.GGUFWriter(path, arch="wan")
        if alignment:
            w.add_custom_alignment(alignment)
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        for k in sorted(sd):
            a, qtype = sd[k], pick(k)
            data = encode(a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a, qtype)
            if qtype in (T.F32, T.F16, T.BF16):
                data = data.reshape(a.shape) if qtype != T.BF16 else data.reshape(a.shape[:-1] + (-1,))
            w.add_tensor(rename(k), data, raw_dtype=qtype)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        # The reference weights: the file as gguf reads and dequantizes it.
        names = {rename(k): k for k in sd}
        dense = {}
        for rt in gguf.GGUFReader(path).tensors:
            shape = [int(n) for n in reversed(rt.shape)]
            dense[names[rt.name]] = gguf.quants.dequantize(rt.data, rt.tensor_type).reshape(shape)
        assert len(dense) == len(sd), (len(dense), len(sd))
        return dense

    mixed = write(os.path.join(folder, "wan-tiny-mixed.gguf"), mixed_type, lambda k: "model.diffusion_model." + to_original(k))
    q8 = write(os.path.join(GGUF_DIR, "wan-tiny-q8_0-diffusers.gguf"), q8_type, lambda k: k, alignment=64)

    g = torch.Generator().manual_seed(32)
    x = torch.randn(1, 16, 2, 4, 4, generator=g)
    ts = torch.tensor([500.0])
    text = torch.randn(1, 8, 32, generator=g)
    refs = dict(x=x, t=ts, text=text)
    for name, dense in (("mixed", mixed), ("q8_0", q8)):
        t.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in dense.items()})
        refs[name] = t(x, ts, text, return_dict=False)[0]
        stats(f"gguf {name}", refs[name])
    save(os.path.join(GGUF_DIR, "ref.safetensors"), refs)
    for f in sorted(os.listdir(folder)) + sorted(os.listdir(GGUF_DIR)):
        print("  ", f)


def tiling_refs():
    """diffusers' tiled VAE decode and encode (`enable_tiling`) on the tiny fixture VAEs, with
    tiles small enough that several rows and columns of them blend: Wan 2.1 (8x) tiles of 32
    every 24 pixels on 64x80 frames; Wan 2.2 TI2V (16x, patchified) tiles of 64 every 48 on
    96x128. Printed: how far tiling moves the outputs from the untiled ones (far, on random
    weights and tiles smaller than the receptive field)."""
    g = torch.Generator().manual_seed(41)
    for folder, size, tile, stride in (("wan21", (64, 80), 32, 24), ("wan22_ti2v", (96, 128), 64, 48)):
        vae = AutoencoderKLWan.from_pretrained(os.path.join(MODELS, folder, "vae")).eval()
        video = torch.rand(1, 3, 5, *size, generator=g) * 2 - 1
        z = torch.randn(1, vae.config.z_dim, 2, size[0] // vae.spatial_compression_ratio,
                        size[1] // vae.spatial_compression_ratio, generator=g)
        plain = dict(mean=vae.encode(video).latent_dist.mean, decoded=vae.decode(z).sample)
        vae.enable_tiling(tile_sample_min_height=tile, tile_sample_min_width=tile,
                          tile_sample_stride_height=stride, tile_sample_stride_width=stride)
        tiled = dict(mean=vae.encode(video).latent_dist.mean, decoded=vae.decode(z).sample)
        save(os.path.join(REF, f"vae_tiling_{folder}.safetensors"), dict(
            video=video, latents=z, tiled_mean=tiled["mean"], tiled_decoded=tiled["decoded"],
            tile=torch.tensor([tile, stride])))
        for k in ("mean", "decoded"):
            d = (tiled[k] - plain[k]).norm() / plain[k].norm()
            print(f"tiling {folder} {k}: tiled vs untiled rel L2 {d:.3e}")


if __name__ == "__main__":
    only = sys.argv[1:] or ["models", "modules", "pipelines", "caches", "ggufs", "tilings"]
    if "models" in only:
        build_models()
    if "modules" in only:
        module_refs()
    if "pipelines" in only:
        pipeline_refs()
    if "caches" in only:
        cache_refs()
    if "ggufs" in only:
        gguf_refs()
    if "tilings" in only:
        tiling_refs()
    total = 0
    for d in (MODELS, PIPE):
        for r, _, fs in os.walk(d):
            total += sum(os.path.getsize(os.path.join(r, f)) for f in fs)
    print(f"fixtures: {total / 1e6:.2f} MB")
