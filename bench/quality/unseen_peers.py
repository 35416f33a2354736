#!/usr/bin/env python3
"""sdq against llama.cpp's quantizers on the unseen checkpoints of docs/quality/unseen.md, in one
run: the same float tensors, the same inputs, the same end-to-end metric.

    python3 bench/quality/unseen_peers.py [--models effl0,yolo8n,...] [--out FILE]

For each model (F32): sdq at its defaults and at `--bits-per-weight 4 / 5 / 6 / 8` (the last
three with no whole-file cap, `--file-bits-per-weight 99`), then llama.cpp's Q8_0, Q6_K, Q5_K,
Q5_0, Q4_K, Q4_0 and IQ4_XS through its own C code (bench/quality/ggml_c.py) on exactly the
tensors sdq quantizes by default (rank >= 2, rows of at least 16 values), with llama-quantize's
fallback where a row's length is not a multiple of the type's block (Q6_K -> Q8_0, Q5_K -> Q5_1,
Q4_K -> Q5_0, IQ4_XS -> IQ4_NL), and F32 where no type fits (a row of 40 or 80 values);
everything else stays F32 as in the sdq file. Bits per float weight: sdq's whole file; the
peers' tensor bytes only (no header or alignment: a lower bound on a GGUF file), and beside it
what they would take with the tensors no type fits stored F16 instead (llama.cpp's converter
writes F16 by default). Output: a table per model (docs/quality/unseen_peers.txt by default).
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ggml_c  # noqa: E402
import gguf  # noqa: E402
import sdq_cli  # noqa: E402
import unseen  # noqa: E402

T = gguf.GGMLQuantizationType
PEERS = [T.Q8_0, T.Q6_K, T.Q5_K, T.Q5_0, T.Q4_K, T.Q4_0, T.IQ4_XS]
SDQ_SETTINGS = ["", "--bits-per-weight 4", "--bits-per-weight 5 --file-bits-per-weight 99",
                "--bits-per-weight 6 --file-bits-per-weight 99", "--bits-per-weight 8 --file-bits-per-weight 99"]


def peer(G, tensors, qt):
    """llama.cpp's qt (or its fallback) on every tensor sdq quantizes by default; (decoded, bits,
    how many of those tensors stayed F32, their elements)."""
    out, bits, f32, f32_elems = {}, 0, 0, 0
    for k, v in tensors.items():
        w = v.reshape(v.shape[0], -1) if v.ndim >= 2 else None
        if w is not None and w.shape[1] >= 16:
            t = qt
            while w.shape[1] % gguf.GGML_QUANT_SIZES[t][0] and t in ggml_c.FALLBACK:
                t = ggml_c.FALLBACK[t]
            if w.shape[1] % gguf.GGML_QUANT_SIZES[t][0] == 0:
                d, nb = G.roundtrip(w, t)
                out[k], bits = d.reshape(v.shape), bits + nb * 8
                continue
            f32, f32_elems = f32 + 1, f32_elems + v.size
        out[k], bits = v, bits + v.size * 32
    return out, bits, f32, f32_elems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="effl0,piper,yolo8n,ppdet,pprec,ppcls,dddddet,dddd,magika,silero")
    ap.add_argument("--out", default=os.path.join(unseen.ROOT, "docs", "quality", "unseen_peers.txt"))
    a = ap.parse_args()
    t0 = time.time()
    G = ggml_c.GgmlQuants(os.path.join(unseen.ROOT, "bench", "quality", "cache", "ggml"))
    version = subprocess.run([unseen.SDQ, "--version"], capture_output=True, text=True).stdout.strip()
    lines = [f"python3 bench/quality/unseen_peers.py --models {a.models}  ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"{version}; llama.cpp's ggml-quants.c from llama-cpp-python {ggml_c.LLAMA_CPP_PYTHON})", ""]
    for key in a.models.split(","):
        model = unseen.MODELS[key]()
        base = model.bytes()
        m = onnx.load_from_string(base)
        ts = {k: numpy_helper.to_array(t) for k, t in unseen.float_tensors(m.graph).items()}
        ts = {k: v.astype(np.float32) for k, v in ts.items()}
        nf = sum(v.size for v in ts.values())
        ref = model.run(unseen.session(base))

        def judge(dec):
            return model.compare(ref, model.run(unseen.session(unseen.put_back(base, dec))))

        lines.append(f"== {key}: {model.name}, {nf} float weights (F32); metric: {model.task}")
        lines.append(f"   {'scheme':48s} {'bits/float weight':>17s}  {'output cos min / mean':>21s}  task agreement")
        ours, first_name = [], None
        for s in SDQ_SETTINGS:
            dec, size, info, verify = sdq_cli.roundtrip(unseen.SDQ, ts, s.split())
            r = judge(dec)
            label = "sdq " + (s.replace(" --file-bits-per-weight 99", " (no file cap)") or "default")
            first_name = first_name or r["agree_name"]
            lines.append(f"   {label:48s} {size * 8 / nf:17.2f}  {r['cos_min']:9.4f} / {r['cos_mean']:.4f}  {r['agree']:.3f}"
                         + ("" if r["agree_name"] == first_name else f" ({r['agree_name']})")
                         + ("" if verify == 0 else f"  (verify exit {verify})"))
            ours.append((size * 8 / nf, r["cos_mean"], label))
            print(lines[-1], flush=True)
        verdict = []
        for qt in PEERS:
            dec, bits, f32, f32_elems = peer(G, ts, qt)
            r = judge(dec)
            label = f"llama.cpp {qt.name}" + (f" ({f32} tensors F32: no type fits)" if f32 else "")
            lines.append(f"   {label:48s} {bits / nf:17.2f}  {r['cos_min']:9.4f} / {r['cos_mean']:.4f}  {r['agree']:.3f}"
                         + ("" if r["agree_name"] == first_name else f" ({r['agree_name']})")
                         + (f"  ({(bits - 16 * f32_elems) / nf:.2f} bits if those were F16)" if f32 else ""))
            print(lines[-1], flush=True)
            # the verdict: an sdq row with no more bits (against the peer's F16 count) and at
            # least its mean output cosine
            fewest = (bits - 16 * f32_elems) / nf
            best = max((o for o in ours if o[0] <= fewest), key=lambda o: o[1], default=None)
            verdict.append(f"{qt.name}: " + ("no sdq row at as few bits" if best is None else
                                             f"{best[2]} {best[1]:.4f} at {best[0]:.2f} bits" + (" >=" if best[1] >= r["cos_mean"] else " < **")
                                             + f" {r['cos_mean']:.4f} at {fewest:.2f}"))
        lines.append(f"   (task agreement: {first_name})")
        lines.append("   at no more bits, best sdq row against each type (mean cosine): " + "; ".join(verdict))
        lines.append("")
    lines.append(f"{round(time.time() - t0)} s")
    open(a.out, "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
