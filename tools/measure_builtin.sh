#!/usr/bin/env bash
# The built-in model's speed and memory figures (MODEL_CARD.md, BENCHMARKS.md): a
# 2-second 128x128 clip and an image, loading included; a 10-second and a 60-second video
# (windowed) for peak memory. Run after `cargo build --release`.
#
#   tools/measure_builtin.sh OUT_DIR
set -euo pipefail
out=${1:-/tmp/tessera-measure}
bin=${TESSERA:-target/release/tessera}
mkdir -p "$out"
measure() { # name, then the command
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$out/$name.time" "$@" -q
  read -r wall rss < "$out/$name.time"
  printf '%-10s wall %6.2f s  peak RSS %6.1f MB\n' "$name" "$wall" "$(echo "$rss / 1024" | bc -l)"
}
measure clip2s "$bin" generate "a red ball bounces on a wooden floor" --seconds 2 -o "$out/clip2s.mp4"
measure image "$bin" image "a red ball on a wooden floor" -o "$out/image.png"
measure clip10s "$bin" generate "a red ball bounces on a wooden floor" --seconds 10 -o "$out/clip10s.mp4"
measure clip60s "$bin" generate "a red ball bounces on a wooden floor" --seconds 60 -o "$out/clip60s.mp4"
