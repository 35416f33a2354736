"""Calibration for the quality benchmark (issue 15): data-aware quantization with Gram files.

- calibration_sentences(n): a calibration set disjoint from the evaluation sentences, made
  offline and deterministically: the hand-written sentences.CALIB plus sentences of Python
  standard-library docstrings (DOC_MODULES, members in name order), kept if they have 6-40
  words of plain prose, de-duplicated, minus every evaluation sentence, shuffled with a
  fixed seed; the first n are used. The docstrings come with the Python version, so the
  set is reproducible for a given Python (the report records its version and the set's
  SHA-256).
- collect_transformer / collect_mnist: the Gram matrix mean(x xᵀ) of the input x of every
  linear layer, under its weight's name (models.RECORD hook; the MNIST MLP from its
  training digits), accumulated by sdq.calibration.GramAccumulator (sdq-python's pure-numpy
  module, loaded from the source tree so the benchmark does not need the wheel).
- Gptq: a GPTQ/OPTQ peer (Frantar et al. 2023) in numpy: damping 0.01 · mean diag H,
  the upper Cholesky factor of H⁻¹, natural column order, lazy block updates of 128
  columns; codes are symmetric round-to-nearest in groups of 128 along the input axis with
  an f16 absmax scale per group (exactly schemes.Rtn(b, 128, "absmax"), which is the same
  quantizer without error feedback), charged b bits per weight + 16 bits per group.
- run.py --calibration N: the same-run comparison written to docs/quality/calibration/.

`python3 bench/quality/calib.py` runs selftest() (GPTQ against RTN) and checks the
calibration set.
"""

import hashlib
import importlib
import importlib.util
import inspect
import os
import random
import re
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

import models  # noqa: E402
import schemes  # noqa: E402
import sentences  # noqa: E402


def _load_calibration_module():
    p = os.path.join(ROOT, "sdq-python", "python", "sdq", "calibration.py")
    spec = importlib.util.spec_from_file_location("sdq_calibration_src", p)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


calibration = _load_calibration_module()

# ---------------------------------------------------------------------------------------
# the calibration sentences

DOC_MODULES = [
    "argparse", "ast", "base64", "bisect", "calendar", "cmd", "codecs", "collections",
    "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime", "difflib", "email",
    "enum", "fileinput", "fnmatch", "fractions", "ftplib", "functools", "getopt", "gettext",
    "glob", "gzip", "heapq", "hmac", "html", "http.client", "http.cookiejar", "http.server",
    "imaplib", "inspect", "ipaddress", "json", "locale", "logging", "mailbox", "mimetypes",
    "netrc", "numbers", "optparse", "os", "pathlib", "pdb", "pickle", "pkgutil", "platform",
    "plistlib", "poplib", "pprint", "queue", "quopri", "random", "re", "sched", "secrets",
    "selectors", "shelve", "shlex", "shutil", "smtplib", "socket", "socketserver", "statistics",
    "string", "subprocess", "tarfile", "tempfile", "textwrap", "threading", "timeit",
    "tokenize", "traceback", "unittest", "urllib.parse", "urllib.request", "uuid", "warnings",
    "wave", "weakref", "xml.dom.minidom", "zipfile",
]
_PROSE = re.compile(r"^[A-Z][A-Za-z0-9 ,;'\-]*[a-z][.]$")  # plain prose: no code, no markup
MAX_CALIB = 1536
SEED = 0


def _docstrings():
    for m in DOC_MODULES:
        try:
            mod = importlib.import_module(m)
        except Exception:  # a module missing from this Python: skipped (the digest shows it)
            continue
        yield mod.__doc__
        for n, o in sorted(vars(mod).items()):
            if n.startswith("_") or getattr(o, "__module__", None) != mod.__name__:
                continue
            yield getattr(o, "__doc__", None)
            if inspect.isclass(o):
                for n2, o2 in sorted(vars(o).items()):
                    if not n2.startswith("_"):
                        yield getattr(o2, "__doc__", None)


def calibration_pool():
    """Every calibration sentence, in the fixed shuffled order (disjoint from EVAL)."""
    seen = set(sentences.EVAL)
    pool = []
    for s in sentences.CALIB:
        if s not in seen:
            seen.add(s)
            pool.append(s)
    for d in _docstrings():
        if not isinstance(d, str):
            continue
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(d.split())):
            if 6 <= len(s.split()) <= 40 and _PROSE.match(s) and s not in seen:
                seen.add(s)
                pool.append(s)
    random.Random(SEED).shuffle(pool)
    pool = pool[:MAX_CALIB]
    assert not set(pool) & set(sentences.EVAL), "calibration and evaluation sets must be disjoint"
    assert len(pool) == MAX_CALIB, f"only {len(pool)} calibration sentences found"
    return pool


def calibration_sentences(n):
    """The first n (<= MAX_CALIB) calibration sentences."""
    if not 1 <= n <= MAX_CALIB:
        raise ValueError(f"the number of calibration sentences must be 1..{MAX_CALIB}, not {n}")
    return calibration_pool()[:n]


def digest(lines):
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------
# Gram collection

def collect_transformer(model, sents, names, batch=16, acc=None, keep=None):
    """GramAccumulator of the inputs of every linear layer whose weight is in `names`, over
    every token of `sents` (run through the float32 model, `batch` sentences at a time).
    keep: optional dict, filled with name -> list of the input arrays (for the held-out
    output error; arrays shared between q, k and v are stored once)."""
    acc = acc or calibration.GramAccumulator()
    names = set(names)

    def record(k, x):
        if k in names:
            acc.update(k, x)
            if keep is not None:
                keep.setdefault(k, []).append(x)

    models.RECORD = record
    try:
        for a in range(0, len(sents), batch):
            model.embed(sents[a:a + batch])
    finally:
        models.RECORD = None
    return acc


def collect_mnist(W, X, names):
    """GramAccumulator of the MNIST MLP's layer inputs (forward as mnist_mlp.forward)."""
    acc = calibration.GramAccumulator()
    h = X
    ks = sorted(W)
    for i, k in enumerate(ks):
        if k in names:
            acc.update(k, h)
        h = h @ W[k].T
        if i < len(ks) - 1:
            h = np.maximum(h, 0)
    return acc


def mnist_inputs(W, X, names):
    """name -> [input array] of the MNIST MLP on X (for the held-out output error)."""
    out = {}
    h = X
    ks = sorted(W)
    for i, k in enumerate(ks):
        if k in names:
            out[k] = [h]
        h = h @ W[k].T
        if i < len(ks) - 1:
            h = np.maximum(h, 0)
    return out


def output_error(W, Wq, xs):
    """‖(W − W̃) Xᵀ‖_F / ‖W Xᵀ‖_F over the stacked inputs xs of the layer."""
    X = np.concatenate(xs).astype(np.float32)
    D = (W.astype(np.float32) - Wq.astype(np.float32))
    return float(np.linalg.norm(X @ D.T) / np.linalg.norm(X @ W.astype(np.float32).T))


def gram_error(W, Wq, H):
    """sqrt(tr(ΔW H ΔWᵀ) / tr(W H Wᵀ)), ΔW = W − W̃: the output error on the calibration
    inputs themselves (what GPTQ minimises), from the Gram matrix H = mean x xᵀ."""
    W = W.astype(np.float32)
    D = W - Wq.astype(np.float32)
    H = H.astype(np.float32)
    return float(np.sqrt(max(np.sum((D @ H) * D), 0.0) / np.sum((W @ H) * W)))


# ---------------------------------------------------------------------------------------
# the GPTQ peer

def _f16(x):
    return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float64)


def hinv_factor(H, damp=0.01):
    """The upper Cholesky factor U (Uᵀ U = H⁻¹) of the damped Gram matrix, as GPTQ uses it:
    an input that is always 0 gets H_ii = 1 (no error feedback through it), then
    λ = damp · mean diag H is added to the diagonal."""
    H = np.array(H, dtype=np.float64)
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    H[np.diag_indices(len(H))] += damp * np.mean(np.diag(H))
    return np.linalg.cholesky(np.linalg.inv(H)).T


def gptq(W, H, bits, group=128, damp=0.01, Hinv=None):
    """GPTQ (OPTQ) of W [out, in] against H [in, in] (mean x xᵀ): symmetric RTN codes,
    levels -(2^(b-1)-1)..2^(b-1)-1, one f16 absmax scale per `group` columns of a row taken
    from the error-updated weights when the group starts; lazy updates in blocks of `group`
    columns. Hinv: hinv_factor(H, damp) if already computed. Returns the dequantized W̃
    (float64)."""
    W = np.array(W, dtype=np.float64)
    n = W.shape[1]
    if Hinv is None:
        if H.shape != (n, n):
            raise ValueError(f"Gram shape {H.shape} does not match the weight's in = {n}")
        Hinv = hinv_factor(H, damp)
    qmax = 2 ** (bits - 1) - 1
    Q = np.zeros_like(W)
    for i1 in range(0, n, group):
        i2 = min(i1 + group, n)
        W1 = W[:, i1:i2].copy()
        E1 = np.zeros_like(W1)
        U1 = Hinv[i1:i2, i1:i2]
        s = _f16(np.abs(W1).max(1) / qmax)  # the block is the group: scale from updated W
        s[s == 0] = 1.0
        for i in range(i2 - i1):
            w = W1[:, i]
            q = np.clip(np.rint(w / s), -qmax, qmax) * s
            Q[:, i1 + i] = q
            e = (w - q) / U1[i, i]
            W1[:, i:] -= np.outer(e, U1[i, i:])
            E1[:, i] = e
        W[:, i2:] -= E1 @ Hinv[i1:i2, i2:]
    return Q


class Gptq(schemes.Scheme):
    """GPTQ (numpy, see gptq()) with groups of 128 along the input axis and f16 absmax
    scales; tensors without a Gram matrix (embeddings, pooler) get the same RTN without
    error feedback. Charged as Rtn(b, 128): b bits per weight + 16 per group (padding of a
    partial group charged)."""

    # name -> (Gram file, hinv_factor): the factor depends on H only, so the configurations
    # at other bit widths reuse it (it is most of GPTQ's time on wide layers)
    _factors = {}

    def __init__(self, bits, grams, group=128):
        self.bits = bits
        self.group = group
        self.grams = grams
        self.name = f"gptq-g{group}-b{bits}"
        self.label = f"GPTQ g{group} absmax {bits}b"
        self.family = f"gptq-g{group}"
        self._rtn = schemes.Rtn(bits, group, "absmax")

    def tensor(self, W, name, info):
        Wt, bits = self._rtn.tensor(W, name, info)
        if name in self.grams:
            key = (getattr(self.grams, "path", id(self.grams)), name)
            if key not in Gptq._factors:
                Gptq._factors = {k: v for k, v in Gptq._factors.items() if k[0] == key[0]}
                Gptq._factors[key] = hinv_factor(self.grams[name])
            Wt = gptq(W, None, self.bits, self.group, Hinv=Gptq._factors[key])
            Wt = Wt.astype(np.float32)
        else:
            info["data-free"] = info.get("data-free", 0) + 1
        return Wt, bits


def selftest():
    """Checks of the GPTQ peer that could fail: with H ∝ I it is exactly the RTN peer, and
    on correlated inputs it lowers the output error ‖(W − W̃)Xᵀ‖ below RTN's."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((48, 300)).astype(np.float32)
    rtn, _ = schemes.Rtn(4, 128, "absmax").tensor(W, "w", {})
    g = gptq(W, 3.0 * np.eye(300), 4)
    assert np.array_equal(g.astype(np.float32), rtn), "GPTQ with H = cI must equal RTN"
    X = rng.standard_normal((2000, 40)) @ rng.standard_normal((40, 300))  # rank-40 inputs
    X += 0.05 * rng.standard_normal(X.shape)
    H = X.T @ X / len(X)
    g = gptq(W, H, 4)
    e_g = np.linalg.norm(X @ (W - g).T)
    e_r = np.linalg.norm(X @ (W - rtn).T)
    assert e_g < 0.7 * e_r, (e_g, e_r)
    print(f"selftest ok: GPTQ(H=cI) == RTN; output error GPTQ/RTN = {e_g / e_r:.3f} on "
          f"rank-40 inputs")


# ---------------------------------------------------------------------------------------
# sdq configurations

CAL_B = [3, 4, 5, 8]


def cli_has_calibration(binary):
    r = subprocess.run([binary, "pack", "--help"], capture_output=True, text=True)
    return "--calibration" in r.stdout


def sdq_pair(B, binary, gram_path):
    """The data-free and the calibrated sdq configuration at B stored bits per weight."""
    free = schemes.Sdq(f"sdq-pcm-B{B}", ["--scheme", "pcm", "--bits-per-weight", str(B)], B,
                       binary)
    cal = None
    if gram_path is not None:
        cal = schemes.Sdq(f"sdq-cal-B{B}", ["--bits-per-weight", str(B), "--calibration",
                                            gram_path], B, binary)
        cal.label = f"sdq --bits-per-weight {B} --calibration GRAM"
        cal.family = "sdq-cal"
    return free, cal


if __name__ == "__main__":
    selftest()
    pool = calibration_pool()
    print(f"{len(pool)} calibration sentences (SHA-256 {digest(pool)}), disjoint from the "
          f"{len(sentences.EVAL)} evaluation sentences")
