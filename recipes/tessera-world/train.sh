#!/usr/bin/env bash
# Retrains tessera's built-in model from scratch and installs it in models/tessera-world.
# On the 2-core development machine: about 25 minutes for the VAE, then about 80 for the
# transformer (MODEL_CARD.md has the measured times). Runs can be resumed:
#   bash recipes/tessera-world/train.sh --resume
exec bash "$(dirname "$0")/../train.sh" tessera-world "$@"
