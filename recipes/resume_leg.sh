#!/usr/bin/env bash
# Trains a new leg of a transformer run: the first time, copies FROM_RUN's log and its
# checkpoint at STEP (optimizer state included) into TO_RUN; then resumes there with CONFIG
# (whose `out` is TO_RUN). Run from the repository root, after the release build.
#   bash recipes/resume_leg.sh FROM_RUN STEP TO_RUN CONFIG
set -euo pipefail
from=$1 step=$2 to=$3 config=$4
if [ ! -d "$to/checkpoints" ]; then
  mkdir -p "$to/checkpoints"
  cp "$from/log.csv" "$to/"
  cp "$from/checkpoints/step_$(printf %08d "$step").safetensors" "$to/checkpoints/"
fi
target/release/tessera train --config "$config" --resume
