#!/usr/bin/env bash
# Trains the v5 built-in model and installs it in models/tessera-world: a VAE with the
# green-magenta error weighted and noise-augmented decoding (vae.toml), then v4's
# transformer and text encoder on its latents (transformer.toml). MODEL_CARD has its
# figures. Resumable:
#   bash recipes/tessera-world-v5/train.sh --resume
exec bash "$(dirname "$0")/../train.sh" tessera-world-v5 "$@"
