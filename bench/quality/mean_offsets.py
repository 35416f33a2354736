#!/usr/bin/env python3
"""Where EfficientNet-Lite0's output error comes from (docs/quality/unseen.md): how much of each
convolution's output error is the product of its weight error with its inputs' per-channel means,
and what the model would keep if those offsets were corrected with the means of the evaluation
images themselves (an oracle: a data-free coder cannot know them).

    python3 bench/quality/unseen.py --models effl0 --merge   # writes the decoded files first
    python3 bench/quality/mean_offsets.py [default B4]

For a convolution y = W * x whose input channel c has mean mu_c (after ReLU6 every channel is
nonnegative, and the means differ from channel to channel), the error (W~ - W) * x carries
b_o = sum_c mu_c * (sum of row o's errors over window c): the same offset at every pixel of every
image, which zero-sum rounding cancels only where all mu_c are equal. The oracle adds b_o to the
following BatchNorm's running mean, which removes exactly that offset and nothing else.
"""

import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import unseen  # noqa: E402


def main():
    tags = sys.argv[1:] or ["default", "B4"]
    model = unseen.EffLite0()
    base = model.bytes()
    g = onnx.load_from_string(base)
    convs = [(nd.input[0], nd.input[1], nd.output[0]) for nd in g.graph.node if nd.op_type == "Conv"]
    bn_mean = {nd.input[0]: nd.input[3] for nd in g.graph.node if nd.op_type == "BatchNormalization"}
    w = {t.name: numpy_helper.to_array(t) for t in g.graph.initializer}
    probe = onnx.load_from_string(base)
    for i, _, _ in convs:
        probe.graph.output.append(helper.make_tensor_value_info(i, onnx.TensorProto.FLOAT, None))
    s = unseen.session(probe.SerializeToString())
    names = [o.name for o in s.get_outputs()]
    mu, sq, inputs = {}, {}, {}
    for x in model.inp:
        r = dict(zip(names, s.run(None, {"input": x})))
        for i, _, _ in convs:
            mu[i] = mu.get(i, 0) + r[i].mean(axis=(0, 2, 3)) / len(model.inp)
            sq[i] = sq.get(i, 0) + (r[i] ** 2).mean(axis=(0, 2, 3)) / len(model.inp)
            inputs.setdefault(i, []).append(r[i])
    ref = model.run(unseen.session(base))
    for tag in tags:
        dec = load_file(os.path.join(unseen.CACHE, "work", f"effl0-F32-{tag}.un.safetensors"))
        print(f"== effl0 F32 {tag}: 1x1 convolutions, relative output error per output channel (median), "
              "and the part of it that is the offset from the input means")
        fixed = dict(dec)
        for i, name, o in convs:
            W = w[name].astype(np.float64)
            E = dec[name].reshape(W.shape).astype(np.float64) - W
            b = E.sum(axis=(1, 2, 3)) * mu[i] if W.shape[1] == 1 else np.einsum("oikl,i->o", E, mu[i])
            fixed[bn_mean[o]] = (dec[bn_mean[o]] + b).astype(np.float32)
            if W.shape[2:] == (1, 1) and W.shape[1] > 1:
                X = np.concatenate([a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1]) for a in inputs[i]]).astype(np.float64)
                W2, E2 = W[:, :, 0, 0], E[:, :, 0, 0]
                sig = (X @ W2.T).std(0)
                total = np.sqrt(((X @ E2.T) ** 2).mean(0)) / sig
                offset = np.abs(E2 @ mu[i]) / sig
                share = (mu[i] ** 2).sum() / sq[i].sum()
                print(f"  {name:36s} input means {share:4.0%} of the input energy; output error {np.median(total):.3f}, "
                      f"of it offset {np.median(offset):.3f}")
        for label, d in (("decoded", dec), ("decoded, offsets corrected (oracle)", fixed)):
            r = model.compare(ref, model.run(unseen.session(unseen.put_back(base, d))))
            print(f"  {label:36s} output cosine min {r['cos_min']:.4f} mean {r['cos_mean']:.4f}, top-1 agreement {r['agree']:.3f}")


if __name__ == "__main__":
    main()
