#!/usr/bin/env bash
# Trains the v5 candidate built-in model and installs it in models/tessera-world: v4's VAE
# (vae.toml), the same VAE fine-tuned with noise-augmented decoding (vae-robust.toml), then
# v4's transformer and text encoder on the robust VAE's latents (transformer.toml).
# MODEL_CARD has its figures. Resumable:
#   bash recipes/tessera-world-v5/train.sh --resume
exec bash "$(dirname "$0")/../train.sh" tessera-world-v5 "$@"
