#!/usr/bin/env bash
# Trains the v6 candidate built-in model (not shipped: MODEL_CARD "v6 in full") and
# installs it in models/tessera-world: the carry-start VAE (vae.toml), then v4's
# transformer and text encoder on its latents (transformer.toml). Resumable:
#   bash recipes/tessera-world-v6/train.sh --resume
exec bash "$(dirname "$0")/../train.sh" tessera-world-v6 "$@"
