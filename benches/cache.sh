#!/usr/bin/env bash
# Step caching on the mid-size benchmark model (benches/run.sh's), tessera against
# diffusers' own cache hooks at the same thresholds and steps, one run on this machine.
# Prints a Markdown table for BENCHMARKS.md: the denoising loop's time (text encoding,
# loading and decoding excluded), passes skipped, and tessera's frames against its own
# uncached frames (PSNR).
#
#   bash benches/cache.sh [STEPS] [FBC_THRESHOLD] [MAG_THRESHOLD]   # defaults 20 0.05 0.06
#
# Needs the venv of tools/make_fixtures.py at ./venv or $VENV. MagCache's ratios are
# measured by tessera (`tessera cache-calibrate`) once and used by both.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-20}
fbc=${2:-0.05}
mag=${3:-0.06}
# shellcheck source=benches/setup.sh
source benches/setup.sh
common=(--model "$WORK/model" --size 256x256 --frames 17 --guidance 5)
if ! grep -q mag_ratios "$WORK/model/tessera.json" 2>/dev/null; then
  "$BIN" cache-calibrate "${common[@]}" --steps "$steps" --prompt "a red ball bounces on a wooden floor" --write -q > /dev/null
fi
"$PY" tools/bench_cache_diffusers.py "$WORK/model" "$WORK/latents.safetensors" "$steps" "$fbc" "$mag" 2>/dev/null \
  > "$WORK/cache-diffusers.jsonl"
for s in none "first-block:$fbc" "magcache:$mag"; do
  flags=()
  [ "$s" = none ] || flags=(--cache "${s%%:*}" --cache-threshold "${s#*:}")
  "$BIN" generate "${common[@]}" --prompt "a red ball bounces on a wooden floor" --negative-prompt "blurry" \
    --steps "$steps" --latents "$WORK/latents.safetensors" --no-provenance "${flags[@]}" \
    -o "$WORK/cache-${s%%:*}.safetensors" 2> "$WORK/cache-${s%%:*}.log"
done
"$PY" - "$WORK" "$steps" <<'PYEOF'
import json, re, sys
import numpy as np
from safetensors.numpy import load_file
w, steps = sys.argv[1], int(sys.argv[2])
d = [json.loads(l) for l in open(w + "/cache-diffusers.jsonl")]
stamp = lambda line: float(re.match(r"\[\s*([\d.]+)s\]", line).group(1))
def tessera(kind):
    log = open(f"{w}/cache-{kind}.log").read().splitlines()
    start = [stamp(l) for l in log if l.endswith("denoise...")][0]
    end = [stamp(l) for l in log if re.search(r"step \d+/", l)][-1]
    m = [re.search(r"(\d+) of (\d+) transformer passes skipped", l) for l in log]
    m = [x for x in m if x]
    skipped = int(m[-1].group(1)) if m else 0
    frames = next(iter(load_file(f"{w}/cache-{kind}.safetensors").values())).astype(np.float64)
    return end - start, skipped, frames
base_t, _, base_f = tessera("none")
print(f"| setting ({steps} steps, CFG) | tessera loop (s) | diffusers loop (s) | tessera / diffusers | skipped (tessera / diffusers, of {2 * steps}) | tessera / diffusers uncached | PSNR vs tessera uncached (dB) |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for kind, row in zip(["none", "first-block", "magcache"], d):
    t, skipped, f = tessera(kind)
    mse = ((f - base_f) ** 2).mean()
    psnr = "identical" if mse == 0 else f"{10 * np.log10(1 / mse):.1f}"
    print(f"| {row['setting']} | {t:.1f} | {row['loop_s']:.1f} | {t / row['loop_s']:.2f} | {skipped} / {row['passes'] - row['computed']} | {t / d[0]['loop_s']:.2f} | {psnr} |")
PYEOF
