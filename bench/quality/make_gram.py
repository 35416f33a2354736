#!/usr/bin/env python3
"""Write the Gram file `sdq pack --calibration` reads for a benchmark model, from the first N
calibration sentences of calib.py -- the same file run.py --calibration N builds (for a
by-hand `sdq pack` / `sdq verify` / timing run):

    python3 bench/quality/make_gram.py minilm 128 gram.safetensors --model-dir DIR
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import calib  # noqa: E402
import models  # noqa: E402
import schemes  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("model", choices=["minilm", "mpnet"])
ap.add_argument("n", type=int)
ap.add_argument("out")
ap.add_argument("--model-dir", default=None)
ap.add_argument("--cache", default=models.DEFAULT_CACHE)
a = ap.parse_args()
m = models.load(a.model, a.model_dir, a.cache)
names = schemes.select(m.weights)
acc = calib.collect_transformer(m, calib.calibration_sentences(a.n), names)
acc.save(a.out, metadata={"vectors": str(acc.count(acc.names()[0]))})
print(f"{a.out}: {len(acc.names())} tensors, {acc.count(acc.names()[0])} input vectors; "
      f"model {m.path}")
