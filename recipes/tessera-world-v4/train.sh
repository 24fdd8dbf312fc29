#!/usr/bin/env bash
# Trains a candidate built-in model (v4, not the shipped one, which recipes/tessera-world/
# reproduces; MODEL_CARD "Known failures" has its figures) and installs it in
# models/tessera-world: v3's residual 4x VAE with 4 latent channels instead of 16
# (vae.toml), then a width-256 transformer and text encoder on its latents with the carry
# initialisation (transformer.toml). On the 2-core development machine (2026-12-02) the VAE
# took 50 minutes (1,100 steps, 2,993 s by its log; the machine was shared part of the time) and the
# transformer 47 (1,200 steps). Resumable:
#   bash recipes/tessera-world-v4/train.sh --resume
set -euo pipefail
cd "$(dirname "$0")/../.."
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-$(nproc)}"
cargo build --release -p tessera-cli
bin=target/release/tessera
$bin train --config recipes/tessera-world-v4/vae.toml "$@"
$bin train --config recipes/tessera-world-v4/transformer.toml "$@"
rm -rf models/tessera-world
mkdir -p models
cp -r runs/tessera-world-v4/model models/tessera-world
echo "installed models/tessera-world ($(du -sh models/tessera-world | cut -f1))"
