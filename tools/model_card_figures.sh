#!/usr/bin/env bash
# Every figure and sample MODEL_CARD.md shows, for the model in models/tessera-world (run
# after installing a newly trained one; about 15 minutes on the 2-core machine):
#   - quality: tools/eval_model.sh on 100 held-out prompts (seed 777, 2 s);
#   - the VAE's ceiling: tools/eval_vae.sh on 30 held-out world clips;
#   - speed and memory: tools/measure_builtin.sh;
#   - the sample GIFs (docs/model-card/samples) and the curves of the runs given.
#
#   tools/model_card_figures.sh OUT_DIR [VAE_RUN_DIR TRANSFORMER_RUN_DIR]
set -euo pipefail
out=$1 vae_run=${2:-} tr_run=${3:-}
bin=${TESSERA:-target/release/tessera}
model=models/tessera-world
mkdir -p "$out" docs/model-card/samples
if [ -n "$vae_run" ]; then cp "$vae_run/curves.png" docs/model-card/vae-curves.png; fi
if [ -n "$tr_run" ]; then cp "$tr_run/curves.png" docs/model-card/transformer-curves.png; fi
du -sh "$model" | tee "$out/size.txt"
bash tools/eval_model.sh "$model" "$out/eval100" 100 777 2 > "$out/eval.txt" 2>&1
tail -1 "$out/eval.txt"
bash tools/eval_vae.sh "$model" "$out/evalvae" 30 777 2 | tee "$out/vae.txt"
bash tools/measure_builtin.sh "$out/measure" | tee "$out/measure.txt"
i=0
for p in "a red ball bounces on a wooden floor" \
         "a purple ball bounces on the grass in daylight" \
         "a large red triangle sits still on a checker floor" \
         "a green box is dropped and bounces on a lawn in the evening at sunset"; do
  "$bin" generate "$p" --seed $i -q -o docs/model-card/samples/sample$i.gif
  i=$((i + 1))
done
"$bin" world render --count 1 --seed 99 --seconds 2 --cuts 0 --out "$out/world" -q
p=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["prompt"])' "$out/world/000000.json")
"$bin" generate "$p" --video "$out/world/000000.mp4" --extend forward --seconds 2 -q \
  -o docs/model-card/samples/extended.gif
echo "extension sample: $p"
