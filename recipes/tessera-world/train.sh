#!/usr/bin/env bash
# Retrains tessera's built-in model from scratch and installs it in models/tessera-world.
# On the 2-core development machine: about 25 minutes for the VAE, then about 80 for the
# transformer (MODEL_CARD.md has the measured times). Runs can be resumed:
#   bash recipes/tessera-world/train.sh --resume
set -euo pipefail
cd "$(dirname "$0")/../.."
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-$(nproc)}"
cargo build --release -p tessera-cli
bin=target/release/tessera
$bin train --config recipes/tessera-world/vae.toml "$@"
$bin train --config recipes/tessera-world/transformer.toml "$@"
rm -rf models/tessera-world
mkdir -p models
cp -r runs/tessera-world/model models/tessera-world
echo "installed models/tessera-world ($(du -sh models/tessera-world | cut -f1))"
