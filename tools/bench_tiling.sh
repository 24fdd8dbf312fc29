#!/usr/bin/env bash
# Tiled against whole-frame VAE decode (`--vae-tiling`), for BENCHMARKS.md: the real Wan 2.1
# VAE architecture (the benchmark model's, random weights: speed and memory only) on seeded
# random latents; each run under /usr/bin/time, whole-frame runs under an address-space
# limit (LIMIT_GB, default 16) so that one that does not fit fails instead of swapping.
#   bash tools/bench_tiling.sh [WIDTHxHEIGHTxFRAMES ...]   # default 832x480x9 2048x2048x1
# Prints one markdown row per size and mode.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/setup.sh
source benches/setup.sh
cargo build --release --example vae_tiling -p tessera-cli >/dev/null 2>&1
EX="${CARGO_TARGET_DIR:-target}/release/examples/vae_tiling"
LIMIT_GB="${LIMIT_GB:-16}"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(832x480x9 2048x2048x1)
echo "| size | mode | decode (s) | peak RSS (MB) |"
echo "| --- | --- | --- | --- |"
for s in "${sizes[@]}"; do
  wh="${s%x*}"; frames="${s##*x}"
  for mode in tiled whole; do
    limit=()
    [ "$mode" = whole ] && limit=(prlimit --as=$((LIMIT_GB << 30)))
    if out=$(/usr/bin/time -f "%M" -o "$WORK/tiling.time" "${limit[@]}" "$EX" time "$WORK/model/vae" "$wh" "$frames" "$mode" 2>"$WORK/tiling.err"); then
      secs=$(echo "$out" | sed -E 's/.*decode ([0-9.]+) s/\1/')
      echo "| $s | $mode | $secs | $(( $(tail -1 "$WORK/tiling.time") / 1024 )) |"
    else
      echo "| $s | $mode | did not fit in ${LIMIT_GB} GB of address space | - |"
    fi
  done
done
