#!/usr/bin/env python3
"""Real-model quality benchmark (issue 13): sdq against llama.cpp's types and RTN.

Regenerate docs/quality/ (from the repository root, after `cargo build --release`):

    python3 bench/quality/run.py

Options: --models mpnet,minilm,mnist   --model-dir mpnet=PATH (reuse a downloaded copy)
         --sdq PATH (default target/release/sdq)   --cache DIR   --out DIR   --quick

Calibration comparison (issue 15; docs/quality/calibration.md, CSVs in docs/quality/calibration/):

    python3 bench/quality/run.py --models minilm,mpnet,mnist --calibration 128 --calibration-only
    python3 bench/quality/run.py --models minilm --calibration 512,1536 --calibration-only --calibration-sweep 16,64,128,512,1536 --calibration-extra "identity=--frame-family identity" --calibration-extra "damping0.01=--damping 0.01" --calibration-extra "natural=--feedback-order natural" --calibration-extra-bits 3,4
    python3 bench/quality/run.py --models mpnet --calibration 1536,512 --calibration-bits 3,4,5,8 --calibration-only --calibration-extra "identity=--frame-family identity" --calibration-extra-bits 3,4

(Gram files from N calibration sentences; RTN g128, GPTQ g128, sdq data-free and
`sdq pack --calibration` at B = 3, 4, 5, 8 (--calibration-bits); several N: GPTQ and sdq
--calibration at each, RTN and data-free sdq once; the sweep runs GPTQ and sdq --calibration at
B = 4 for each N on the --sweep-models; --calibration-extra NAME=ARGS adds
`sdq pack --bits-per-weight 4 --calibration GRAM ARGS` on the largest N, e.g. --damping 0.01.
--sdq PATH picks the binary, e.g. one built with --calibration.)

See docs/quality/README.md (written by this script) for what is measured and charged.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the machine is shared: no BLAS threads
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import csv
import datetime
import json
import platform
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

import calib  # noqa: E402
import models  # noqa: E402
import mnist_mlp  # noqa: E402

# The MNIST networks (accuracy is their quality metric): report key -> (CSV model label, trainer)
MNIST_NETS = {"mnist": ("mnist-mlp", mnist_mlp.train),
              "mnist-resnet": ("mnist-resnet", mnist_mlp.train_resnet)}
ALL_MODELS = ("mpnet", "minilm", "mnist", "mnist-resnet")
import schemes  # noqa: E402
import sentences  # noqa: E402
from ggml_c import GgmlQuants  # noqa: E402

# ---------------------------------------------------------------------------------------
# sdq configurations: (name, CLI args, B) -- one line each. B is the bits per weight the
# configuration is judged at in the verdict table (None: not judged). Every configuration
# also gets --include NAME for each tensor of the selection rule (schemes.select).
SD1 = ["--scheme", "first-order"]
R1 = SD1 + ["--axis", "rows", "--redundancy", "1.0001"]  # sigma-delta, rows, N = d + 1
PCM = ["--scheme", "pcm"]  # rounding, rANS-coded, --bits-per-weight = stored bits (rate control)
H1 = ["--frame-family", "harmonic", "--sign-seed", "1"]
SDQ_CONFIGS = [
    # the default (`sdq pack IN -o OUT`): pcm, the whole file at 5.0 bits per float weight
    ("sdq-default", [], 5.0),
    # pcm (main since the pcm merge): --bits-per-weight B is the stored size
    ("sdq-pcm-B3", PCM + ["--bits-per-weight", "3"], None),
    ("sdq-pcm-B4", PCM + ["--bits-per-weight", "4"], 4.0),
    ("sdq-pcm-nearest-B4", PCM + ["--bits-per-weight", "4", "--rounding", "nearest"], 4.0),
    ("sdq-pcm-B4.5", PCM + ["--bits-per-weight", "4.5"], 4.5),
    ("sdq-pcm-B5.5", PCM + ["--bits-per-weight", "5.5"], 5.5),
    ("sdq-pcm-B6", PCM + ["--bits-per-weight", "6"], None),
    ("sdq-pcm-B8", PCM + ["--bits-per-weight", "8"], 8.0),
    ("sdq-pcm-same-bits-B4", PCM + ["--bits-per-weight", "4", "--same-bits"], 4.0),
    ("sdq-pcm-fixed-B4", PCM + ["--bits-per-weight", "4", "--coding", "fixed"], 4.0),
    # fixed-width codes with least-squares steps (clipped; measured errors recorded)
    ("sdq-pcm-fixed-ls-B4", PCM + ["--bits-per-weight", "4", "--coding", "fixed",
                                   "--step-policy", "least-squares"], 4.0),
    ("sdq-pcm-fixed-ls-B5.5", PCM + ["--bits-per-weight", "5.5", "--coding", "fixed",
                                     "--step-policy", "least-squares"], 5.5),
    ("sdq-pcm-g32-B4", PCM + ["--bits-per-weight", "4", "--group", "32"], 4.0),
    ("sdq-pcm-harmonic-signs-B4", PCM + H1 + ["--bits-per-weight", "4"], 4.0),
    ("sdq-pcm-harmonic-signs-B5.5", PCM + H1 + ["--bits-per-weight", "5.5"], 5.5),
    ("sdq-pcm-harmonic-signs-B8", PCM + H1 + ["--bits-per-weight", "8"], 8.0),
    # sigma-delta (first/second order): --bits-per-weight is CODE bits, -K sets the code width
    ("sdq-sd1-columns-B4code", SD1 + ["--axis", "columns"], None),  # the pre-pcm default
    ("sdq-sd1-rows-N=d+1-K2", R1 + ["-K", "2"], None),
    ("sdq-sd1-rows-N=d+1-K8", R1 + ["-K", "8"], None),
    ("sdq-sd1-rows-N=d+1-K16", R1 + ["-K", "16"], None),
    ("sdq-sd1-rows-N=d+1-K32", R1 + ["-K", "32"], None),
    ("sdq-sd1-rows-N=d+1-K32-zstd", R1 + ["-K", "32", "--zstd"], None),
    ("sdq-sd1-rows-N=d+1-K128", R1 + ["-K", "128"], None),
    # second order with a harmonic frame makes N even (rounding down): a little more room
    ("sdq-sd2-rows-K8", ["--scheme", "second-order", "--axis", "rows", "-K", "8",
                         "--redundancy", "1.01"], None),
]
VERDICT_B = [4.0, 5.5, 8.0]
VERDICT_SLACK = 0.55  # a GGUF type is a target at B if it spends <= B + 0.55 bits

KIND_ORDER = ["q", "k", "v", "o", "intermediate", "output", "word_emb", "pos_emb", "pooler",
              "other"]


def spearman(a, b):
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    ra -= ra.mean()
    rb -= rb.mean()
    return float((ra @ rb) / np.sqrt((ra @ ra) * (rb @ rb)))


def tensor_errors(weights, decoded, names):
    return {k: float(np.linalg.norm((weights[k].astype(np.float64) - decoded[k]).ravel())
                     / np.linalg.norm(weights[k].astype(np.float64).ravel())) for k in names}


def kind_means(errs, kind_of):
    per = {}
    for k, e in errs.items():
        per.setdefault(kind_of(k), []).append(e)
    return {kd: float(np.mean(v)) for kd, v in per.items()}


def held_out_error(weights, dec, held):
    """Mean over the layers in `held` of the output error ‖(W − W̃)Xᵀ‖/‖WXᵀ‖ on their
    held-out inputs X (calib.output_error)."""
    return float(np.mean([calib.output_error(weights[k], dec[k], held[k]) for k in held]))


def calib_error(weights, dec, grams):
    """Mean over the layers of the Gram file of calib.gram_error (in-sample output error)."""
    return float(np.mean([calib.gram_error(weights[k], dec[k], grams[k]) for k in grams.names]))


def evaluate_transformer(model, sch, names, E0, iu, S0, workdir, held=None, grams=None):
    n_q = sum(model.weights[k].size for k in names)
    t0 = time.time()
    if sch.sdq:
        dec, bits, info = sch.run(model.weights, names, workdir, src=model.path)
    else:
        dec, bits, info = sch.run(model.weights, names, workdir)
    tq = time.time() - t0
    W = dict(model.weights)
    W.update(dec)
    E1 = model.embed(sentences.EVAL, W)
    cos = np.sum(E0 * E1, 1)
    S1 = E1 @ E1.T
    errs = tensor_errors(model.weights, dec, names)
    lin = [e for k, e in errs.items() if models.tensor_kind(k) in models.LINEAR_KINDS]
    row = {
        "model": model.name, "scheme": sch.name, "family": sch.family, "label": sch.label,
        "B": sch.B if sch.B is not None else "",
        "bpw": bits / n_q,
        "whole_file_bpw": info.get("whole_file_bpw", ""),
        "cos_mean": float(cos.mean()), "cos_min": float(cos.min()),
        "spearman": spearman(S0[iu], S1[iu]),
        "err_linear": float(np.mean(lin)),
        "time_s": tq,
        "pack_s": info.get("pack_s", ""), "unpack_s": info.get("unpack_s", ""),
        "notes": "; ".join(f"{a}: {b}" for a, b in info.items()
                           if a in ("fallback", "padded", "data-free")),
        "git": GIT_AT_START,
    }
    if held is not None:
        row["out_err"] = held_out_error(model.weights, dec, held)
    if grams is not None:
        row["calib_out_err"] = calib_error(model.weights, dec, grams)
    for kd, e in kind_means(errs, models.tensor_kind).items():
        row["err_" + kd] = e
    return row


def evaluate_mnist(W0, test, sch, names, workdir, held=None, grams=None, label="mnist-mlp"):
    n_q = sum(W0[k].size for k in names)
    t0 = time.time()
    if sch.sdq:
        dec, bits, info = sch.run(W0, names, workdir)
    else:
        dec, bits, info = sch.run(W0, names, workdir)
    tq = time.time() - t0
    W = dict(W0)
    W.update(dec)
    errs = tensor_errors(W0, dec, names)
    row = {
        "model": label, "scheme": sch.name, "family": sch.family, "label": sch.label,
        "B": sch.B if sch.B is not None else "", "bpw": bits / n_q,
        "whole_file_bpw": info.get("whole_file_bpw", ""),
        "accuracy": mnist_mlp.accuracy(W, *test),
        "wrong": mnist_mlp.wrong(W, *test),
        "err_linear": float(np.mean(list(errs.values()))), "time_s": tq,
        "pack_s": info.get("pack_s", ""),
        "notes": "; ".join(f"{a}: {b}" for a, b in info.items()
                           if a in ("fallback", "padded", "data-free")),
        "git": GIT_AT_START,
    }
    if held is not None:
        row["out_err"] = held_out_error(W0, dec, held)
    if grams is not None:
        row["calib_out_err"] = calib_error(W0, dec, grams)
    for k, e in errs.items():
        row["err_" + k.removesuffix(".weight")] = e
    return row


def load_meta(out_dir):
    mp = os.path.join(out_dir, "run_meta.json")
    if not os.path.exists(mp):
        return {"runs": []}
    with open(mp) as f:
        m = json.load(f)
    if "runs" not in m:  # the first layout: one run
        m = {"runs": [m]}
    return m


def write_csv(path, rows):
    keys = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------
# verdicts and report (computed from the CSV files only)

def fnum(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


# MNIST accuracy: a lower sdq accuracy still passes when the paired test digits do not show it
# is worse (one-sided exact McNemar test, p >= this).
ACCURACY_P = 0.05


def mcnemar_p(wrong_a, wrong_b):
    """One-sided exact McNemar p-value that model a is worse than model b on the same test
    digits: with n01 digits only a gets wrong and n10 only b, P(X >= n01) for
    X ~ Binomial(n01 + n10, 1/2). Returns (p, n01, n10)."""
    from math import comb

    a, b = set(wrong_a.split()), set(wrong_b.split())
    n01, n10 = len(a - b), len(b - a)
    n = n01 + n10
    p = sum(comb(n, k) for k in range(n01, n + 1)) / 2 ** n if n else 1.0
    return p, n01, n10


def verdicts(rows, metric_hi="cos_mean", metric_lo="err_linear"):
    """For every sdq row with a B: every GGUF row spending <= B + 0.55 bits is a target;
    sdq must have metric_hi >= and metric_lo <= each target's. For MNIST accuracy with the
    misclassified digits of both rows recorded, a lower sdq accuracy passes when a paired
    one-sided exact McNemar test does not find sdq worse (p >= ACCURACY_P): 1000 test digits
    cannot tell apart accuracies a few digits apart."""
    out = []
    gg = [r for r in rows if r["family"] == "gguf"]
    for r in rows:
        B = fnum(r.get("B"))
        if r["family"] != "sdq" or B is None:
            continue
        for g in sorted(gg, key=lambda g: float(g["bpw"])):
            if float(g["bpw"]) > B + VERDICT_SLACK + 1e-9:
                continue
            hi_ok = float(r[metric_hi]) >= float(g[metric_hi])
            p_worse = None
            if metric_hi == "accuracy" and r.get("wrong") and g.get("wrong"):
                p_worse = mcnemar_p(r["wrong"], g["wrong"])[0]
                hi_ok = hi_ok or p_worse >= ACCURACY_P
            lo_ok = float(r[metric_lo]) <= float(g[metric_lo])
            out.append({
                "model": r["model"], "sdq": r["scheme"], "B": B, "sdq_bpw": float(r["bpw"]),
                "over_budget": float(r["bpw"]) > B + 1e-9,
                "target": g["scheme"], "target_bpw": float(g["bpw"]),
                "sdq_hi": float(r[metric_hi]), "target_hi": float(g[metric_hi]),
                "sdq_lo": float(r[metric_lo]), "target_lo": float(g[metric_lo]),
                "ok": hi_ok and lo_ok, "hi_ok": hi_ok, "lo_ok": lo_ok, "p_worse": p_worse,
            })
    return out


FAMILY_STYLE = {
    "gguf": ("tab:red", "s"), "sdq": ("tab:blue", "o"), "rtn-row": ("tab:gray", "v"),
    "rtn-g32-absmax": ("tab:green", "^"), "rtn-g32-mse": ("tab:olive", "^"),
    "rtn-g64-absmax": ("tab:cyan", ">"), "rtn-g64-mse": ("tab:purple", ">"),
    "rtn-g128-absmax": ("tab:orange", "<"), "rtn-g128-mse": ("tab:brown", "<"),
    "ideal-ec-rtn": ("black", "x"),
}


def plot(rows, ykey, ylabel, path, title, logy=False):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    fams = []
    for r in rows:
        if r["family"] not in fams:
            fams.append(r["family"])
    for fam in fams:
        pts = sorted((float(r["bpw"]), float(r[ykey]), r["scheme"]) for r in rows
                     if r["family"] == fam and fnum(r.get(ykey)) is not None)
        if not pts:
            continue
        c, m = FAMILY_STYLE.get(fam, ("tab:pink", "d"))
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        if fam in ("gguf", "sdq"):
            ax.scatter(xs, ys, color=c, marker=m, label=fam, zorder=3, s=36)
            for x, y, n in pts:
                ax.annotate(n.replace("sdq-", ""), (x, y), fontsize=6, xytext=(3, 3),
                            textcoords="offset points", color=c)
        else:
            ax.plot(xs, ys, color=c, marker=m, label=fam, lw=1, ms=4, alpha=0.8)
    ax.set_xlim(1.8, 9.8)
    ax.set_xlabel("bits per quantized weight (charged)")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def md_table(header, lines):
    s = "| " + " | ".join(header) + " |\n|" + "|".join("---" for _ in header) + "|\n"
    for l in lines:
        s += "| " + " | ".join(str(x) for x in l) + " |\n"
    return s


def f4(x, n=4):
    v = fnum(x)
    return "" if v is None else f"{v:.{n}f}"


def fe(x):
    v = fnum(x)
    return "" if v is None else f"{v:.3e}"


def headline(rows, key_hi, key_lo):
    """The rows nearest ~4, ~5.5 and ~8 bits, for every scheme family (sdq: every config)."""
    out = []
    for target in (4.0, 5.5, 8.0):
        out.append(f"\n**≈ {target} bits** (every row within ±0.75 bits)\n\n")
        sel = [r for r in rows if abs(float(r["bpw"]) - target) <= 0.75]
        sel.sort(key=lambda r: float(r["bpw"]))
        out.append(md_table(["scheme", "family", "bpw", key_hi, key_lo],
                            [(r["scheme"], r["family"], f4(r["bpw"], 3), f4(r[key_hi]),
                              fe(r[key_lo])) for r in sel]))
    return "".join(out)


def report(out_dir, meta):
    parts = []
    parts.append("# Real-model quality benchmark (issue 13)\n\n")
    parts.append("Regenerate (from the repository root, after `cargo build --release`):\n\n"
                 f"```\n{meta['command']}\n```\n\n")
    parts.append(f"Generated {meta['date']} on {meta['machine']}; sdq `{meta['sdq_version']}` "
                 f"(git `{meta['git']}`); gguf {meta['gguf']}, llama.cpp quantizers from "
                 f"llama-cpp-python {meta['llama_cpp_python']} (ggml-quants.c compiled by the "
                 f"script); total run time {meta['total_s']:.0f} s.\n\n")
    if len(meta.get("runs", [])) > 1:
        parts.append("Rows were then re-measured by later runs (the CSV's `git` column names the "
                     "commit each row was measured at):\n\n")
        for r in meta["runs"][1:]:
            parts.append(f"- {r['date']}, git `{r['git']}`, {r['total_s']:.0f} s: `{r['command']}`\n")
        parts.append("\n")
    parts.append("## Summary of the verdicts (computed from the CSV files)\n\n"
                 "Each judged sdq configuration against every GGUF type spending at most "
                 f"B + {VERDICT_SLACK} bits (cosine or MNIST accuracy, and mean linear-layer error); "
                 "details in each model's section.\n\n")
    lines = []
    for model in meta["models"]:
        path = os.path.join(out_dir, f"{model}.csv")
        if not os.path.exists(path):
            continue
        rows = read_csv(path)
        key_hi = "accuracy" if model in MNIST_NETS else "cos_mean"
        v = verdicts(rows, key_hi, "err_linear")
        for cfg in dict.fromkeys(x["sdq"] for x in v):
            xs = [x for x in v if x["sdq"] == cfg]
            fails = [x["target"] + ("" if x["hi_ok"] else " (quality)") + ("" if x["lo_ok"] else " (error)")
                     for x in xs if not x["ok"]]
            lines.append((model, cfg, xs[0]["B"], f4(xs[0]["sdq_bpw"], 3)
                          + (" (over B!)" if xs[0]["over_budget"] else ""),
                          f"{len(xs) - len(fails)}/{len(xs)}", ", ".join(fails) or "—"))
    parts.append(md_table(["model", "sdq config", "B", "sdq bpw", "passed", "failed against"], lines))
    parts.append("\n")
    parts.append(open(os.path.join(HERE, "README_method.md")).read())
    for model in meta["models"]:
        path = os.path.join(out_dir, f"{model}.csv")
        if not os.path.exists(path):
            continue
        rows = read_csv(path)
        if model in MNIST_NETS:
            key_hi, lab_hi = "accuracy", "test accuracy"
        else:
            key_hi, lab_hi = "cos_mean", "mean cosine"
        parts.append(f"\n## {meta['titles'][model]}\n\n")
        parts.append(meta["model_notes"].get(model, ""))
        parts.append(f"CSV: [`{model}.csv`]({model}.csv). Plots: "
                     f"![{lab_hi}]({model}_quality.svg) ![error]({model}_error.svg)\n\n")
        parts.append("### Verdicts (computed from the CSV)\n\n")
        v = verdicts(rows, key_hi, "err_linear")
        if v:
            lines = [(x["sdq"], x["B"], f4(x["sdq_bpw"], 3) + (" (over B!)" if x["over_budget"] else ""),
                      x["target"], f4(x["target_bpw"], 3),
                      f"{f4(x['sdq_hi'])} vs {f4(x['target_hi'])}"
                      + ("" if x["p_worse"] is None or x["sdq_hi"] >= x["target_hi"]
                         else f" (p = {x['p_worse']:.2f})")
                      + ("" if x["hi_ok"] else " ✗"),
                      f"{fe(x['sdq_lo'])} vs {fe(x['target_lo'])}" + ("" if x["lo_ok"] else " ✗"),
                      "**pass**" if x["ok"] else "**FAIL**") for x in v]
            parts.append(md_table(["sdq config", "B", "sdq bpw", "target GGUF", "target bpw",
                                   f"{lab_hi} (sdq vs target)", "mean linear error (sdq vs target)",
                                   "verdict"], lines))
            npass = sum(x["ok"] for x in v)
            parts.append(f"\n{npass} of {len(v)} comparisons pass.\n")
        parts.append("\n### Headline: rows near 4, 5.5 and 8 bits\n")
        parts.append(headline(rows, key_hi, "err_linear"))
        parts.append("\n### All schemes\n\n")
        if model in MNIST_NETS:
            errk = [k for k in rows[0] if k.startswith("err_") and k != "err_linear"]
            hdr = (["scheme", "family", "bpw", "whole-file bpw", "test acc", "mean err"]
                   + ["err " + k[4:] for k in errk] + ["time s", "notes"])
            lines = [[r["scheme"], r["family"], f4(r["bpw"], 3), f4(r["whole_file_bpw"], 3),
                      f4(r["accuracy"]), fe(r["err_linear"])] + [fe(r.get(k)) for k in errk]
                     + [f4(r["time_s"], 2), r["notes"]] for r in rows]
        else:
            kinds = [k for k in KIND_ORDER if ("err_" + k) in rows[0]]
            hdr = (["scheme", "family", "bpw", "whole-file bpw", "cos mean", "cos min",
                    "Spearman", "mean linear err"] + ["err " + k for k in kinds]
                   + ["time s", "notes"])
            lines = [[r["scheme"], r["family"], f4(r["bpw"], 3), f4(r["whole_file_bpw"], 3),
                      f4(r["cos_mean"]), f4(r["cos_min"]), f4(r["spearman"]),
                      fe(r["err_linear"])] + [fe(r.get("err_" + k)) for k in kinds]
                     + [f4(r["time_s"], 1), r["notes"]] for r in rows]
        parts.append(md_table(hdr, lines))
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write("".join(parts))


# ---------------------------------------------------------------------------------------
# calibration (issue 15): data-free against data-aware quantization, same run

class GramFile:
    """The Gram matrices of a saved Gram file, read on demand as float64 (what GPTQ sees is
    what `sdq pack --calibration` reads)."""

    def __init__(self, path):
        from safetensors import safe_open

        self.path = path
        with safe_open(path, framework="np") as f:
            self.names = set(f.keys())

    def __contains__(self, k):
        return k in self.names

    def __getitem__(self, k):
        from safetensors import safe_open

        with safe_open(self.path, framework="np") as f:
            return f.get_tensor(k).astype(np.float64)


# The llama.cpp types beside each B of the calibration table (their own bits: Q3_K 3.44,
# IQ4_XS 4.25, Q4_K 4.5, Q5_K 5.5, Q8_0 8.5 bits per weight, fallbacks charged).
CALIBRATION_GGUF = {3: ["Q3_K"], 4: ["IQ4_XS", "Q4_K"], 5: ["Q5_K"], 8: ["Q8_0"]}


def calibration_schemes(a, gram_path, Bs, with_rtn=True, with_free=True, with_gptq=True,
                        ggml=None):
    """RTN g128, GPTQ g128, llama.cpp types without and with an importance matrix (with
    `ggml`), sdq data-free and sdq calibrated at each B (same-run peers). with_rtn: also the
    N-independent peers (RTN and the GGUF types without an importance matrix)."""
    grams = GramFile(gram_path)
    out = []
    for B in Bs:
        free, cal = calib.sdq_pair(B, a.sdq, gram_path if CLI_CALIBRATION else None)
        rtn, gq = schemes.Rtn(B, 128, "absmax"), calib.Gptq(B, grams)
        rtn.B = gq.B = B  # the table's B column (not judged by the verdicts)
        if with_rtn:
            out.append(rtn)
        for t in CALIBRATION_GGUF.get(B, []) if ggml is not None else []:
            qt = getattr(schemes.T, t)
            peers = [schemes.GgufImatrix(qt, ggml, grams)]
            if with_rtn:
                peers.insert(0, schemes.Gguf(qt, ggml))
            for p in peers:
                p.B = B
                out.append(p)
        if with_gptq:
            out.append(gq)
        if with_free:
            out.append(free)
        if cal is not None:
            out.append(cal)
    return out


def extra_schemes(a, gram_path):
    """--calibration-extra NAME=ARGS: `sdq pack --bits-per-weight B --calibration GRAM ARGS`
    (named sdq-cal-BB-NAME) for each B of --calibration-extra-bits, run on the Gram file of the
    largest main N."""
    out = []
    for B in a.calibration_extra_bits:
        for spec in a.calibration_extra:
            tag, args = spec.split("=", 1)
            _, cal = calib.sdq_pair(B, a.sdq, gram_path)
            cal.name = f"sdq-cal-B{B}-{tag}"
            cal.args += args.split()
            cal.label += " " + args
            out.append(cal)
    return out


def run_calibration(a, name, dirs, flush=None):
    """The calibration comparison of one model (and its sweep over the number of calibration
    sentences if asked): returns (rows, sweep rows, meta). flush(rows, sweep) is called after
    every measured row (partial CSVs)."""
    meta = {}
    rows, sweep = [], []
    sweep_here = a.calibration_sweep if name in a.sweep_models and name != "mnist" else []
    mains = [] if a.sweep_only else list(a.calibration)
    # the main Ns in the order given, then the sweep's other Ns ascending
    counts = mains + sorted(set(sweep_here) - set(mains))
    with tempfile.TemporaryDirectory(dir=a.cache) as wd:
        t0 = time.time()
        if name == "mnist":
            tr, te = mnist_mlp.load()
            W0 = mnist_mlp.train(tr)
            names = schemes.select(W0)
            held = calib.mnist_inputs(W0, te[0], names)
            meta["float"] = {"accuracy": mnist_mlp.accuracy(W0, *te)}

            def evaluate(sch, grams):
                return evaluate_mnist(W0, te, sch, names, wd, held, grams)

            def grams_for(n):  # MNIST: every training digit, whatever n
                t = time.time()
                acc = calib.collect_mnist(W0, tr[0], names)
                return acc, time.time() - t

            counts = [len(tr[1])]
            mains = counts
            meta["calibration_set"] = (f"the {len(tr[1])} training digits (the test digits are "
                                       f"the evaluation set)")
        else:
            m = models.load(name, dirs.get(name), a.cache)
            names = schemes.select(m.weights)
            E0 = m.embed(sentences.EVAL)
            S0 = E0 @ E0.T
            iu = np.triu_indices(len(sentences.EVAL), 1)
            held = {}
            calib.collect_transformer(m, sentences.EVAL, names, keep=held)

            def evaluate(sch, grams):
                return evaluate_transformer(m, sch, names, E0, iu, S0, wd, held, grams)

            pool = calib.calibration_sentences(max(counts))
            meta["calibration_set"] = (
                f"the first N of {calib.MAX_CALIB} sentences of bench/quality/calib.py "
                f"(hand-written sentences.CALIB + Python {platform.python_version()} "
                f"standard-library docstrings; first {max(counts)}: SHA-256 "
                f"{calib.digest(pool)}), disjoint from the {len(sentences.EVAL)} evaluation "
                f"sentences")

            def grams_for(n):
                t = time.time()
                acc = calib.collect_transformer(m, pool[:n], names)
                return acc, time.time() - t

        meta["setup_s"] = time.time() - t0
        meta["gram"] = {}
        for n in counts:
            acc, tg = grams_for(n)
            gp = os.path.join(wd, f"gram-{n}.safetensors")
            acc.save(gp, metadata={"vectors": str(acc.count(acc.names()[0]))})
            meta["gram"][str(n)] = {"collect_s": tg, "bytes": os.path.getsize(gp),
                                    "tensors": len(acc.names()),
                                    "vectors": acc.count(acc.names()[0])}
            print(f"{name}: Gram of {len(acc.names())} tensors from {n} calibration "
                  f"{'digits' if name == 'mnist' else 'sentences'} "
                  f"({acc.count(acc.names()[0])} vectors) in {tg:.1f} s, "
                  f"{os.path.getsize(gp) / 1e6:.1f} MB", flush=True)
            del acc
            todo = []
            if n in mains:
                first = n == mains[0]  # RTN and data-free sdq do not depend on N: once
                todo += [(s, rows) for s in calibration_schemes(
                    a, gp, a.calibration_bits, with_rtn=first, with_free=first,
                    with_gptq=not a.no_gptq, ggml=None if a.no_gguf else GgmlQuants(a.cache))]
                if n == max(mains) and CLI_CALIBRATION:
                    todo += [(s, rows) for s in extra_schemes(a, gp)]
            if n in sweep_here:
                todo += [(s, sweep) for s in calibration_schemes(
                    a, gp, [4], with_rtn=False, with_free=False, with_gptq=not a.no_gptq)]
            done = {}
            for sch, dest in todo:
                if sch.name not in done:
                    try:
                        done[sch.name] = evaluate(sch, GramFile(gp))
                    except subprocess.CalledProcessError as e:
                        print(f"  {sch.name}: FAILED ({e})", flush=True)
                        meta.setdefault("failed", []).append(f"{sch.name} (N = {n}): {e}")
                        continue
                    r = done[sch.name]
                    r["n_calib"] = n if sch.family in ("sdq-cal", "gptq-g128", "gguf-imatrix") else 0
                    key = "accuracy" if name == "mnist" else "cos_mean"
                    print(f"  {sch.name:16s} {r['bpw']:7.3f} bpw  {key} {r[key]:.5f}  err "
                          f"{r['err_linear']:.3e}  out err {r['out_err']:.3e} (calib "
                          f"{r['calib_out_err']:.3e})  "
                          f"{r['time_s']:.1f}s", flush=True)
                if sch.name in done:
                    dest.append(dict(done[sch.name]))
                    if flush is not None:
                        flush(rows, sweep)
            os.remove(gp)
    if not CLI_CALIBRATION:
        meta["skipped"] = CLI_SKIP_MESSAGE
    return rows, sweep, meta


def calibration_report(out_dir, meta):
    """docs/quality/calibration.md from the CSVs in docs/quality/calibration/."""
    cdir = os.path.join(out_dir, "calibration")
    p = ["# Calibration (issue 15): data-free against data-aware quantization\n\n"]
    summ = os.path.join(cdir, "summary.md")  # hand-written from the tables below, kept
    if os.path.exists(summ):
        p.append(open(summ).read().rstrip() + "\n\n")
    p.append("Regenerate (from the repository root, after `cargo build --release`; add "
             "`--model-dir NAME=DIR` to reuse downloaded models), each model's section naming "
             "the command that measured it:\n\n"
             "```\npython3 bench/quality/run.py --models minilm --calibration 512,1536 "
             "--calibration-only --calibration-sweep 16,64,128,512,1536 "
             "--calibration-extra \"identity=--frame-family identity\" "
             "--calibration-extra \"damping0.01=--damping 0.01\" "
             "--calibration-extra \"natural=--feedback-order natural\" "
             "--calibration-extra-bits 3,4\n"
             "python3 bench/quality/run.py --models mpnet --calibration 1536,512 "
             "--calibration-bits 3,4,5,8 --calibration-only "
             "--calibration-extra \"identity=--frame-family identity\" "
             "--calibration-extra-bits 3,4\n"
             "python3 bench/quality/run.py --models mnist --calibration 128 --calibration-only\n"
             "```\n\n")
    p.append(f"Last written by `{meta['command']}`: {meta['date']} on {meta['machine']}; "
             f"sdq `{meta['sdq_version']}` (git `{meta['git']}`).\n\n")
    p.append(open(os.path.join(HERE, "README_calibration.md")).read())
    for model in meta["models"]:
        mm = meta["per_model"].get(model, {})
        path = os.path.join(cdir, f"{model}.csv")
        if not os.path.exists(path):
            continue
        rows = read_csv(path)
        mn = model == "mnist"
        p.append(f"\n## {meta['titles'][model]}\n\n")
        p.append(f"Measured {mm.get('date', '?')} at git `{mm.get('git', '?')}` in "
                 f"{mm.get('total_s', 0):.0f} s by `{mm.get('command', '?')}`.\n\n")
        if "float" in mm:
            p.append(f"Float32 test accuracy {mm['float']['accuracy']:.4f}. ")
        p.append(f"Calibration set: {mm.get('calibration_set', '?')}. ")
        for n, g in mm.get("gram", {}).items():
            p.append(f"Gram file of N = {n}: {g['tensors']} tensors, {g['vectors']} input "
                     f"vectors, {g['bytes'] / 1e6:.1f} MB (F32), collected in "
                     f"{g['collect_s']:.1f} s. ")
        if mm.get("failed"):
            p.append("\n\n**Configurations that failed to run:** " + "; ".join(mm["failed"]))
        if mm.get("skipped"):
            p.append(f"\n\n**sdq calibrated configurations not run:** {mm['skipped']}")
        if mm.get("note"):
            p.append(f"\n\n**Note:** {mm['note']}")
        p.append(f"\n\nCSV: [`calibration/{model}.csv`](calibration/{model}.csv).\n\n")
        hi = ("test acc", "accuracy") if mn else ("cos mean", "cos_mean")
        hdr = ["scheme", "B", "bpw", hi[0]] + ([] if mn else ["cos min"]) + [
            "mean linear err", "held-out output err", "calib output err", "N calib",
            "quantize s", "sdq pack s"]
        lines = []
        fam = {"rtn-g128-absmax": 0, "gguf": 1, "gguf-imatrix": 2, "gptq-g128": 3, "sdq": 4,
               "sdq-cal": 5}
        for r in sorted(rows, key=lambda r: (float(r["B"] or 0), fam.get(r["family"], 9),
                                             int(r.get("n_calib") or 0), len(r["scheme"]))):
            name = r["scheme"]
            if r["family"] == "sdq-cal" and re.match(r"sdq-cal-B[0-9]+-", name):
                name += " (`" + r["label"].split("GRAM", 1)[1].strip() + "`)"
            lines.append([name, r["B"], f4(r["bpw"], 3), f4(r[hi[1]])]
                         + ([] if mn else [f4(r["cos_min"])])
                         + [fe(r["err_linear"]), fe(r["out_err"]), fe(r.get("calib_out_err")),
                            r.get("n_calib", ""),
                            f4(r["time_s"], 1), f4(r.get("pack_s"), 2)])
        p.append(md_table(hdr, lines))
        sp = os.path.join(cdir, f"{model}_sweep.csv")
        if os.path.exists(sp):
            srows = read_csv(sp)
            sm = mm.get("sweep_meta", {})
            p.append(f"\n### Number of calibration sentences, B = 4 ({model})\n\n"
                     f"Measured {sm.get('date', '?')} at git `{sm.get('git', '?')}` by "
                     f"`{sm.get('command', '?')}`. "
                     + "".join(f"N = {n}: {g['vectors']} input vectors, Gram collected in "
                               f"{g['collect_s']:.1f} s. " for n, g in sm.get("gram", {}).items())
                     + "\n\n"
                     f"CSV: [`calibration/{model}_sweep.csv`](calibration/{model}_sweep.csv). "
                     "N = 0: the data-free rows of the table above (their calib output err "
                     "is on that table's Gram file).\n\n")
            base = [r for r in rows if float(r["B"] or 0) == 4 and r["family"] in ("sdq", "rtn-g128-absmax")]
            lines = [[r["scheme"], r.get("n_calib", ""), f4(r["bpw"], 3), f4(r[hi[1]]),
                      fe(r["err_linear"]), fe(r["out_err"]), fe(r.get("calib_out_err")),
                      f4(r.get("pack_s"), 2)]
                     for r in base + sorted(srows, key=lambda r: (r["family"], int(r["n_calib"])))]
            p.append(md_table(["scheme", "N calib", "bpw", hi[0], "mean linear err",
                               "held-out output err", "calib output err (its own N)",
                               "sdq pack s"], lines))
    with open(os.path.join(out_dir, "calibration.md"), "w") as f:
        f.write("".join(p))


CLI_CALIBRATION = False
CLI_SKIP_MESSAGE = ""


def main_calibration(a, dirs, todo, titles, T0):
    global CLI_CALIBRATION, CLI_SKIP_MESSAGE
    CLI_CALIBRATION = calib.cli_has_calibration(a.sdq)
    if not CLI_CALIBRATION:
        CLI_SKIP_MESSAGE = (f"`{a.sdq} pack --help` has no `--calibration` option (an sdq "
                            f"built before issue 15): the sdq-cal configurations are skipped; "
                            f"RTN, GPTQ and the data-free sdq configurations still run.")
        print("NOTE: " + CLI_SKIP_MESSAGE, flush=True)
    cdir = os.path.join(a.out, "calibration")
    os.makedirs(cdir, exist_ok=True)
    mp = os.path.join(cdir, "meta.json")
    per_model = {}
    for name in ([] if a.report_only else todo):
        t0 = time.time()
        def flush(rows, sweep, name=name):
            if rows:
                write_csv(os.path.join(cdir, f"{name}.csv"), rows)
            if sweep:
                write_csv(os.path.join(cdir, f"{name}_sweep.csv"), sweep)

        rows, sweep, meta = run_calibration(a, name, dirs, flush)
        meta.update({"git": GIT_AT_START, "total_s": time.time() - t0,
                     "command": " ".join(["python3", "bench/quality/run.py"] + sys.argv[1:]),
                     "date": datetime.datetime.now(datetime.timezone.utc).strftime(
                         "%Y-%m-%d %H:%M UTC")})
        if rows:
            write_csv(os.path.join(cdir, f"{name}.csv"), rows)
        if sweep:
            write_csv(os.path.join(cdir, f"{name}_sweep.csv"), sweep)
        per_model[name] = meta
    # the other models' entries as stored now (another run may have finished meanwhile)
    stored = json.load(open(mp)) if os.path.exists(mp) else {}
    old = stored.get("per_model", {})
    for name, m in list(per_model.items()):
        o = old.get(name, {})
        if a.sweep_only:  # the model's main entry stays; this run is its sweep's
            per_model[name] = {**o, "sweep_meta": m}
        elif name in a.sweep_models and a.calibration_sweep:
            m["sweep_meta"] = dict(m)
        elif "sweep_meta" in o:  # the sweep CSV of an earlier run stays, with its meta
            m["sweep_meta"] = o["sweep_meta"]
    per_model = {**old, **per_model}
    ver = subprocess.run([a.sdq, "--version"], capture_output=True, text=True).stdout.strip()
    meta = {
        "command": " ".join(["python3", "bench/quality/run.py"] + sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), {platform.system()}, "
                   f"Python {platform.python_version()}, numpy {np.__version__}",
        "sdq_version": ver, "git": GIT_AT_START, "total_s": time.time() - T0,
        "models": [m for m in ("minilm", "mpnet", "mnist") if m in per_model],
        "titles": titles, "per_model": per_model,
    }
    with open(mp, "w") as f:
        json.dump(meta, f, indent=1)
    calibration_report(a.out, meta)
    print(f"wrote {a.out}/calibration.md", flush=True)


# ---------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(ALL_MODELS))
    ap.add_argument("--model-dir", action="append", default=[], help="NAME=DIR")
    ap.add_argument("--sdq", default=os.path.join(ROOT, "target", "release", "sdq"))
    ap.add_argument("--cache", default=models.DEFAULT_CACHE,
                    help="downloads, llama.cpp build and scratch files (default: "
                         "$SDQ_QUALITY_CACHE, else bench/quality/cache)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "quality"))
    ap.add_argument("--quick", action="store_true", help="fewer RTN variants (not for the docs)")
    ap.add_argument("--only", default=None, help="comma list of scheme names (debugging)")
    ap.add_argument("--update", action="store_true",
                    help="with --only: re-run those schemes and replace their rows in the existing "
                         "CSV files (each row keeps the git commit it was measured at)")
    ap.add_argument("--report-only", action="store_true", help="rewrite README/plots from the CSVs")
    ap.add_argument("--calibration", default="", metavar="N[,N...]",
                    help="also run the calibration comparison (docs/quality/calibration.md): "
                         "Gram files from N calibration sentences (MNIST: its training digits), "
                         "RTN g128, GPTQ g128, sdq data-free and `sdq pack --calibration` at "
                         "B = 3, 4, 5, 8 (several N: GPTQ and sdq --calibration for each, RTN "
                         "and data-free sdq once)")
    ap.add_argument("--calibration-bits", default="3,4,5,8",
                    help="with --calibration: the B of the main table (default 3,4,5,8)")
    ap.add_argument("--calibration-extra", action="append", default=[], metavar="NAME=ARGS",
                    help="with --calibration: also `sdq pack --bits-per-weight 4 --calibration "
                         "GRAM ARGS` on the largest main N's Gram file, as row sdq-cal-B4-NAME "
                         "(e.g. damping0.01='--damping 0.01')")
    ap.add_argument("--calibration-extra-bits", default="4",
                    help="with --calibration-extra: the B of its rows (default 4)")
    ap.add_argument("--no-gguf", action="store_true",
                    help="with --calibration: skip the llama.cpp rows (with and without "
                         "--imatrix)")
    ap.add_argument("--no-gptq", action="store_true",
                    help="with --calibration: skip the numpy GPTQ rows (slow on MPNet)")
    ap.add_argument("--calibration-only", action="store_true",
                    help="with --calibration: only the calibration comparison (with "
                         "--report-only: rewrite calibration.md from its CSVs and meta.json)")
    ap.add_argument("--calibration-sweep", default="",
                    help="with --calibration: comma list of calibration-set sizes (e.g. "
                         "16,64,128,512) run at B = 4 for the --sweep-models")
    ap.add_argument("--sweep-models", default="minilm")
    ap.add_argument("--sweep-only", action="store_true",
                    help="with --calibration-sweep: only the sweep (the model's main "
                         "calibration table stays)")
    a = ap.parse_args()
    a.calibration_sweep = [int(x) for x in a.calibration_sweep.split(",") if x]
    a.calibration = [int(x) for x in a.calibration.split(",") if x]
    a.calibration_bits = [int(x) for x in a.calibration_bits.split(",") if x]
    a.calibration_extra_bits = [int(x) for x in a.calibration_extra_bits.split(",") if x]
    a.sweep_models = a.sweep_models.split(",")
    if a.calibration_only and not a.calibration:
        ap.error("--calibration-only needs --calibration N")
    if a.calibration_sweep and not a.calibration:
        ap.error("--calibration-sweep needs --calibration N")
    T0 = time.time()
    global GIT_AT_START
    GIT_AT_START = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.cache, exist_ok=True)
    dirs = dict(x.split("=", 1) for x in a.model_dir)
    todo = a.models.split(",")
    titles = {"mpnet": "all-mpnet-base-v2 (MPNet, 12 layers, 109.5 M weights)",
              "minilm": "all-MiniLM-L6-v2 (BERT, 6 layers, 22.7 M weights)",
              "mnist": "MNIST MLP 784-200-200-10 (ReLU, bias-free, trained by the script)",
              "mnist-resnet": "MNIST residual network 784-200-(x + V·ρ(W·x))×2-10 (ReLU, "
                              "bias-free, trained by the script)"}
    if a.calibration and "mnist-resnet" in todo:
        ap.error("the calibration comparison runs on mpnet, minilm and mnist (not mnist-resnet)")
    model_notes = {}
    if a.calibration:
        main_calibration(a, dirs, todo, titles, T0)
        if a.calibration_only or a.report_only:
            return
    if not a.report_only:
        ggml = GgmlQuants(a.cache)
        sdqs = [schemes.Sdq(n, args, B, a.sdq) for n, args, B in SDQ_CONFIGS]
        all_schemes = schemes.peers(ggml, a.quick) + sdqs
        if a.only:
            keep = a.only.split(",")
            all_schemes = [s for s in all_schemes if s.name in keep]
        for name in todo:
            rows = []
            with tempfile.TemporaryDirectory(dir=a.cache) as wd:
                if name in MNIST_NETS:
                    label, train = MNIST_NETS[name]
                    t0 = time.time()
                    tr, te = mnist_mlp.load()
                    W0 = train(tr)
                    names = schemes.select(W0)
                    acc0 = mnist_mlp.accuracy(W0, *te)
                    print(f"{name}: trained in {time.time() - t0:.1f} s, test accuracy {acc0:.4f}; "
                          f"quantized {names}", flush=True)
                    rows.append({"model": label, "scheme": "float32", "family": "float32",
                                 "label": "unquantized", "B": "", "bpw": 32.0, "whole_file_bpw": "",
                                 "accuracy": acc0, "err_linear": 0.0, "time_s": 0.0, "notes": ""})
                    failed = []
                    for sch in all_schemes:
                        try:
                            r = evaluate_mnist(W0, te, sch, names, wd, label=label)
                        except subprocess.CalledProcessError as e:
                            print(f"  {sch.name}: FAILED ({e})", flush=True)
                            failed.append(sch.name)
                            continue
                        print(f"  {sch.name:32s} {r['bpw']:7.3f} bpw  acc {r['accuracy']:.4f}  "
                              f"err {r['err_linear']:.3e}", flush=True)
                        rows.append(r)
                    model_notes[name] = (f"Float32 test accuracy {acc0:.4f} (1000 test digits). "
                                            f"Quantized: {', '.join(names)}.\n\n")
                    if failed:
                        model_notes[name] += f"Configurations that failed to run: {', '.join(failed)}.\n\n"
                else:
                    m = models.load(name, dirs.get(name), a.cache)
                    names = schemes.select(m.weights)
                    n_q = sum(m.weights[k].size for k in names)
                    t0 = time.time()
                    E0, lines = models.sanity(m, sentences.EVAL, sentences.PARAPHRASE_PAIRS,
                                              sentences.UNRELATED_PAIRS)
                    te = time.time() - t0
                    S0 = E0 @ E0.T
                    iu = np.triu_indices(len(sentences.EVAL), 1)
                    print(f"{name}: {len(names)} tensors, {n_q} weights quantized; forward pass "
                          f"of {len(sentences.EVAL)} sentences {te:.1f} s", flush=True)
                    for l in lines:
                        print("  %-10s %.3f | %s | %s" % l, flush=True)
                    para = [l[1] for l in lines if l[0] == "paraphrase"]
                    unrel = [l[1] for l in lines if l[0] == "unrelated"]
                    model_notes[name] = (
                        f"{len(names)} tensors quantized ({n_q:,} weights): "
                        + ", ".join(sorted({models.tensor_kind(k) for k in names})) + " kinds. "
                        f"Forward-pass check (float32 weights): paraphrase pairs cosine "
                        f"{min(para):.3f}–{max(para):.3f} (mean {np.mean(para):.3f}), unrelated pairs "
                        f"{min(unrel):.3f}–{max(unrel):.3f} (mean {np.mean(unrel):.3f}); e.g. "
                        f"\"{lines[0][2]}\" / \"{lines[0][3]}\" {lines[0][1]:.3f}. One forward pass "
                        f"of the {len(sentences.EVAL)} sentences: {te:.1f} s.\n\n")
                    failed = []
                    for sch in all_schemes:
                        try:
                            r = evaluate_transformer(m, sch, names, E0, iu, S0, wd)
                        except subprocess.CalledProcessError as e:
                            print(f"  {sch.name}: FAILED ({e})", flush=True)
                            failed.append(sch.name)
                            continue
                        print(f"  {sch.name:32s} {r['bpw']:7.3f} bpw  cos {r['cos_mean']:.5f} "
                              f"(min {r['cos_min']:.5f})  rho {r['spearman']:.4f}  "
                              f"err {r['err_linear']:.3e}  {r['time_s']:.1f}s", flush=True)
                        rows.append(r)
                    if failed:
                        model_notes[name] += f"Configurations that failed to run: {', '.join(failed)}.\n\n"
                    del m
            csvp = os.path.join(a.out, f"{name}.csv")
            if a.update and os.path.exists(csvp):
                old = read_csv(csvp)
                prev_git = load_meta(a.out)["runs"][-1]["git"]
                for r in old:
                    if not r.get("git"):
                        r["git"] = prev_git
                new = {r["scheme"]: r for r in rows}
                order = ["float32"] + [s.name for s in schemes.peers(None, a.quick)] + [
                    n for n, _, _ in SDQ_CONFIGS]
                merged = {r["scheme"]: r for r in old}
                merged.update(new)
                rows = sorted(merged.values(), key=lambda r: order.index(r["scheme"])
                              if r["scheme"] in order else len(order))
                if a.only:
                    model_notes.pop(name, None)  # the notes of the last full run stay
            if name in model_notes:  # every scheme of this model ran: its notes are new
                with open(os.path.join(a.out, f"{name}_notes.md"), "w") as f:
                    f.write(model_notes[name])
            write_csv(csvp, rows)
    # The report shows every model with a CSV (a run of some models with --update keeps the
    # others' sections); plots are redrawn for the models of this run.
    shown = [n for n in ALL_MODELS
             if n in todo or os.path.exists(os.path.join(a.out, f"{n}.csv"))]
    for name in shown:
        p = os.path.join(a.out, f"{name}.csv")
        if not os.path.exists(p):
            continue
        rows = [r for r in read_csv(p) if r["family"] != "float32"]
        np_ = os.path.join(a.out, f"{name}_notes.md")
        if name not in model_notes and os.path.exists(np_):
            model_notes[name] = open(np_).read()
        if name not in todo:
            continue
        if name in MNIST_NETS:
            plot(rows, "accuracy", "test accuracy", os.path.join(a.out, f"{name}_quality.svg"),
                 titles[name])
        else:
            for r in rows:
                r["one_minus_cos"] = 1.0 - float(r["cos_mean"])
            plot(rows, "one_minus_cos", "1 − mean cosine (original vs decoded embedding)",
                 os.path.join(a.out, f"{name}_quality.svg"), titles[name], logy=True)
        plot(rows, "err_linear", "mean relative Frobenius error (linear layers)",
             os.path.join(a.out, f"{name}_error.svg"), titles[name], logy=True)
    import gguf
    ver = subprocess.run([a.sdq, "--version"], capture_output=True, text=True).stdout.strip()
    git = GIT_AT_START
    cmd = "python3 bench/quality/run.py"
    if a.models != ",".join(ALL_MODELS):
        cmd += f" --models {a.models}"
    meta = {
        "command": cmd + "   # add --model-dir mpnet=DIR --model-dir minilm=DIR to reuse downloads",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), {platform.system()}, "
                   f"Python {platform.python_version()}, numpy {np.__version__}",
        "sdq_version": ver, "git": git, "gguf": getattr(gguf, "__version__", "0.19.0"),
        "llama_cpp_python": "0.3.36", "total_s": time.time() - T0,
        "models": shown, "titles": titles, "model_notes": model_notes,
    }
    keep = ("command", "date", "machine", "sdq_version", "git", "total_s")
    this = {k: meta[k] for k in keep}
    if a.update:
        this["command"] = " ".join(["python3", "bench/quality/run.py"] + sys.argv[1:])
    stored = load_meta(a.out)
    if a.report_only:
        runs = stored["runs"]
    elif a.update:
        runs = stored["runs"] + [this]
    else:
        runs = [this]
    meta["runs"] = runs
    meta.update({k: runs[0][k] for k in keep})
    with open(os.path.join(a.out, "run_meta.json"), "w") as f:
        json.dump({"runs": runs}, f, indent=1)
    report(a.out, meta)
    print(f"wrote {a.out}/README.md in {time.time() - T0:.0f} s")


if __name__ == "__main__":
    main()
