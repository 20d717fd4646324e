#!/usr/bin/env python3
"""rel = |P-B|/|B| of one tensor, computed from the fixture bytes without crucible
(FP8 E4M3 decoded with its 128x128 block scales, BF16, F32).  usage: BASE PARENT NAME"""
import json, math, os, struct, sys
def load(d):
    where = {}
    for f in os.listdir(d):
        if f.endswith(".safetensors"):
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                n = struct.unpack("<Q", fh.read(8))[0]
                h = json.loads(fh.read(n))
            for k, v in h.items():
                if k != "__metadata__":
                    where[k] = (p, 8 + n, v)
    return where
def e4m3(b):
    s = -1.0 if b & 0x80 else 1.0
    e = (b >> 3) & 15; m = b & 7
    if e == 15 and m == 7: return float("nan")
    if e == 0: return s * (m / 8.0) * 2.0 ** -6
    return s * (1 + m / 8.0) * 2.0 ** (e - 7)
def values(w, name):
    p, off, v = w[name]
    a, b = v["data_offsets"]
    with open(p, "rb") as fh:
        fh.seek(off + a); raw = fh.read(b - a)
    dt, shape = v["dtype"], v["shape"]
    if dt == "F8_E4M3":
        sc = values(w, name + "_scale_inv")
        cols = shape[1]; scols = (cols + 127) // 128
        return [e4m3(raw[i]) * sc[(i // cols) // 128 * scols + (i % cols) // 128] for i in range(len(raw))]
    if dt == "F32":
        return list(struct.unpack("<%df" % (len(raw) // 4), raw))
    if dt == "BF16":
        return [struct.unpack("<f", b"\0\0" + raw[i:i+2])[0] for i in range(0, len(raw), 2)]
    raise SystemExit("dtype " + dt)
base, par, name = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3]
B, P = values(base, name), values(par, name)
nb = math.sqrt(sum(x * x for x in B)); nd = math.sqrt(sum((p - b) ** 2 for p, b in zip(P, B)))
print("%.4f" % (nd / nb))
