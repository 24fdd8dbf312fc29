#!/usr/bin/env bash
# Trains a candidate built-in model (v4, not the shipped one, which recipes/tessera-world/
# reproduces; MODEL_CARD "Known failures" has its figures) and installs it in
# models/tessera-world: v3's residual 4x VAE with 4 latent channels instead of 16
# (vae.toml), then a width-256 transformer and text encoder on its latents with the carry
# initialisation (transformer.toml). On the 2-core development machine (2026-12-02) the VAE
# took 50 minutes (1,100 steps, 2,993 s by its log; the machine was shared part of the time) and the
# transformer 47 (1,200 steps). Resumable:
#   bash recipes/tessera-world-v4/train.sh --resume
exec bash "$(dirname "$0")/../train.sh" tessera-world-v4 "$@"
