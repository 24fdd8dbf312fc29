#!/usr/bin/env bash
# Trains the v3 built-in model from scratch and installs it in models/tessera-world: a
# residual 4x VAE (vae.toml), then the transformer and text encoder on its latents
# (transformer.toml). On the 2-core development machine about 45 minutes for the VAE and
# 35 for the transformer (MODEL_CARD.md has the measured times). Runs can be resumed:
#   bash recipes/tessera-world-v3/train.sh --resume
set -euo pipefail
cd "$(dirname "$0")/../.."
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-$(nproc)}"
cargo build --release -p tessera-cli
bin=target/release/tessera
$bin train --config recipes/tessera-world-v3/vae.toml "$@"
$bin train --config recipes/tessera-world-v3/transformer.toml "$@"
rm -rf models/tessera-world
mkdir -p models
cp -r runs/tessera-world-v3/model models/tessera-world
echo "installed models/tessera-world ($(du -sh models/tessera-world | cut -f1))"
