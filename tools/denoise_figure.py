# A contact sheet of one-step denoising estimates (MODEL_CARD, "Known failures"): for each
# of the first CLIPS clips, a row of the clip itself, then a row per estimates file given
# (frames 0, 12 and 24 side by side). Each file is what
# `cargo run --release -p tessera-train --example denoise_check -- MODEL OUT.safetensors N T`
# writes: `frames` (T, H, W, 3) in [0, 1], each clip's 25 estimated frames then its 25 frames.
#   python3 tools/denoise_figure.py OUT.png CLIPS EST1.safetensors [EST2.safetensors ...]
import sys
import numpy as np
from PIL import Image
from safetensors.numpy import load_file

out, clips, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
sets = [load_file(f)["frames"] for f in files]
pick = (0, 12, 24)
gap = lambda w: np.ones((4, w, 3), np.float32)
rows = []
for c in range(clips):
    base = c * 50
    clip = sets[0][base + 25 : base + 50]
    strip = lambda frames: np.concatenate([frames[i] for i in pick], 1)
    rows.append(strip(clip))
    for s in sets:
        rows.append(strip(s[base : base + 25]))
    rows.append(gap(rows[-1].shape[1]))
img = np.concatenate(rows[:-1], 0)
Image.fromarray((img.clip(0, 1) * 255).round().astype(np.uint8)).resize(
    (img.shape[1] * 2, img.shape[0] * 2), Image.NEAREST).save(out)
print("wrote", out, img.shape)
