# Experiment (2026-12-02): a run's initial weights with the "carry" initialisation, so that the
# transformer's velocity is v = x_t before training (it carries all of the input's noise):
# the patch embedding's x_t channels become an orthonormal map Q into the width, and
# proj_out Q^T scaled to undo norm_out's normalisation. SRC is a checkpoint of a 1-step,
# lr = 0 run of the same config (its param/ weights are the trainer's initialisation);
# OUT is given to a run as `init = "OUT"`. MODEL_CARD "Known failures" has the trial.
#   venv/bin/python tools/carry_init.py SRC.safetensors OUT.safetensors
import sys
import numpy as np
from safetensors.numpy import load_file, save_file
src, out = sys.argv[1:3]
w = load_file(src)
pe = w["param/transformer.patch_embedding.weight"]   # (D, 36, 1, p, p)
po = w["param/transformer.proj_out.weight"]          # (C*p*p, D)
D, _, _, p, _ = pe.shape
C = po.shape[0] // (p * p)
rng = np.random.default_rng(0)
q, _ = np.linalg.qr(rng.standard_normal((D, C * p * p)))  # orthonormal columns
pe = pe.copy(); po = np.zeros_like(po)
for c in range(C):
    for kh in range(p):
        for kw in range(p):
            o = (kh * p + kw) * C + c          # diffusers' unpatchify order (p_h, p_w, C)
            pe[:, c, 0, kh, kw] = q[:, o]
            po[o, :] = q[:, o] * np.sqrt(C * p * p / D)   # undoes norm_out's scaling
w["param/transformer.patch_embedding.weight"] = pe.astype(np.float32)
w["param/transformer.proj_out.weight"] = po.astype(np.float32)
save_file({k: v for k, v in w.items() if k.startswith("param/")}, out)
print("ok", D, C, p)
