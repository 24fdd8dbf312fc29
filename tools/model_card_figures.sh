#!/usr/bin/env bash
# Every figure and sample MODEL_CARD.md shows, for the model in models/tessera-world (run
# after installing a newly trained one; about 15 minutes on the 2-core machine):
#   - quality: tools/eval_model.sh on 100 held-out prompts (seed 777, 2 s);
#   - the VAE's ceiling: tools/eval_vae.sh on 100 unseen world clips (issue 28's gate) and
#     on 30 clips of the held-out split;
#   - speed and memory: tools/measure_builtin.sh;
#   - the sample GIFs (docs/model-card/samples), a contact sheet of 16 hand-written prompts
#     (docs/model-card/contact-sheet.png) and the curves of the runs given.
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
bash tools/eval_vae.sh "$model" "$out/evalvae" 100 777 2 any | tee "$out/vae.txt"
bash tools/eval_vae.sh "$model" "$out/evalvae-held-out" 30 777 2 held-out | tee "$out/vae-held-out.txt"
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
# The contact sheet: 16 prompts written by hand, one row each, every 4th frame of 2 s.
mkdir -p "$out/sheet"
sheet=()
i=0
while IFS= read -r p; do
  f="$out/sheet/$(printf %02d $i).mp4"
  "$bin" generate "$p" --seconds 2 --seed $i -q -o "$f"
  sheet+=("$f")
  echo "row $i: $p"
  i=$((i + 1))
done <<'PROMPTS'
a red ball bounces on a wooden floor
a large blue box slides to the right on the grass
a small yellow triangle sits still on a checker floor in the evening
a green ball rolls to the left across a stone floor
a purple box falls and lands on the sand
two balls, one red and one white, collide on a wooden floor
a large orange ball bounces slowly at night
a blue triangle slides to the right and stops
a white box and a black ball on the grass, the camera pans left
a medium red box falls onto a checker floor indoors
a yellow ball rolls behind a wall and comes out the other side
a close-up of a green triangle on a wooden floor
a large purple ball bounces on the sand at sunset
an orange box slides to the left on a stone floor in dim light
a small white ball bounces twice on the grass
a red triangle and a blue box sit still in daylight
PROMPTS
# Built beside the CLI so the features match its build (a lone `-p tessera-train` build
# resolves other features and recompiles candle).
cargo build --release -q -p tessera-cli -p tessera-train --example contact_sheet
target/release/examples/contact_sheet docs/model-card/contact-sheet.png 4 "${sheet[@]}"
