#!/usr/bin/env bash
# Trains the next built-in model (v4, in progress: not the shipped one, which
# recipes/tessera-world/ reproduces) and installs it in models/tessera-world: a
# residual 4x VAE (vae.toml), then the transformer and text encoder on its latents
# (transformer.toml). On the 2-core development machine about 32 minutes for the VAE
# (1,100 steps at 1.75 s) and about 60 for the transformer (1,200 steps, about 3 s each
# with the render and encode of every fourth). Resumable:
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
