#!/usr/bin/env bash
# Trains a recipe's stages and installs its model as the built-in one:
#   bash recipes/train.sh NAME [--resume]
# runs recipes/NAME/vae.toml, then recipes/NAME/transformer.toml (whose
# `out` must be runs/NAME), and copies runs/NAME/model to models/tessera-world. Each recipe's own
# train.sh calls this with its name.
set -euo pipefail
name=${1:?usage: recipes/train.sh NAME [--resume]}
shift
cd "$(dirname "$0")/.."
[ -f "recipes/$name/vae.toml" ] && [ -f "recipes/$name/transformer.toml" ] || { echo "recipes/$name has no vae.toml and transformer.toml" >&2; exit 2; }
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-$(nproc)}"
cargo build --release -p tessera-cli
bin=target/release/tessera
$bin train --config "recipes/$name/vae.toml" "$@"
$bin train --config "recipes/$name/transformer.toml" "$@"
[ -d "runs/$name/model" ] || { echo "runs/$name/model is missing: recipes/$name/transformer.toml must write to runs/$name" >&2; exit 1; }
rm -rf models/tessera-world
mkdir -p models
cp -r "runs/$name/model" models/tessera-world
echo "installed models/tessera-world ($(du -sh models/tessera-world | cut -f1))"
