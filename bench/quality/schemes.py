"""Quantization schemes for the quality benchmark: sdq (the real CLI) and its peers.

Which tensors are quantized (the same rule for every scheme): every floating-point tensor
of rank 2 whose two dimensions are both >= 16 (select()). Everything else (LayerNorm
weights and biases, biases, small tables such as MPNet's 32x12 relative-attention-bias
table or BERT's 2x384 token-type table) stays float32 for every scheme.

Blocks run along the input axis: the rows of W[out, in], as GGUF stores them.

Every scheme returns, for the selected tensors, the decoded tensors and the bits it is
charged (see each class). Bits per weight = charged bits / number of quantized weights.
"""

import json
import os
import subprocess
import time

import numpy as np

import gguf
import gguf.quants

T = gguf.GGMLQuantizationType


def select(weights):
    """Names of the tensors every scheme quantizes."""
    out = []
    for k, v in weights.items():
        if v.dtype.kind == "f" and v.ndim == 2 and min(v.shape) >= 16:
            out.append(k)
    return out


def _pad_rows(W, blck):
    """Zero-pads the rows of W to a multiple of blck (the padded blocks are charged)."""
    n = W.shape[1]
    m = -(-n // blck) * blck
    if m == n:
        return W, n
    P = np.zeros((W.shape[0], m), dtype=np.float32)
    P[:, :n] = W
    return P, n


class Scheme:
    family = "?"
    sdq = False
    B = None  # target bits per weight for the verdict table (sdq only)

    def run(self, weights, names, workdir):
        """Returns (decoded dict name->array, charged bits, info dict)."""
        out = {}
        bits = 0.0
        info = {}
        for k in names:
            Wt, b = self.tensor(weights[k].astype(np.float32), k, info)
            out[k] = Wt.astype(np.float32)
            bits += b
        return out, bits, info


class Gguf(Scheme):
    """A llama.cpp type. Legacy types through the gguf package, k-/i-quants through
    llama.cpp's own C code (ggml_c). A row length that is not a multiple of a 256-block
    type's block falls back as llama-quantize does (tensor_type_fallback); a row length
    that is not a multiple of 32 (the MNIST MLP only) is zero-padded, and the padding
    is charged. Charged bits: the type's bytes per block, per tensor (no file header)."""

    family = "gguf"

    def __init__(self, qtype, ggml=None):
        self.qtype = qtype
        self.name = qtype.name
        self.ggml = ggml
        self.label = f"gguf {qtype.name}"

    def tensor(self, W, name, info):
        from ggml_c import FALLBACK

        t = self.qtype
        if W.shape[1] % gguf.GGML_QUANT_SIZES[t][0] != 0 and t in FALLBACK:
            t = FALLBACK[t]
            info.setdefault("fallback", {}).setdefault(t.name, 0)
            info["fallback"][t.name] += 1
        blck, bsize = gguf.GGML_QUANT_SIZES[t]
        P, n = _pad_rows(W, blck)
        if n != P.shape[1]:
            info["padded"] = info.get("padded", 0) + 1
        im = self.importance(name, n, P.shape[1])
        if im is None and t in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.MXFP4):
            q = gguf.quants.quantize(P, t)
            Wt = gguf.quants.dequantize(q, t)
            nbytes = q.nbytes
        else:
            Wt, nbytes = self.ggml.roundtrip(P, t, imatrix=im)
        return Wt[:, :n], 8.0 * nbytes

    def importance(self, name, n, padded):
        """The importance matrix of tensor `name` (n inputs, padded to `padded` columns), or
        None: quantized without one."""
        return None


class GgufImatrix(Gguf):
    """A llama.cpp type quantized with an importance matrix, as `llama-quantize --imatrix`:
    llama.cpp's own quantize_<type>(..., imatrix) (through ggml_c, legacy types included) with
    imatrix = diag(H), the mean square of each input over the calibration tokens (what
    llama-imatrix collects), taken from the same Gram file sdq reads. Tensors the Gram file
    does not cover are quantized without one; zero-padded columns get the mean importance."""

    family = "gguf-imatrix"

    def __init__(self, qtype, ggml, grams):
        super().__init__(qtype, ggml)
        self.grams = grams
        self.name = qtype.name + "-imatrix"
        self.label = f"gguf {qtype.name} --imatrix"

    def importance(self, name, n, padded):
        if name not in self.grams:
            return None
        d = np.diagonal(self.grams[name]).astype(np.float64)
        if d.shape[0] != n:
            return None
        im = np.full(padded, d.mean())
        im[:n] = d
        return im


def _f16(x):
    return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


class Rtn(Scheme):
    """Symmetric round-to-nearest, levels -(2^(b-1)-1)..2^(b-1)-1, one f16 scale per group
    of g weights along a row (g=None: one scale per row). scale="absmax": s = max|w|/qmax;
    scale="mse": s = a*max|w|/qmax with a from a grid 0.50..1.00 (step 0.05) chosen per
    group for the smallest squared error. Charged: b bits per weight + 16 bits per group
    (zero padding of a partial last group is charged too)."""

    family = "rtn"
    ALPHAS = np.arange(0.5, 1.0001, 0.05)

    def __init__(self, bits, group=None, scale="absmax"):
        self.bits = bits
        self.group = group
        self.scale = scale
        g = f"g{group}" if group else "row"
        self.name = f"rtn-{g}-{scale}-b{bits}"
        self.label = f"RTN {g} {scale} {bits}b"
        self.family = "rtn-row" if group is None else f"rtn-g{group}-{scale}"

    def tensor(self, W, name, info):
        g = self.group or W.shape[1]
        P, n = _pad_rows(W, g)
        G = P.reshape(-1, g)
        qmax = 2 ** (self.bits - 1) - 1
        amax = np.abs(G).max(1, keepdims=True)
        out = np.empty_like(G)
        CH = max(1, (1 << 20) // g)
        for a in range(0, G.shape[0], CH):
            x = G[a:a + CH]
            m = amax[a:a + CH]
            if self.scale == "absmax":
                s = _f16(m / qmax)
                s[s == 0] = 1.0
                out[a:a + CH] = np.clip(np.rint(x / s), -qmax, qmax) * s
            else:
                best = None
                for al in self.ALPHAS:
                    s = _f16(al * m / qmax)
                    s[s == 0] = 1.0
                    y = np.clip(np.rint(x / s), -qmax, qmax) * s
                    e = ((y - x) ** 2).sum(1)
                    if best is None:
                        best, be = y, e
                    else:
                        better = e < be
                        best[better] = y[better]
                        be = np.minimum(e, be)
                out[a:a + CH] = best
        Wt = out.reshape(P.shape)[:, :n]
        return Wt, float(self.bits) * P.size + 16.0 * G.shape[0]


class IdealEntropyRtn(Scheme):
    """IDEAL REFERENCE, NOT A REAL FILE: uniform rounding of each row with one f16 step
    per row, D = f16(rms(row) * 2^(2.05 - b)) (about b bits per weight for Gaussian rows),
    no clipping; charged the order-0 empirical entropy of the tensor's integer codes
    (an ideal entropy coder, no code table) + 16 bits per row."""

    family = "ideal-ec-rtn"

    def __init__(self, bits):
        self.bits = bits
        self.name = f"ideal-ec-rtn-{bits}"
        self.label = f"ideal entropy-coded RTN ~{bits}b (reference)"

    def tensor(self, W, name, info):
        rms = np.sqrt((W.astype(np.float64) ** 2).mean(1, keepdims=True))
        D = _f16(rms * 2.0 ** (2.05 - self.bits))
        D[D == 0] = 1.0
        q = np.rint(W / D).astype(np.int64)
        _, counts = np.unique(q, return_counts=True)
        p = counts / q.size
        H = float(-(p * np.log2(p)).sum())
        return q * D, H * q.size + 16.0 * W.shape[0]


class Sdq(Scheme):
    """The real sdq CLI: pack the model's safetensors file with the given arguments
    (--include NAME for every selected tensor, so exactly the selected tensors are
    quantized), unpack, load. Charged bits: whole .sdq file size minus the raw
    (unquantized) tensors' data bytes; so every header, per-tensor metadata record, scale
    and step is charged to the quantized weights. The whole-file bits per quantized weight
    (raw tensors included) are reported too."""

    family = "sdq"
    sdq = True

    def __init__(self, name, args, B=None, binary=None):
        self.name = name
        self.args = list(args)
        self.B = B
        self.binary = binary
        self.label = "sdq " + (" ".join(args) if args else "(default)")

    def run(self, weights, names, workdir, src=None):
        from safetensors.numpy import load_file, save_file

        if src is None:
            src = os.path.join(workdir, "model.safetensors")
            if not os.path.exists(src):
                save_file(weights, src)
        out = os.path.join(workdir, self.name + ".sdq")
        back = os.path.join(workdir, self.name + ".back.safetensors")
        inc = []
        for k in names:
            inc += ["--include", k]
        t0 = time.time()
        subprocess.run([self.binary, "pack", src, "-o", out, "-q"] + self.args + inc,
                       check=True, stdout=subprocess.DEVNULL)
        t1 = time.time()
        subprocess.run([self.binary, "unpack", out, "-o", back], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t2 = time.time()
        js = json.loads(subprocess.run([self.binary, "info", out, "--json"], check=True,
                                       capture_output=True, text=True).stdout)
        quantized = sorted(t["name"] for t in js["tensors"] if t["encoding"] != "raw")
        if quantized != sorted(names):
            raise RuntimeError(f"{self.name}: sdq quantized {len(quantized)} tensors, "
                               f"the rule selects {len(names)}: "
                               f"{sorted(set(quantized) ^ set(names))[:5]}")
        file_bytes = os.path.getsize(out)
        assert file_bytes == js["file_bytes"]
        raw_bytes = sum(weights[t["name"]].nbytes for t in js["tensors"] if t["encoding"] == "raw")
        dec = load_file(back)
        n_q = sum(weights[k].size for k in names)
        info = {
            "pack_s": t1 - t0, "unpack_s": t2 - t1, "file_bytes": file_bytes,
            "raw_bytes": raw_bytes,
            "whole_file_bpw": 8.0 * file_bytes / n_q,
        }
        os.remove(back)
        os.remove(out)
        return {k: dec[k].astype(np.float32) for k in names}, 8.0 * (file_bytes - raw_bytes), info


def peers(ggml, quick=False):
    """Every peer scheme of the benchmark, in table order."""
    out = []
    legacy = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.MXFP4]
    kq = [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.IQ4_XS]
    out += [Gguf(t, ggml) for t in legacy + kq]
    bits = [3, 4, 5, 6, 8]
    groups = [32, 128] if quick else [32, 64, 128]
    for g in groups:
        for sc in ("absmax", "mse"):
            out += [Rtn(b, g, sc) for b in bits]
    out += [Rtn(b, None, "absmax") for b in bits]
    out += [IdealEntropyRtn(b) for b in bits]
    return out
