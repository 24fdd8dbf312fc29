#!/usr/bin/env bash
# The continuation test (issue 27, README "The benchmark"): world clips whose first GIVEN
# seconds a model extends forward to SECONDS, compared with the simulator's own
# continuation of the same scenes by `tessera eval --continuation`, COUNT in-distribution
# clips and COUNT held-out ones (colour-shape pairs, size-shape pairs and launch speeds
# that training never shows; holdout.rs), reported apart.
#
#   tools/eval_continuation.sh MODEL_DIR OUT_DIR [COUNT=20] [SEED=778] [SECONDS=3] [GIVEN=1]
set -euo pipefail
model=$1 out=$2 count=${3:-20} seed=${4:-778} seconds=${5:-3} given=${6:-1}
bin=${TESSERA:-target/release/tessera}
rm -rf "$out" && mkdir -p "$out/videos"
: > "$out/suite.jsonl"
# Videos are paired with suite lines in name order: in-distribution ones first.
k=0
for split in in-distribution held-out; do
  "$bin" world render --count "$count" --seed "$seed" --seconds "$seconds" --fps 12 --cuts 0 --split "$split" \
    --given "$given" --given-out "$out/given-$split" --out "$out/truth-$split" -q
  for json in "$out/truth-$split"/*.json; do
    name=$(basename "$json" .json)
    python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$json" >> "$out/suite.jsonl"
    prompt=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["prompt"])' "$json")
    rest=$(python3 -c "print($seconds - $given)")
    "$bin" generate "$prompt" --model "$model" --video "$out/given-$split/$name.mp4" --extend forward \
      --seconds "$rest" --seed "$((10#$name))" -q -o "$out/videos/$k-$split-$name.mp4"
  done
  k=$((k + 1))
done
"$bin" eval --continuation --given "$given" --suite "$out/suite.jsonl" --videos "$out/videos" \
  --out "$out/continuation.json" -q
