#!/usr/bin/env python3
"""Interoperability check of the `sdq` command line with Python's safetensors and numpy.

Usage: python3 tests/interop/check.py PATH/TO/sdq

Builds checkpoints with `safetensors.numpy` (F32, F16, odd shapes, a 1-D bias, an int64
tensor, a conv weight, metadata), one with BF16 tensors written byte by byte (numpy has no
bfloat16), and a sharded checkpoint with its index.json; runs `sdq pack`, `sdq info --json`,
`sdq unpack` and `sdq verify --against` on each; reads the unpacked files back with Python's
safetensors and checks names, dtypes, shapes, order, metadata, raw tensors bit for bit, and
every quantized vector's error (recomputed in numpy) against the certified bound reported by
`sdq info --json`.

Prints one line per check group and closes with "N passed, M failed"; exits 1 on any failure.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file
except ImportError as e:  # pragma: no cover
    print(f"interop: {e}: pip install -r tests/interop/requirements.txt", file=sys.stderr)
    sys.exit(2)

SDQ = None
PASSED = 0
FAILED = 0


def check(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print(f"FAIL: {what}", file=sys.stderr)


def sdq(*args, expect=0):
    p = subprocess.run([SDQ, *map(str, args)], capture_output=True)
    if p.returncode != expect:
        raise SystemExit(
            f"interop: sdq {' '.join(map(str, args))} exited {p.returncode}, expected {expect}\n"
            f"stdout: {p.stdout.decode(errors='replace')}\nstderr: {p.stderr.decode(errors='replace')}"
        )
    return p.stdout


def read_raw(path):
    """A minimal safetensors reader: (ordered [(name, dtype, shape, bytes)], metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    items = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    out = []
    for name, h in items:
        b, e = h["data_offsets"]
        out.append((name, h["dtype"], list(h["shape"]), data[base + b : base + e]))
    return out, meta


def bf16_bytes(x):
    """float32 array → bfloat16 little-endian bytes, round to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return r.astype("<u2").tobytes()


def bf16_to_f32(b):
    u = np.frombuffer(b, dtype="<u2").astype(np.uint32) << 16
    return u.view(np.float32)


def write_by_hand(path, tensors, metadata):
    """tensors: [(name, dtype, shape, bytes)] in this order."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    off = 0
    for name, dt, shape, b in tensors:
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for *_, b in tensors:
            f.write(b)


NP = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}


def as_f32(dtype, b):
    if dtype == "BF16":
        return bf16_to_f32(b).astype(np.float64)
    return np.frombuffer(b, dtype=NP[dtype]).astype(np.float64)


FLOATS = ("F32", "F16", "BF16", "F64")


def compare(orig_path_or_tensors, orig_meta, packed, unpacked, label, out_dtype=None):
    """Checks the unpacked file against the original tensors and the bounds of `sdq info`.
    `out_dtype`: the --dtype given to unpack (every float tensor in that dtype), or None for the
    default, each tensor's original dtype (a quantized F64 one as F32)."""
    orig = orig_path_or_tensors
    info = json.loads(sdq("info", packed, "--json"))
    check(info["schema_version"] == 1, f"{label}: schema_version")
    check(info["format_version"] == "1.0", f"{label}: format_version")
    for key in ("tensors", "elements", "stored_bytes", "fp32_bytes", "fp16_bytes",
                "ratio_fp32", "ratio_fp16", "bits_per_weight", "max_bound"):
        check(key in info["totals"], f"{label}: totals.{key}")
    by_name = {t["name"]: t for t in info["tensors"]}
    back, back_meta = read_raw(unpacked)
    check([t[0] for t in back] == [t[0] for t in orig], f"{label}: names and order")
    check(back_meta == orig_meta, f"{label}: metadata {back_meta} == {orig_meta}")
    # Python's safetensors reads the file (metadata and keys; tensors too when numpy can).
    with safe_open(str(unpacked), framework="np") as f:
        check(sorted(f.keys()) == sorted(t[0] for t in orig), f"{label}: safe_open keys")
        check((f.metadata() or {}) == orig_meta, f"{label}: safe_open metadata")
    if all(t[1] != "BF16" for t in back):
        loaded = load_file(str(unpacked))
        check(set(loaded) == {t[0] for t in orig}, f"{label}: load_file names")
    back_by = {t[0]: t for t in back}
    orig_by = {t[0]: t for t in orig}
    quantized = 0
    for name, dt, shape, b in orig:
        t = by_name[name]
        _, bdt, bshape, bb = back_by[name]
        check(bshape == shape, f"{label}: {name} shape {bshape} == {shape}")
        check(t["shape"] == shape and t["dtype"] == dt, f"{label}: {name} info shape/dtype")
        decoded_dtype = out_dtype or (dt if dt in ("F32", "F16", "BF16") else "F32")
        if t["encoding"] == "raw" and out_dtype and dt in FLOATS and dt != out_dtype:
            # --dtype converts raw float tensors too (rounded once to the output dtype).
            check(bdt == out_dtype, f"{label}: {name} raw float dtype {bdt} == {out_dtype}")
            eps = {"F32": 2.0**-23, "F16": 2.0**-10, "BF16": 2.0**-7}[bdt]
            x, y = as_f32(dt, b), as_f32(bdt, bb)
            check(bool(np.all(np.abs(x - y) <= eps * np.abs(x))), f"{label}: {name} converted")
        elif t["encoding"] == "raw":
            check(bdt == dt, f"{label}: {name} raw dtype {bdt} == {dt}")
            check(bb == b, f"{label}: {name} raw bytes bit-exact")
        elif t["encoding"] == "bias-of":
            check(bdt == decoded_dtype, f"{label}: {name} bias dtype {bdt}")
        else:
            quantized += 1
            check(bdt == decoded_dtype, f"{label}: {name} dtype {bdt} == {decoded_dtype}")
            q = t["quantization"]
            rows = shape[0]
            cols = int(np.prod(shape[1:]))
            w = as_f32(dt, b).reshape(rows, cols)
            wt = as_f32(bdt, bb).reshape(rows, cols)
            if q["has_bias"]:
                bias_name = next(x["name"] for x in info["tensors"] if x.get("bias_of") == name)
                w = np.hstack([w, as_f32(orig_by[bias_name][1], orig_by[bias_name][3]).reshape(rows, 1)])
                wt = np.hstack([wt, as_f32(back_by[bias_name][1], back_by[bias_name][3]).reshape(rows, 1)])
            vec_axis = 0 if q["orientation"] == "columns" else 1
            d = w.shape[vec_axis]
            check(q["d"] == d, f"{label}: {name} d = {q['d']} == {d}")
            if q["scheme"] == "pcm":
                check(q["n"] >= d, f"{label}: {name} N >= d")
            else:
                check(q["n"] > d, f"{label}: {name} N > d")
            err = np.linalg.norm(w - wt, axis=vec_axis)
            check(len(err) == q["vectors"], f"{label}: {name} vector count")
            # The decoded values were rounded once to the output dtype.
            eps = {"F32": 2.0**-23, "F16": 2.0**-10, "BF16": 2.0**-7}[bdt]
            slack = eps * np.linalg.norm(wt, axis=vec_axis)
            bound = q["max_bound"]
            worst = float(np.max(err - slack - bound))
            check(q["uncertified"] == 0, f"{label}: {name} all vectors certified")
            check(worst <= 0.0, f"{label}: {name} max error {err.max():.3e} <= bound {bound:.3e}")
            check(float(err.max()) > 0.0, f"{label}: {name} is really quantized")
    print(f"{label}: {len(orig)} tensors, {quantized} quantized, checked")
    return info


def main():
    global SDQ
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    SDQ = os.path.abspath(sys.argv[1])
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        # 1. safetensors.numpy: F32, F16, odd shapes, a bias, int64, conv, small last layer.
        tensors = {
            "lin.weight": (rng.standard_normal((37, 23)) * 0.1).astype(np.float32),
            "lin.bias": (rng.standard_normal(37) * 0.1).astype(np.float32),
            "half.weight": (rng.standard_normal((64, 17)) * 0.1).astype(np.float16),
            "conv.weight": (rng.standard_normal((20, 3, 5, 5)) * 0.1).astype(np.float32),
            "head.weight": (rng.standard_normal((5, 40)) * 0.1).astype(np.float32),
            "steps": np.array([3, -4, 2**40], dtype=np.int64),
            "scale": np.array(1.5, dtype=np.float64),
        }
        meta = {"format": "np", "note": "ünïcödé = \"quoted\""}
        p1 = os.path.join(tmp, "m.safetensors")
        save_file(tensors, p1, metadata=meta)
        orig, orig_meta = read_raw(p1)
        for label, extra, out_dtype in [
            # These tensors are tiny: a pcm record, its padding and steps are a large share of a
            # 4.5-bit budget, so the budget is 8 bits here.
            ("numpy pcm --include '*n*.weight' --bits-per-weight 8",
             ["--include", "*n*.weight", "--bits-per-weight", "8"], "F32"),
            ("numpy pcm --bias --zstd --coding fixed --include '*n*.weight' --bits-per-weight 8",
             ["--bias", "--zstd", "--coding", "fixed", "--include", "*n*.weight",
              "--bits-per-weight", "8"], "F32"),
            ("numpy first-order columns", ["--scheme", "first-order", "--axis", "columns"], "F32"),
            ("numpy first-order --bias --zstd",
             ["--scheme", "first-order", "--axis", "columns", "--bias", "--zstd"], "F32"),
            ("numpy first-order --axis rows --levels 2",
             ["--scheme", "first-order", "--axis", "rows", "--levels", "2"], "F32"),
            ("numpy first-order --delta uniform --dtype f16",
             ["--scheme", "first-order", "--axis", "columns", "--delta", "uniform"], "F16"),
        ]:
            q = os.path.join(tmp, "m.sdq")
            u = os.path.join(tmp, "m.unpacked.safetensors")
            sdq("pack", p1, "-o", q, *extra)
            # The paper's norm-based δ on these small random layers keeps its bounds but not
            # the weights (relative errors near 1): verify's quality limit is relaxed there.
            limit = ["--max-relative-error", "2"] if "first-order" in extra else []
            sdq("verify", q, "--against", p1, *limit)
            sdq("unpack", q, "-o", u, "--dtype", out_dtype.lower())
            info = compare(orig, orig_meta, q, u, label, out_dtype)
            enc = {t["name"]: t["encoding"] for t in info["tensors"]}
            if "rows" not in extra:
                check(enc["head.weight"] == "raw", f"{label}: d = 5 stays raw")
            check(enc["steps"] == "raw" and enc["scale"] == "raw", f"{label}: non-matrices raw")
            check(enc["lin.bias"] == ("bias-of" if "--bias" in extra else "raw"), f"{label}: bias")
            if out_dtype == "F16":
                loaded = load_file(u)
                check(loaded["lin.weight"].dtype == np.float16, f"{label}: numpy sees float16")
                check(loaded["steps"].tolist() == [3, -4, 2**40], f"{label}: int64 values")

        # 2. BF16 tensors written by hand (numpy has no bfloat16).
        w = (rng.standard_normal((48, 33)) * 0.05).astype(np.float32)
        hand = [
            ("bf.bias", "BF16", [48], bf16_bytes(rng.standard_normal(48))),
            ("bf.weight", "BF16", [48, 33], bf16_bytes(w)),
            ("f.weight", "F32", [16, 3], (rng.standard_normal((16, 3)) * 0.1).astype("<f4").tobytes()),
        ]
        p2 = os.path.join(tmp, "bf16.safetensors")
        write_by_hand(p2, hand, {"dtype": "bf16"})
        q2 = os.path.join(tmp, "bf16.sdq")
        u2 = os.path.join(tmp, "bf16.unpacked.safetensors")
        sdq("pack", p2, "-o", q2)
        sdq("verify", q2, "--against", p2)
        sdq("unpack", q2, "-o", u2)
        info = compare(hand, {"dtype": "bf16"}, q2, u2, "hand-written BF16")
        check(next(t for t in info["tensors"] if t["name"] == "bf.weight")["dtype"] == "BF16",
              "BF16 recorded as the original dtype")
        u2b = os.path.join(tmp, "bf16.original.safetensors")
        sdq("unpack", q2, "-o", u2b, "--dtype", "original")
        back, _ = read_raw(u2b)
        check([t[1] for t in back] == ["BF16", "BF16", "F32"], "--dtype original restores BF16")

        # 3. A sharded checkpoint with its index.json.
        s1 = {"model.layers.0.weight": (rng.standard_normal((24, 11)) * 0.1).astype(np.float32),
              "model.embed": (rng.standard_normal((7, 24)) * 0.1).astype(np.float32)}
        s2 = {"model.layers.1.weight": (rng.standard_normal((24, 24)) * 0.1).astype(np.float16),
              "model.layers.1.bias": (rng.standard_normal(24) * 0.1).astype(np.float16)}
        names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        save_file(s1, os.path.join(tmp, names[0]), metadata={"format": "pt"})
        save_file(s2, os.path.join(tmp, names[1]), metadata={"format": "pt"})
        index = {"metadata": {"total_size": 1234},
                 "weight_map": {**{k: names[0] for k in s1}, **{k: names[1] for k in s2}}}
        pidx = os.path.join(tmp, "model.safetensors.index.json")
        with open(pidx, "w") as f:
            json.dump(index, f)
        orig3 = read_raw(os.path.join(tmp, names[0]))[0] + read_raw(os.path.join(tmp, names[1]))[0]
        q3 = os.path.join(tmp, "sharded.sdq")
        u3 = os.path.join(tmp, "sharded.unpacked.safetensors")
        sdq("pack", pidx, "-o", q3, "--bias")
        sdq("verify", q3, "--against", pidx)
        sdq("unpack", q3, "-o", u3)
        compare(orig3, {"format": "pt", "total_size": "1234"}, q3, u3, "sharded --bias")
        # Sharded output (unpack --max-shard-size), read with Python's safetensors as
        # transformers reads an index: every tensor in the shard the index names.
        out3 = os.path.join(tmp, "resharded")
        sdq("unpack", q3, "-o", out3, "--max-shard-size", "1500")
        with open(os.path.join(out3, "model.safetensors.index.json")) as f:
            idx = json.load(f)
        total = 0
        for name, shard in idx["weight_map"].items():
            with safe_open(os.path.join(out3, shard), framework="np") as f:
                check(name in f.keys(), f"sharded output: {name} in {shard}")
                total += f.get_tensor(name).nbytes
        check(sorted(idx["weight_map"]) == sorted(t[0] for t in orig3), "sharded output: names")
        check(idx["metadata"]["total_size"] == total, "sharded output: total_size")
        check(len(set(idx["weight_map"].values())) > 1, "sharded output: several shards")

        # 4. Failures are one line with the documented exit codes.
        bad = os.path.join(tmp, "bad.safetensors")
        with open(bad, "wb") as f:
            f.write(b"<html>not a model</html>")
        p = subprocess.run([SDQ, "pack", bad, "-o", os.path.join(tmp, "x.sdq")], capture_output=True)
        check(p.returncode == 3 and p.stderr.decode().count("\n") == 1, "bad input: exit 3, one line")
        p = subprocess.run([SDQ, "info", q3, "--tensor", "nope"], capture_output=True)
        check(p.returncode == 2, "unknown tensor: exit 2")
        # Verification against a different checkpoint fails with exit 1.
        p = subprocess.run([SDQ, "verify", q3, "--against", p1], capture_output=True)
        check(p.returncode == 1, "verify against another model: exit 1")

    print(f"{PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
