#!/usr/bin/env bash
# Trains the next built-in model (work in progress: not yet the shipped one, which
# recipes/tessera-world-v3/ reproduces) and installs it in models/tessera-world.
# On the 2-core development machine: about 30 minutes for the VAE, then about 55 for the
# transformer (MODEL_CARD.md has the measured times). Runs can be resumed:
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
