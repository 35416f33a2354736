#!/usr/bin/env python3
"""A BF16 checkpoint packed with the defaults: the dev sentence encoder cast to BF16.

    python3 bench/quality/bf16.py [mpnet|minilm]      # SDQ=path picks the binary

Casts every tensor of the model (fetched like run.py does) to BF16, writes a safetensors file,
`sdq pack` with no option, `sdq unpack` (the tensors come back as BF16), `sdq verify --against`;
prints the whole file's bits per float weight and the mean / worst sentence-embedding cosine
against the F32 model (and of the BF16 cast alone). Needs ml_dtypes (installed with onnx).
"""
import os
import sys

import ml_dtypes
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import models  # noqa: E402
import sdq_cli  # noqa: E402
import sentences  # noqa: E402

SDQ = os.environ.get("SDQ", os.path.join(os.path.dirname(os.path.dirname(HERE)), "target", "release", "sdq"))
m = models.load(sys.argv[1] if len(sys.argv) > 1 else "mpnet")
ref = m.embed(sentences.EVAL)
W = {k: v.astype(ml_dtypes.bfloat16) for k, v in m.weights.items()}
cast = m.embed(sentences.EVAL, {k: v.astype(np.float32) for k, v in W.items()})
c0 = (cast * ref).sum(1)
B, size, _, verify = sdq_cli.roundtrip(SDQ, W)
dtypes = sorted({str(v.dtype) for v in B.values()})
bits = size * 8 / sum(v.size for v in W.values())
e = m.embed(sentences.EVAL, {k: B[k].astype(np.float32) for k in m.weights})
c = (e * ref).sum(1)
print(f"BF16 cast alone: sentence cosine vs F32 mean {c0.mean():.4f}, worst {c0.min():.4f}")
print(f"sdq pack (defaults) on the BF16 file: {bits:.3f} bits per float weight, decoded as "
      f"{'/'.join(dtypes)}, verify exit {verify}; sentence cosine vs F32 mean "
      f"{c.mean():.4f}, worst {c.min():.4f}; vs the BF16 model mean {(e * cast).sum(1).mean():.4f}")
