#!/usr/bin/env bash
# Speed and memory of `tessera generate` against diffusers' WanPipeline, same machine,
# same model, same initial latents, one run. Prints a markdown table for BENCHMARKS.md.
#
#   bash benches/run.sh            # needs the venv of tools/make_fixtures.py at ./venv or $VENV
#   TESSERA_FLAGS="--quantize q8_0" bash benches/run.sh   # extra flags for tessera's run
#   SHAPE=wan13 STEPS=2 BENCH_DIR=/tmp/tessera-bench13 bash benches/run.sh
#       # the second configuration: Wan 2.1 1.3B-shaped (tools/bench_model.py), 2 steps
#
# The model (random weights; speed only) is the engine issue's mid-size configuration:
# transformer 8 layers of width 512, the real Wan 2.1 VAE, a 4-layer UMT5; 256x256,
# 17 frames, 4 UniPC steps, guidance 5 (so 8 transformer passes).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/setup.sh
source benches/setup.sh

"$PY" tools/bench_diffusers.py "$WORK/model" "$WORK/latents.safetensors" "$WORK/diffusers-frames.safetensors" 2>/dev/null | tail -1 > "$WORK/diffusers.json"
/usr/bin/time -f "%e %M" -o "$WORK/tessera.time" "$BIN" generate --model "$WORK/model" \
  --prompt "a red ball bounces on a wooden floor" --negative-prompt "blurry" --size 256x256 --frames 17 \
  --steps "${STEPS:-4}" --guidance 5 --latents "$WORK/latents.safetensors" ${TESSERA_FLAGS:-} -o "$WORK/out.safetensors" \
  2> "$WORK/tessera.log"

"$PY" - "$WORK" <<'PYEOF'
import json, re, sys
w = sys.argv[1]
d = json.loads(open(w + "/diffusers.json").read())
wall, rss_kb = open(w + "/tessera.time").read().split()
log = open(w + "/tessera.log").read().splitlines()
stamp = lambda line: float(re.match(r"\[\s*([\d.]+)s\]", line).group(1))
def between(start, end_pat):
    s = [stamp(l) for l in log if l.endswith(start)][0]
    e = [stamp(l) for l in log if re.search(end_pat, l)][-1]
    return e - s
steps = int(re.search(r"step \d+/(\d+)", [l for l in log if "step" in l][-1]).group(1))
t = dict(total_s=float(wall), step_s=between("denoise...", r"step \d+/") / steps,
         decode_s=between("decode...", r"decode frame"), peak_rss_mb=int(rss_kb) / 1024)
rows = [("whole `generate` run (s)", "total_s"), ("denoising step, CFG (s)", "step_s"),
        ("VAE decode (s)", "decode_s"), ("peak RSS (MB)", "peak_rss_mb")]
print("| measure | tessera | diffusers | tessera / diffusers |")
print("| --- | --- | --- | --- |")
for name, k in rows:
    print(f"| {name} | {t[k]:.2f} | {d[k]:.2f} | {t[k] / d[k]:.2f} |")
# Same numerics: the frames' relative L2 difference (the engine issue asks <= 1e-4).
from safetensors.numpy import load_file
a = load_file(w + "/out.safetensors")["frames"].astype("float64")
b = load_file(w + "/diffusers-frames.safetensors")["frames"].astype("float64")
rel = ((a - b) ** 2).sum() ** 0.5 / max((b ** 2).sum() ** 0.5, 1e-30)
print(f"\nframes against diffusers': relative L2 {rel:.2e}, largest difference {abs(a - b).max():.2e}")
PYEOF
