#!/usr/bin/env bash
# Trains v7's recipe (recipes/tessera-world-v7/train.sh: v6's VAE, v6's 2,700 transformer
# steps, resumed to 5,400; it installs v7 on the way), then a leg of that transformer run
# to recipes/tessera-world-NAME/transformer.toml's steps, in runs/tessera-world-NAME: the
# first time, v7's log and its checkpoint at 5,400 (optimizer state included) are copied
# there, then the run resumes. v8's, v9's and v11's recipes are such legs. Run from the
# repository root.
#   bash recipes/leg_after_v7.sh NAME [--resume]
set -euo pipefail
name=$1
shift
bash recipes/tessera-world-v7/train.sh "$@"
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-$(nproc)}"
to=runs/tessera-world-$name
if [ ! -d "$to/checkpoints" ]; then
  mkdir -p "$to/checkpoints"
  cp runs/tessera-world-v7/log.csv "$to/"
  cp runs/tessera-world-v7/checkpoints/step_00005400.safetensors "$to/checkpoints/"
fi
target/release/tessera train --config "recipes/tessera-world-$name/transformer.toml" --resume
