#!/usr/bin/env bash
# The tasks issue's quality checks with `tessera eval`, on world videos:
# - extension: world clips (2 s) extended forward by 2 s with the model, scored as whole
#   4-second clips against their prompts, next to 4-second plain generations of the same
#   prompts (permanence and consistency should stay within 0.1);
# - a minute: one 60-second generation, scored for consistency over the whole minute.
#
#   tools/eval_tasks.sh MODEL_DIR OUT_DIR [COUNT=20] [SEED=4242]
set -euo pipefail
model=$1 out=$2 count=${3:-20} seed=${4:-4242}
bin=${TESSERA:-target/release/tessera}
mkdir -p "$out/world" "$out/extended" "$out/plain" "$out/minute"
"$bin" world render --count "$count" --seed "$seed" --seconds 2 --cuts 0 --out "$out/world" -q
: > "$out/suite.jsonl"
for json in "$out"/world/*.json; do
  name=$(basename "$json" .json)
  prompt=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["prompt"])' "$json")
  python3 -c 'import json,sys; print(json.dumps({"prompt": sys.argv[1]}))' "$prompt" >> "$out/suite.jsonl"
  "$bin" generate "$prompt" --model "$model" --video "$out/world/$name.mp4" --extend forward \
    --seconds 2 --seed "$((10#$name))" -q -o "$out/extended/$name.mp4"
  "$bin" generate "$prompt" --model "$model" --seconds 4 --seed "$((10#$name))" -q -o "$out/plain/$name.mp4"
done
"$bin" eval --suite "$out/suite.jsonl" --videos "$out/extended" --out "$out/extended.json" -q
"$bin" eval --suite "$out/suite.jsonl" --videos "$out/plain" --out "$out/plain.json" -q
prompt=$(head -1 "$out/suite.jsonl")
echo "$prompt" > "$out/minute/suite.jsonl"
p=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["prompt"])' "$prompt")
"$bin" generate "$p" --model "$model" --seconds 60 -q -o "$out/minute/000000.mp4"
"$bin" eval --suite "$out/minute/suite.jsonl" --videos "$out/minute" --out "$out/minute.json" -q
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
for name in ("extended", "plain", "minute"):
    m = json.load(open(f"{out}/{name}.json"))["mean"]
    print(f"{name:9s} " + " ".join(f"{k} {v:.3f}" for k, v in m.items()))
PY
