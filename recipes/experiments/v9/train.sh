#!/usr/bin/env bash
# Issue 28's model (v9) from scratch, as one command that can be stopped and resumed at any
# point (every stage checkpoints at least every 20 minutes; `--resume` continues each from
# its newest checkpoint, bit-exactly with the same binary):
#   bash recipes/experiments/v9/train.sh [--resume]
# 1. Stage 1, the VAE (vae.toml): 16 latent channels, 4x spatial and 2x temporal
#    compression, 3,000 steps (about 1.3 h alone on two threads, 2.4 h on one).
# 2. Then, in parallel on one thread each:
#    - stage 2, the transformer and text encoder on stage 1's latents (transformer.toml);
#    - stage 3, a decoder twice as wide on stage 1's frozen encoder (decoder.toml, then
#      decoder2.toml from its last checkpoint at half the rate). The encoder and the latent
#      statistics stay stage 1's, so stage 2 works with this decoder.
# 3. runs/v9-model: stage 2's model folder with stage 3's VAE in place of stage 1's, and
#    the VAE gate on it (tools/eval_vae.sh, 100 clips of seed 777). Nothing is installed in
#    models/tessera-world: that waits for the gate and the model's eval (MODEL_CARD).
# Logs: runs/v9-vae.log, runs/v9.log, runs/v9-decoder.log.
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=recipes/experiments/v9
cargo build --release -p tessera-cli
bin=target/release/tessera
mkdir -p runs
RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2} "$bin" train --config "$here/vae.toml" "$@" >> runs/v9-vae.log 2>&1
RAYON_NUM_THREADS=1 "$bin" train --config "$here/transformer.toml" "$@" >> runs/v9.log 2>&1 &
transformer=$!
(
    export RAYON_NUM_THREADS=1
    "$bin" train --config "$here/decoder.toml" "$@"
    "$bin" train --config "$here/decoder2.toml" "$@"
) >> runs/v9-decoder.log 2>&1 &
decoder=$!
wait "$transformer"
wait "$decoder"
rm -rf runs/v9-model
cp -r runs/v9/model runs/v9-model
rm -rf runs/v9-model/vae
cp -r runs/v9-decoder2/model/vae runs/v9-model/vae
echo "runs/v9-model ($(du -sh runs/v9-model | cut -f1)); the VAE gate:"
RAYON_NUM_THREADS=2 tools/eval_vae.sh runs/v9-model runs/v9-gate 100 777 2 any
