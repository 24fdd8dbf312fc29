#!/usr/bin/env bash
# Trains the v8 built-in model from scratch and installs it in models/tessera-world: v7's
# recipe (recipes/tessera-world-v7/train.sh: v6's VAE, v6's 2,700 transformer steps, resumed
# to 5,400; it installs v7 on the way), then that transformer run resumed to 7,800 steps with
# another warm restart of the learning rate (transformer.toml here). About 2.7 hours on the
# 2-core machine.
#   bash recipes/tessera-world-v8/train.sh [--resume]
set -euo pipefail
cd "$(dirname "$0")/../.."
bash recipes/leg_after_v7.sh v8 "$@"
rm -rf models/tessera-world
mkdir -p models
cp -r runs/tessera-world-v8/model models/tessera-world
echo "installed models/tessera-world ($(du -sh models/tessera-world | cut -f1))"
