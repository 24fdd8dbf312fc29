#!/usr/bin/env bash
# The invisible watermark against the attacks, with ffmpeg (Debian's package):
# world clips are marked, then re-encoded with x264 at CRF 28, scaled to half size,
# cropped by 10% (5% off each side), cut by 2 seconds, and all four at once; `tessera
# verify` must find the payload. Unmarked clips (world renders and ffmpeg's synthetic test
# sources) count false positives.
#
#   tools/watermark_robustness.sh OUT_DIR [COUNT=20] [SIZE=256x144]
set -euo pipefail
out=$1 count=${2:-20} size=${3:-256x144}
bin=${TESSERA:-target/release/tessera}
mark=${MARK:-target/release/examples/watermark}
mkdir -p "$out/world" "$out/marked" "$out/attacked"
"$bin" world render --count "$count" --seed 31337 --seconds 5 --size "$size" --out "$out/world" -q
declare -A ok=() ; total=0 ; fp=0 ; negatives=0
attacks=(none crf28 half crop10 cut2s all)
for a in "${attacks[@]}"; do ok[$a]=0; done
for v in "$out"/world/*.mp4; do
  n=$(basename "$v" .mp4); id=$(printf '%08x' $((10#$n + 4096)))
  "$mark" "$v" "$out/marked/$n.mp4" "$id" > /dev/null
  src="$out/marked/$n.mp4"
  for a in "${attacks[@]}"; do
    dst="$out/attacked/$n-$a.mp4"
    case $a in
      none) cp "$src" "$dst" ;;
      crf28) ffmpeg -loglevel error -y -i "$src" -c:v libx264 -crf 28 -pix_fmt yuv420p "$dst" ;;
      half) ffmpeg -loglevel error -y -i "$src" -vf "scale=trunc(iw/4)*2:trunc(ih/4)*2" -c:v libx264 -crf 18 -pix_fmt yuv420p "$dst" ;;
      crop10) ffmpeg -loglevel error -y -i "$src" -vf "crop=trunc(iw*0.9/2)*2:trunc(ih*0.9/2)*2" -c:v libx264 -crf 18 -pix_fmt yuv420p "$dst" ;;
      cut2s) ffmpeg -loglevel error -y -ss 2 -i "$src" -c:v libx264 -crf 18 -pix_fmt yuv420p "$dst" ;;
      all) ffmpeg -loglevel error -y -ss 2 -i "$src" -vf "crop=trunc(iw*0.9/2)*2:trunc(ih*0.9/2)*2,scale=trunc(iw/4)*2:trunc(ih/4)*2" -c:v libx264 -crf 28 -pix_fmt yuv420p "$dst" ;;
    esac
    got=$("$bin" verify --json "$dst" | python3 -c 'import json,sys; w=json.load(sys.stdin)["watermark"]; print((w["payload"] or {}).get("id",""))')
    [ "$got" = "$id" ] && ok[$a]=$((ok[$a] + 1))
  done
  total=$((total + 1))
  for u in "$v"; do
    negatives=$((negatives + 1))
    d=$("$bin" verify --json "$u" | python3 -c 'import json,sys; print(json.load(sys.stdin)["watermark"]["detected"])')
    [ "$d" = "True" ] && fp=$((fp + 1))
  done
done
for src in testsrc testsrc2 smptebars mandelbrot rgbtestsrc cellauto life gradients; do
  f="$out/attacked/unmarked-$src.mp4"
  ffmpeg -loglevel error -y -f lavfi -i "$src=size=$size:rate=12" -t 4 -c:v libx264 -crf 23 -pix_fmt yuv420p "$f" || continue
  negatives=$((negatives + 1))
  d=$("$bin" verify --json "$f" | python3 -c 'import json,sys; print(json.load(sys.stdin)["watermark"]["detected"])')
  [ "$d" = "True" ] && fp=$((fp + 1))
done
for a in "${attacks[@]}"; do echo "$a: ${ok[$a]}/$total payloads read exactly"; done
echo "false positives: $fp/$negatives unmarked videos"
