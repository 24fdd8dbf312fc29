# Sourced by benches/run.sh and benches/cache.sh from the repository root: the venv
# (./venv or $VENV), the work folder ($BENCH_DIR, default /tmp/tessera-bench) with the
# mid-size benchmark model (tools/bench_model.py, made once) and the fixed initial latents,
# and the release binary. Sets PY, WORK and BIN.
VENV="${VENV:-$PWD/venv}"
PY="$VENV/bin/python"
WORK="${BENCH_DIR:-/tmp/tessera-bench}"
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}"
mkdir -p "$WORK"
[ -f "$WORK/model/model_index.json" ] || "$PY" tools/bench_model.py "$WORK/model" >/dev/null
"$PY" - "$WORK" <<'PYEOF'
import sys, torch
from safetensors.torch import save_file
g = torch.Generator().manual_seed(0)
save_file({"latents": torch.randn(1, 16, 5, 32, 32, generator=g)}, sys.argv[1] + "/latents.safetensors")
PYEOF
cargo build --release --bin tessera >/dev/null 2>&1
BIN="${CARGO_TARGET_DIR:-target}/release/tessera"
