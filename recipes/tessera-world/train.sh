#!/usr/bin/env bash
# Retrains tessera's built-in model from scratch and installs it in models/tessera-world.
# Five stages, each a config in this folder (MODEL_CARD.md has the measured times on the
# 2-core development machine, about 3 hours in all):
#   vae.toml            the VAE on 64x64 clips of 9 frames, from random weights
#   vae-sizes.toml      fine-tuned at the generated sizes (128x128, 176x96, 96x176)
#   vae-long.toml       fine-tuned on 25-frame clips, the model's window
#   transformer.toml    the transformer and text encoder on the first VAE's latents
#   transformer-ft.toml fine-tuned on the final VAE's latents
# Runs can be resumed: bash recipes/tessera-world/train.sh --resume
set -euo pipefail
cd "$(dirname "$0")/../.."
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-$(nproc)}"
cargo build --release -p tessera-cli
bin=target/release/tessera
for stage in vae vae-sizes vae-long transformer transformer-ft; do
  $bin train --config "recipes/tessera-world/$stage.toml" "$@"
done
rm -rf models/tessera-world
mkdir -p models
cp -r runs/tessera-world-ft/model models/tessera-world
echo "installed models/tessera-world ($(du -sh models/tessera-world | cut -f1))"
