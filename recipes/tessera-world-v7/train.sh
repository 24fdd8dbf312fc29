#!/usr/bin/env bash
# Trains the v7 built-in model from scratch and installs it in models/tessera-world:
# v6's two stages (recipes/tessera-world-v6: the carry-start VAE, then 2,700 transformer
# steps), then that transformer run resumed to 5,400 steps with a warm restart of the
# learning rate (transformer.toml here). About 2 hours on the 2-core machine.
#   bash recipes/tessera-world-v7/train.sh [--resume]
set -euo pipefail
cd "$(dirname "$0")/../.."
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-$(nproc)}"
cargo build --release -p tessera-cli
bin=target/release/tessera
$bin train --config recipes/tessera-world-v6/vae.toml "$@"
$bin train --config recipes/tessera-world-v6/transformer.toml "$@"
# The v7 run starts from a copy of v6's, checkpoints and optimizer state included.
[ -d runs/tessera-world-v7/checkpoints ] || cp -r runs/tessera-world-v6 runs/tessera-world-v7
$bin train --config recipes/tessera-world-v7/transformer.toml --resume
rm -rf models/tessera-world
mkdir -p models
cp -r runs/tessera-world-v7/model models/tessera-world
echo "installed models/tessera-world ($(du -sh models/tessera-world | cut -f1))"
