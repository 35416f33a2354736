"""The two MNIST networks of the reproduction (Section 6 of the paper, bias-free, ReLU ρ, like
the crate's examples/mnist), trained in numpy on the 5,000 real MNIST digits of
data/mnist_5k.csv.gz (784 pixels then the label per row): 4000 train / 1000 test after a
seeded shuffle. Fixed seeds, a few seconds each.

- the MLP 784-200-200-10 (`train`): fc1, fc2, fc3;
- the residual network 784 → 200 → (x + V·ρ(W·x)) ×2 → 10 (`train_resnet`): fc1, block1.w,
  block1.v, block2.w, block2.v, fc3 ([out, in], as examples/mnist names them); ρ after fc1
  and after the blocks. `forward` tells them apart by their tensor names."""

import gzip
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "data", "mnist_5k.csv.gz")


def load(path=DATA, seed=0):
    with gzip.open(path, "rt") as f:
        a = np.loadtxt(f, delimiter=",", dtype=np.float32)
    X = a[:, :784] / 255.0
    y = a[:, 784].astype(np.int64)
    p = np.random.default_rng(seed).permutation(len(y))
    X, y = X[p], y[p]
    return (X[:4000], y[:4000]), (X[4000:5000], y[4000:5000])


def forward(W, X):
    if "block1.w.weight" in W:
        return forward_resnet(W, X)[-1]
    h = X
    names = sorted(W)  # fc1, fc2, fc3
    for i, k in enumerate(names):
        h = h @ W[k].T
        if i < len(names) - 1:
            h = np.maximum(h, 0)
    return h


def accuracy(W, X, y):
    return float((forward(W, X).argmax(1) == y).mean())


def wrong(W, X, y):
    """The indices of the test digits W misclassifies, as a space-separated string (for the
    paired comparison of two quantizations on the same digits)."""
    return " ".join(str(i) for i in np.flatnonzero(forward(W, X).argmax(1) != y))


def train(train_set, hidden=(200, 200), epochs=12, batch=64, lr=1e-3, seed=0):
    """Adam on cross-entropy; returns {'fc1.weight': [200,784], ...} (float32, [out, in])."""
    X, y = train_set
    rng = np.random.default_rng(seed)
    sizes = [784] + list(hidden) + [10]
    W = [rng.standard_normal((o, i)).astype(np.float32) * np.float32(np.sqrt(2.0 / i))
         for i, o in zip(sizes[:-1], sizes[1:])]
    m = [np.zeros_like(w) for w in W]
    v = [np.zeros_like(w) for w in W]
    t = 0
    for _ in range(epochs):
        p = rng.permutation(len(y))
        for a in range(0, len(y), batch):
            idx = p[a:a + batch]
            xs, ys = X[idx], y[idx]
            acts = [xs]
            h = xs
            for i, w in enumerate(W):
                h = h @ w.T
                if i < len(W) - 1:
                    h = np.maximum(h, 0)
                acts.append(h)
            z = acts[-1] - acts[-1].max(1, keepdims=True)
            pr = np.exp(z)
            pr /= pr.sum(1, keepdims=True)
            g = pr
            g[np.arange(len(ys)), ys] -= 1
            g /= len(ys)
            t += 1
            G = {}
            for i in range(len(W) - 1, -1, -1):
                G[i] = g.T @ acts[i]
                if i > 0:
                    g = (g @ W[i]) * (acts[i] > 0)
            adam_step(W, G, m, v, t, lr)
    return {f"fc{i + 1}.weight": np.ascontiguousarray(w) for i, w in enumerate(W)}


def adam_step(W, G, m, v, t, lr, b1=0.9, b2=0.999):
    """One Adam update of W[k] by its gradient G[k] for every k of G (W, m, v: lists or dicts
    with the same keys; t: the step count, from 1)."""
    for k, gw in G.items():
        m[k] = b1 * m[k] + (1 - b1) * gw
        v[k] = b2 * v[k] + (1 - b2) * gw * gw
        mh = m[k] / (1 - b1 ** t)
        vh = v[k] / (1 - b2 ** t)
        W[k] -= (lr * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)


def forward_resnet(W, X):
    """Every activation of the residual network, the logits last."""
    z1 = X @ W["fc1.weight"].T
    h1 = np.maximum(z1, 0)
    acts = [X, z1, h1]
    h = h1
    for b in (1, 2):
        p = h @ W[f"block{b}.w.weight"].T
        r = np.maximum(p, 0)
        h = h + r @ W[f"block{b}.v.weight"].T
        acts += [p, r, h]
    h4 = np.maximum(h, 0)
    return acts + [h4, h4 @ W["fc3.weight"].T]


def resnet_gradients(W, xs, ys):
    """The gradient of the mean cross-entropy over (xs, ys) with respect to every matrix."""
    (a0, z1, h1, p1, r1, h2, p2, r2, h3, h4, out) = forward_resnet(W, xs)
    z = out - out.max(1, keepdims=True)
    pr = np.exp(z)
    pr /= pr.sum(1, keepdims=True)
    g = pr
    g[np.arange(len(ys)), ys] -= 1
    g /= len(ys)
    G = {"fc3.weight": g.T @ h4}
    gh = (g @ W["fc3.weight"]) * (h3 > 0)
    for b, (hin, p, r) in ((2, (h2, p2, r2)), (1, (h1, p1, r1))):
        G[f"block{b}.v.weight"] = gh.T @ r
        gp = (gh @ W[f"block{b}.v.weight"]) * (p > 0)
        G[f"block{b}.w.weight"] = gp.T @ hin
        gh = gh + gp @ W[f"block{b}.w.weight"]
    G["fc1.weight"] = (gh * (z1 > 0)).T @ a0
    return G


def train_resnet(train_set, width=200, epochs=12, batch=64, lr=1e-3, seed=0):
    """Adam on cross-entropy; He-uniform initialisation with the blocks' V scaled by 0.1 (each
    block starts near the identity), as examples/mnist. Returns the six matrices, float32."""
    X, y = train_set
    rng = np.random.default_rng(seed)
    shapes = {"fc1.weight": (width, 784), "block1.w.weight": (width, width),
              "block1.v.weight": (width, width), "block2.w.weight": (width, width),
              "block2.v.weight": (width, width), "fc3.weight": (10, width)}
    W = {}
    for k, (o, i) in shapes.items():
        bound = np.sqrt(6.0 / i) * (0.1 if ".v." in k else 1.0)
        W[k] = rng.uniform(-bound, bound, size=(o, i)).astype(np.float32)
    m = {k: np.zeros_like(w) for k, w in W.items()}
    v = {k: np.zeros_like(w) for k, w in W.items()}
    t = 0
    for _ in range(epochs):
        perm = rng.permutation(len(y))
        for a in range(0, len(y), batch):
            idx = perm[a:a + batch]
            xs, ys = X[idx], y[idx]
            t += 1
            adam_step(W, resnet_gradients(W, xs, ys), m, v, t, lr)
    return {k: np.ascontiguousarray(w) for k, w in W.items()}
