"""A 784-200-200-10 ReLU MLP (bias-free, like the crate's examples) trained in numpy on
the 5,000 real MNIST digits of data/mnist_5k.csv.gz (784 pixels then the label per row):
4000 train / 1000 test after a seeded shuffle. Fixed seed, a few seconds."""

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
    b1, b2, t = 0.9, 0.999, 0
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
            for i in range(len(W) - 1, -1, -1):
                gw = g.T @ acts[i]
                if i > 0:
                    g = (g @ W[i]) * (acts[i] > 0)
                m[i] = b1 * m[i] + (1 - b1) * gw
                v[i] = b2 * v[i] + (1 - b2) * gw * gw
                mh = m[i] / (1 - b1 ** t)
                vh = v[i] / (1 - b2 ** t)
                W[i] -= (lr * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)
    return {f"fc{i + 1}.weight": np.ascontiguousarray(w) for i, w in enumerate(W)}
