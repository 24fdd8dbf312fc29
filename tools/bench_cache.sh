#!/usr/bin/env bash
# Step caching on a model: time and PSNR (frames against the uncached run, same seed) for
# each cache setting, over a few prompts. Writes a Markdown table to stdout.
#   tools/bench_cache.sh [MODEL] [STEPS] [OUT_DIR] [SETTINGS...]
# SETTINGS are KIND:THRESHOLD (default: first-block and magcache at several thresholds).
# MagCache needs the model's ratios first: tessera cache-calibrate --model MODEL --steps STEPS --write
# Needs numpy and safetensors (pip) for the PSNR.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/tessera-world}
steps=${2:-30}
out=${3:-runs/bench-cache}
shift $(( $# < 3 ? $# : 3 ))
settings=("$@")
[ ${#settings[@]} -gt 0 ] || settings=(first-block:0.05 first-block:0.1 first-block:0.2 magcache:0.06 magcache:0.12 magcache:0.24)
bin=target/release/tessera
mkdir -p "$out"
prompts=(
  "a red ball bounces on a wooden floor"
  "a green cube slides across a checkered floor"
  "two balls roll toward each other on grass and collide"
  "a yellow ball falls onto a stone floor under a blue sky"
)
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
run() { # name, prompt index, flags...
  local name=$1 i=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  "$bin" generate "${prompts[$i]}" --model "$model" --steps "$steps" --seed "$i" --no-provenance -q \
    -o "$out/$name-$i.safetensors" "$@" 2> "$out/$name-$i.log"
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc > "$out/$name-$i.time"
}
for i in "${!prompts[@]}"; do
  run none "$i"
  for s in "${settings[@]}"; do
    run "${s/:/-}" "$i" --cache "${s%%:*}" --cache-threshold "${s#*:}"
  done
done
python3 - "$out" "${#prompts[@]}" "${settings[@]}" <<'PY'
import sys, numpy as np
from safetensors.numpy import load_file
out, n, settings = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def frames(p):
    d = load_file(p)
    return next(iter(d.values())).astype(np.float64)
def secs(name, i):
    return float(open(f"{out}/{name}-{i}.time").read())
base = sum(secs("none", i) for i in range(n))
print("| setting | time (s, %d prompts) | speed-up | PSNR vs uncached (dB, mean / min) |" % n)
print("|---|---|---|---|")
print(f"| uncached | {base:.1f} | 1.00x | - |")
for s in settings:
    name = s.replace(":", "-")
    t = sum(secs(name, i) for i in range(n))
    ps = []
    for i in range(n):
        mse = ((frames(f"{out}/{name}-{i}.safetensors") - frames(f"{out}/none-{i}.safetensors")) ** 2).mean()
        ps.append(99.0 if mse == 0 else 10 * np.log10(1.0 / mse))
    print(f"| {s} | {t:.1f} | {base / t:.2f}x | {np.mean(ps):.1f} / {min(ps):.1f} |")
PY
