#!/usr/bin/env bash
# Trains the next built-in model (v3, in progress: not the shipped one, which
# recipes/tessera-world/ reproduces) and installs it in models/tessera-world: a
# residual 4x VAE (vae.toml), then the transformer and text encoder on its latents
# (transformer.toml). On the 2-core development machine about 32 minutes for the VAE
# (1,100 steps at 1.75 s) and about 60 for the transformer (1,200 steps, about 3 s each
# with the render and encode of every fourth). Resumable:
#   bash recipes/tessera-world-v3/train.sh --resume
exec bash "$(dirname "$0")/../train.sh" tessera-world-v3 "$@"
