#!/usr/bin/env bash
# Trains v7's recipe (recipes/tessera-world-v7/train.sh: v6's VAE, v6's 2,700 transformer
# steps, resumed to 5,400; it installs v7 on the way), then a leg of that transformer run
# to recipes/tessera-world-NAME/transformer.toml's steps, in runs/tessera-world-NAME (v7's
# checkpoint at 5,400 and its log are copied there the first time). v8's, v9's and v11's
# recipes are such legs. Run from the repository root.
#   bash recipes/leg_after_v7.sh NAME [--resume]
set -euo pipefail
name=$1
shift
bash recipes/tessera-world-v7/train.sh "$@"
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-$(nproc)}"
bash recipes/resume_leg.sh runs/tessera-world-v7 5400 "runs/tessera-world-$name" "recipes/tessera-world-$name/transformer.toml"
