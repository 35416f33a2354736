#!/usr/bin/env python3
"""Lattice steps on a checkpoint with GPT-2's causal-mask buffers (docs/MATH.md §8).

    python3 bench/quality/grid_tensors.py [SDQ_BINARY]      # default target/release/sdq

all-mpnet-base-v2's weights (the dev model, fetched like run.py does) plus twelve buffers
h.{i}.attn.bias [1, 1, 1024, 1024] of 0/1 F32, the causal masks GPT-2's checkpoint ships (one per
layer), packed with the defaults: prints the file's bits per float weight, the masks' relative
error, how many masked (0) entries decode nonzero and kept (1) entries decode to anything but 1,
the masks' decoded values, and the mean / worst sentence-embedding cosine of the encoder (so
that a change to the masks' coding is seen not to cost the other weights). Run it with an older
binary to compare.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import models  # noqa: E402
import sdq_cli  # noqa: E402
import sentences  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))


def main():
    sdq = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "sdq")
    m = models.load("mpnet")
    ref = m.embed(sentences.EVAL)
    W = dict(m.weights)
    mask = np.tril(np.ones((1024, 1024), np.float32)).reshape(1, 1, 1024, 1024)
    names = [f"h.{i}.attn.bias" for i in range(12)]
    for n in names:
        W[n] = mask
    B, size, _, _ = sdq_cli.roundtrip(sdq, W)
    floats = sum(v.size for v in W.values())
    bits = size * 8 / floats
    masked = sum(int(np.count_nonzero(B[n][mask == 0])) for n in names)
    kept = sum(int(np.count_nonzero(B[n][mask == 1] != 1)) for n in names)
    rel = max(float(np.linalg.norm(B[n] - mask) / np.linalg.norm(mask)) for n in names)
    e = m.embed(sentences.EVAL, {k: B[k] for k in m.weights})
    cos = (e * ref).sum(1)
    print(f"{sdq}: whole file {bits:.3f} bits per float weight; masks: largest relative error "
          f"{rel:.3f}, masked entries decoded nonzero {masked} of {12 * int((mask == 0).sum())}, "
          f"kept entries decoded != 1 {kept} of {12 * int((mask == 1).sum())}, values "
          f"{np.unique(B[names[0]])[:6].tolist()}; encoder's sentence cosine mean "
          f"{cos.mean():.4f}, worst {cos.min():.4f}")


if __name__ == "__main__":
    main()
