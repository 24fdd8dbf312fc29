"""Encoders for llama.cpp's K-quant blocks Q4_K and Q5_K, for tessera's GGUF fixtures.

The `gguf` package (0.19) dequantizes these formats but cannot quantize them, and the
community's Wan files are mostly Q4_K and Q5_K. The encoders here are simple (each 32-value
sub-block's range split evenly; not llama.cpp's iterative search), which is all a fixture
needs: the reference values are `gguf.quants.dequantize` of the bytes written, so the test
checks tessera's reading of the format, not the encoder's quality. The block layout is
ggml's (ggml-common.h `block_q4_K`, `block_q5_K`; scales packed as `get_scale_min_k4` reads
them); `roundtrip_error` checks it against gguf's dequantizer.
"""

import numpy as np

QK_K = 256


def _pack_scales(sc, m):
    """Eight 6-bit scales and mins -> 12 bytes (the inverse of get_scale_min_k4)."""
    out = np.zeros(12, dtype=np.uint8)
    for j in range(4):
        out[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6)
        out[j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6)
        out[j + 8] = (sc[j + 4] & 15) | ((m[j + 4] & 15) << 4)
    return out


def _block(x, nmax):
    """One super-block of 256 values -> (d, dmin, packed scales, per-value codes 0..nmax)."""
    sub = x.reshape(8, 32)
    lo = np.minimum(sub.min(axis=1), 0.0)
    hi = sub.max(axis=1)
    scale = (hi - lo) / nmax
    mins = -lo
    d = np.float16(scale.max() / 63)
    dmin = np.float16(mins.max() / 63)

    def codes(v, step):
        step = np.float32(step)
        return np.clip(np.round(v / step), 0, 63).astype(np.uint8) if step > 0 else np.zeros(8, np.uint8)

    sc, m = codes(scale, d), codes(mins, dmin)
    d1 = np.float32(d) * sc.astype(np.float32)
    m1 = np.float32(dmin) * m.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(d1[:, None] > 0, np.round((sub + m1[:, None]) / d1[:, None]), 0)
    q = np.clip(q, 0, nmax).astype(np.uint8)
    return d, dmin, _pack_scales(sc, m), q


def _quantize(a, nmax):
    """(rows, cols) float32, cols a multiple of 256 -> one K-quant block of bytes per 256
    values: d, dmin (f16), 12 bytes of scales, for 5 bits (nmax 31) 32 bytes of high bits,
    then 128 bytes of low nibbles (sub-blocks 2c and 2c+1 share the 32 bytes of chunk c)."""
    rows, cols = a.shape
    out = []
    for x in a.reshape(-1, QK_K):
        d, dmin, scales, q = _block(x, nmax)
        qs = np.zeros(128, dtype=np.uint8)
        qh = np.zeros(32, dtype=np.uint8)
        for c in range(4):
            lo, hi = q[2 * c], q[2 * c + 1]
            qs[32 * c:32 * c + 32] = (lo & 15) | ((hi & 15) << 4)
            qh |= ((lo >> 4) << (2 * c)).astype(np.uint8) | ((hi >> 4) << (2 * c + 1)).astype(np.uint8)
        head = [np.frombuffer(np.array([d, dmin], dtype=np.float16).tobytes(), np.uint8), scales]
        out.append(np.concatenate(head + ([qh] if nmax == 31 else []) + [qs]))
    return np.stack(out).reshape(rows, -1)


def quantize_q4_k(a):
    """(rows, cols) float32, cols a multiple of 256 -> (rows, cols / 256 * 144) uint8."""
    return _quantize(a, 15)


def quantize_q5_k(a):
    """(rows, cols) float32, cols a multiple of 256 -> (rows, cols / 256 * 176) uint8."""
    return _quantize(a, 31)


def roundtrip_error(a, qtype):
    """Relative L2 error of gguf's dequantization of our encoding of `a`."""
    import gguf
    from gguf import GGMLQuantizationType as T

    enc = {T.Q4_K: quantize_q4_k, T.Q5_K: quantize_q5_k}[qtype](a)
    back = gguf.quants.dequantize(enc, qtype).reshape(a.shape)
    return float(np.linalg.norm(back - a) / np.linalg.norm(a))
