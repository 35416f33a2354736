#!/usr/bin/env python3
"""Writes the hand-made seeds of the `pack_input` and `roundtrip` fuzz targets (the `open` and
`decode` seeds are copies of fixtures/*.sdq and tests/corrupt/*.sdq). Deterministic; no
dependencies beyond the standard library. Run from the repository root:

    python3 fuzz/make_seeds.py
"""
import json
import os
import random
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
rng = random.Random(7)


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, bytes) in data order."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    data = b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def f32(n, scale=1.0):
    return struct.pack("<%df" % n, *[rng.uniform(-scale, scale) for _ in range(n)])


def f16(n):
    return struct.pack("<%de" % n, *[rng.uniform(-1, 1) for _ in range(n)])


def f64(n):
    return struct.pack("<%dd" % n, *[rng.uniform(-1, 1) for _ in range(n)])


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


seeds = {
    "single_f32": safetensors([("fc.weight", "F32", [16, 8], f32(128))]),
    "weight_bias": safetensors([
        ("fc.weight", "F32", [12, 5], f32(60)),
        ("fc.bias", "F32", [12], f32(12)),
    ], {"format": "pt"}),
    "mixed_dtypes": safetensors([
        ("emb", "F16", [20, 4], f16(80)),
        ("steps", "I64", [3], struct.pack("<3q", 1, -2, 3)),
        ("conv.weight", "BF16", [8, 2, 3, 3], bytes(rng.getrandbits(8) & 0x3F for _ in range(288))),
        ("proj", "F64", [10, 3], f64(30)),
        ("flag", "BOOL", [4], bytes([0, 1, 1, 0])),
        ("scalar", "F32", [], f32(1)),
        ("empty", "F32", [0, 4], b""),
    ], {"a": "b", "c": "d"}),
    "rows_bias": safetensors([
        ("l.weight", "F32", [6, 20], f32(120, 3.0)),
        ("l.bias", "F32", [6], f32(6)),
        ("m.weight", "F16", [20, 3], f16(60)),
    ]),
    "zeros": safetensors([("z.weight", "F32", [17, 2], bytes(136))]),
}
for i, (name, data) in enumerate(sorted(seeds.items())):
    for opt in (0, 0x45, 0x8A, 0xF3):
        write("pack_input", "%s_%02x" % (name, opt), bytes([opt]) + data)
# A sharded-index-looking input (first byte '{' makes the checkpoint reader treat it as JSON).
write("pack_input", "index_json", b"\x00" + json.dumps(
    {"weight_map": {"a": "in.safetensors"}, "metadata": {"total_size": 1}}).encode())

# roundtrip: unstructured bytes; a few fixed patterns of different lengths.
for i, n in enumerate((16, 64, 256, 1024, 4096)):
    write("roundtrip", "random_%d" % n, bytes(rng.getrandbits(8) for _ in range(n)))
write("roundtrip", "zeros_512", bytes(512))
write("roundtrip", "ones_512", b"\xff" * 512)
