#!/usr/bin/env python3
"""Writes a diffusers Wan transformer folder's weights as a GGUF file in the community's
layout (original Wan key names, as city96's conversions): the blocks' 2-D linear weights in
TYPE (Q8_0, Q4_K or Q5_K; a width the blocks do not divide stays F16), 1-D tensors and the
modulation in F32, everything else F16. For benchmarks and tests of `--gguf`; tessera reads
published files too. Needs numpy, safetensors and gguf (pip).

    venv/bin/python tools/to_gguf.py MODEL/transformer OUT.gguf q8_0
"""

import glob
import os
import sys

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kquants  # noqa: E402
from make_fixtures import to_original  # noqa: E402


def main():
    src, dst, qtype = sys.argv[1], sys.argv[2], sys.argv[3].upper()
    import gguf
    from gguf import GGMLQuantizationType as T

    qt = {"Q8_0": T.Q8_0, "Q4_K": T.Q4_K, "Q5_K": T.Q5_K}[qtype]
    block = 32 if qt == T.Q8_0 else 256
    sd = {}
    for f in sorted(glob.glob(os.path.join(src, "*.safetensors"))):
        sd.update({k: v.astype(np.float32) for k, v in load_file(f).items()})
    w = gguf.GGUFWriter(dst, arch="wan")
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for k in sorted(sd):
        a = sd[k]
        if k.startswith("blocks.") and k.endswith(".weight") and a.ndim == 2 and a.shape[1] % block == 0:
            t = qt
        elif a.ndim == 1 or "scale_shift_table" in k:
            t = T.F32
        else:
            t = T.F16
        if t == T.Q4_K:
            data = kquants.quantize_q4_k(a)
        elif t == T.Q5_K:
            data = kquants.quantize_q5_k(a)
        else:
            data = gguf.quants.quantize(a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a, t)
            if t in (T.F32, T.F16):
                data = data.reshape(a.shape)
        w.add_tensor(to_original(k), data, raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{dst}: {len(sd)} tensors, {os.path.getsize(dst) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
