#!/usr/bin/env bash
# Trains the v5 candidate built-in model and installs it in models/tessera-world: a VAE
# with the green-magenta error weighted (vae.toml), then v4's transformer and text encoder
# on its latents (transformer.toml). A trial, not the shipped model: its VAE is worse than
# v4's (MODEL_CARD, "v5"), and its transformer has not been trained. Resumable:
#   bash recipes/tessera-world-v5/train.sh --resume
exec bash "$(dirname "$0")/../train.sh" tessera-world-v5 "$@"
