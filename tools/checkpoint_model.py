# A model folder from a training checkpoint (for checks in the middle of a run): the
# checkpoint's EMA weights (or raw, with `param`) in place of a template folder's (an exported
# model of the same sizes).
#   venv/bin/python tools/checkpoint_model.py CKPT.safetensors TEMPLATE_DIR OUT_DIR [ema|param]
import sys, shutil, os
from safetensors.numpy import load_file, save_file
ckpt, template, out = sys.argv[1:4]; PFX = (sys.argv[4] if len(sys.argv) > 4 else "ema") + "/"
shutil.rmtree(out, ignore_errors=True); shutil.copytree(template, out)
w = load_file(ckpt)
for sub, prefix, fn in [("transformer", PFX+"transformer.", "diffusion_pytorch_model.safetensors"), ("text_encoder", PFX+"text_encoder.", "model.safetensors")]:
    d = {k[len(prefix):]: v for k, v in w.items() if k.startswith(prefix)}
    assert d, prefix
    save_file(d, os.path.join(out, sub, fn))
print("wrote", out)
