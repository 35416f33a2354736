#!/usr/bin/env python3
"""`sdq pack --calibration` on the unseen checkpoints of docs/quality/unseen.md: does data fix
what the data-free defaults cannot see (PP-OCRv4 rec's sensitive 1×1 convolutions)?

    python3 bench/quality/unseen_calibration.py [--models pprec,ppdet,yolo8n,effl0] [--inputs N]
        [--caps 4.8,4.9,5.0,5.1,5.2] [--extra '--frame-family identity'] [--csv PATH]

For every Conv node with group 1 whose weight is one of the model's float tensors (W [out, C,
kh, kw], the rows sdq quantizes, d = C·kh·kw) the script collects the Gram matrix of the
layer's input patches (im2col with the node's kernel, strides, pads and dilations; at most
4096 patches per input, drawn with a fixed seed) over **calibration inputs that are not the
evaluation inputs** (other text lines / pages, rendered the same way), keeps those with at least
twice as many patches as the layer has inputs (docs/calibration.md: a Gram matrix from fewer
vectors than its dimension only knows part of the input space), writes them to a safetensors
file named like the weights, and packs the F32 checkpoint with the defaults plus
`--calibration GRAM` (and, for comparison, with the defaults alone). MatMul weights stored
[in, out] (Paddle's layout: rows are inputs) and depthwise convolutions are left data-free.
Writes docs/quality/unseen_calibration.csv and prints a table; the evaluation metric is each
model's own (unseen.py's `compare`).
"""

import argparse
import csv
import json
import os
import sys
import time

import numpy as np
import onnx
from onnx import helper, numpy_helper
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import unseen  # noqa: E402

CAL_LINES = [
    "Receipt 00417  Subtotal: 56.20 EUR",
    "Meeting moved to Thursday at 3 pm",
    "Lorem ipsum dolor sit amet, consectetur",
    "Gate B12 boarding closes 20 min before",
    "Serial No. XK-88213-QZ  made in 2025",
    "Do not stack more than 6 boxes high",
    "Room 214 - Laboratory of Signal Processing",
    "www.example.org/docs/install?lang=en",
    "Batch 7 of 12: temperature 21.5 C",
    "Press any key to continue...",
    "Quantum error correction, lecture notes",
    "Price per kg 3.99 - offer ends Sunday",
]


def cal_inputs(key, n):
    """n calibration inputs of the same kind as the evaluation inputs, but other ones: text lines
    (CAL_LINES, then again in the other font) or pages drawn with seeds 100, 101, …"""
    if key == "pprec":
        return [unseen.rec_image(unseen.text_line(CAL_LINES[i % len(CAL_LINES)],
                                                  serif=(i + i // len(CAL_LINES)) % 2 == 1,
                                                  invert=i % 5 == 3))
                for i in range(n)]
    if key == "ppdet":
        return [unseen.imagenet_nchw(unseen.page(s)) for s in range(100, 100 + n)]
    if key == "yolo8n":
        # scikit-image's other sample images (textures, coins, a galaxy field, micrographs, a
        # retina, a logo, a scanned page, a horse silhouette, the moon, ...): none of the six
        # evaluation photographs, and none with a face.
        names = ["brick.png", "grass.png", "gravel.png", "coins.png", "hubble_deep_field.jpg", "ihc.png",
                 "retina.jpg", "logo.png", "page.png", "text.png", "horse.png", "moon.png", "cell.png",
                 "clock_motion.png", "color.png", "motorcycle_right.png"]
        return unseen.photo_inputs(tuple(names[i % len(names)] for i in range(n)))
    if key == "effl0":
        # images that are none of the 22 evaluation photographs: scikit-image's remaining
        # samples and matplotlib's (a portrait, a gift box, logos, a chessboard, a micrograph,
        # a phantom), each as random crops of 40-100 % of its shorter side, some mirrored
        return imagenet_crops(n)
    raise SystemExit(f"no calibration inputs for {key}")


def imagenet_crops(n, size=224):
    from PIL import Image
    import matplotlib

    mpl = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data")
    ims = [Image.open(unseen.wheel_member("skimage", f)) for f in
           ("chessboard_RGB.png", "microaneurysms.png", "phantom.png", "no_time_for_that_tiny.gif")]
    ims += [Image.open(os.path.join(mpl, f)) for f in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png")]
    ims = [im.convert("RGB") for im in ims]
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        im = ims[i % len(ims)]
        w, h = im.size
        side = int(min(w, h) * rng.uniform(0.4, 1.0))
        l, t = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        c = im.crop((l, t, l + side, t + side)).resize((size, size), Image.BILINEAR)
        if rng.random() < 0.5:
            c = c.transpose(Image.FLIP_LEFT_RIGHT)
        out.append(unseen.imagenet_nchw(c))
    return out


def conv_layers(model):
    """(weight name as exported, input name, kernel, strides, pads, dilations) of every Conv with
    group 1 whose weight is an initializer or a Constant node's output."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    consts = {nd.output[0] for nd in g.node if nd.op_type == "Constant"}
    out = []
    for nd in g.node:
        if nd.op_type != "Conv" or len(nd.input) < 2:
            continue
        at = {a.name: helper.get_attribute_value(a) for a in nd.attribute}
        if at.get("group", 1) != 1:
            continue
        w = nd.input[1]
        name = w if w in inits else ("const:" + w if w in consts else None)
        if name is None:
            continue
        out.append((name, nd.input[0], at.get("strides", [1, 1]), at.get("pads", [0, 0, 0, 0]),
                    at.get("dilations", [1, 1])))
    return out


def patches(x, kh, kw, strides, pads, dil, rng, cap=4096):
    """im2col of x [1, C, H, W]: rows of C·kh·kw values in the weight's [c, i, j] order."""
    _, c, h, w = x.shape
    xp = np.pad(x[0], ((0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (w + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) // strides[1] + 1
    ys, xs = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
    pos = np.stack([ys.ravel(), xs.ravel()], 1)
    if len(pos) > cap:
        pos = pos[rng.choice(len(pos), cap, replace=False)]
    cols = []
    for i in range(kh):
        for j in range(kw):
            yy = pos[:, 0] * strides[0] + i * dil[0]
            xx = pos[:, 1] * strides[1] + j * dil[1]
            cols.append(xp[:, yy, xx])  # [C, P]
    # [C, kh·kw, P] → [P, C·kh·kw] with index c·kh·kw + i·kw + j
    return np.stack(cols, 1).reshape(c * kh * kw, -1).T.astype(np.float64)


def oracle_inputs(model, n):
    """The evaluation inputs themselves, then mirrored, up to n: an upper bound on what
    calibration can do, not a measurement of it (--oracle)."""
    xs = list(model.inp)
    xs += [np.ascontiguousarray(x[..., ::-1]) for x in xs]
    return [xs[i % len(xs)] for i in range(n)]


def grams(key, base, n_inputs, inputs=None):
    m = onnx.load_from_string(base)
    layers = conv_layers(m)
    shapes = {k: numpy_helper.to_array(t).shape for k, t in unseen.float_tensors(m.graph).items()}
    wanted = sorted({inp for _, inp, *_ in layers})
    have = {o.name for o in m.graph.output}
    for n in wanted:
        if n not in have:
            m.graph.output.append(helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    s = unseen.session(m.SerializeToString())
    names = [o.name for o in s.get_outputs()]
    feed_name = s.get_inputs()[0].name
    H = {}
    count = {}
    rng = np.random.default_rng(0)
    for x in inputs if inputs is not None else cal_inputs(key, n_inputs):
        outs = dict(zip(names, s.run(None, {feed_name: x})))
        for wname, inp, strides, pads, dil in layers:
            if len(shapes[wname]) != 4:  # 2-D convolutions only (Conv1d: not handled here)
                continue
            kh, kw = shapes[wname][2], shapes[wname][3]
            p = patches(outs[inp], kh, kw, strides, pads, dil, rng)
            H[wname] = H.get(wname, 0) + p.T @ p
            count[wname] = count.get(wname, 0) + len(p)
    # As docs/calibration.md asks: more input vectors than the layer has inputs (here at least
    # twice as many). Layers after a global pooling (squeeze-excitation) see one vector per
    # input and stay data-free.
    keep = [k for k, v in H.items() if count[k] >= 2 * v.shape[0]]
    return {k: (H[k] / count[k]).astype(np.float32) for k in keep}, {k: count[k] for k in keep}, len(H)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="pprec,ppdet,yolo8n,effl0")
    ap.add_argument("--inputs", type=int, default=None,
                    help="calibration inputs per model (default 16; 48 for effl0, whose last layers see 7 x 7 "
                         "pixels an image and need that many to have twice as many vectors as inputs)")
    ap.add_argument("--csv", default=os.path.join(unseen.ROOT, "docs", "quality", "unseen_calibration.csv"))
    ap.add_argument("--caps", default="",
                    help="comma-separated whole-file caps (--file-bits-per-weight C) to pack every setting at, "
                         "instead of the default cap alone: how far a setting's output moves when every "
                         "rounding is re-drawn (docs/quality/unseen.md, 'How firm each verdict is')")
    ap.add_argument("--extra", action="append", default=[], metavar="ARGS",
                    help="one more calibrated setting: the defaults plus --calibration plus ARGS "
                         "(e.g. '--frame-family identity'); repeatable")
    ap.add_argument("--oracle", action="store_true",
                    help="calibrate on the evaluation inputs themselves (and their mirror images): an upper "
                         "bound, printed only (the CSV is not written)")
    a = ap.parse_args()
    rows = []
    t0 = time.time()
    for key in a.models.split(","):
        model = unseen.MODELS[key]()
        base = model.bytes()
        m = onnx.load_from_string(base)
        nfloat = sum(int(np.prod(numpy_helper.to_array(t).shape))
                     for t in unseen.float_tensors(m.graph).values())
        ref = model.run(unseen.session(base))
        wd = os.path.join(unseen.CACHE, "work")
        st = os.path.join(wd, f"{key}-F32.safetensors")
        if not os.path.exists(st):
            unseen.export(m, st, np.float32)
        n_inputs = a.inputs or (48 if key == "effl0" else 16)
        G, count, convs = grams(key, base, n_inputs, oracle_inputs(model, n_inputs) if a.oracle else None)
        gp = os.path.join(wd, f"{key}-gram.safetensors")
        save_file(G, gp)
        vectors = sorted(set(count.values()))
        note = (f"{len(G)} of {convs} group-1 conv weights covered (Gram of {vectors[0]}–{vectors[-1]} "
                f"input patches from {n_inputs} calibration inputs; the others had fewer "
                f"than twice their inputs)")
        print(key, note, flush=True)
        settings = [("default", []), ("default + --calibration", ["--calibration", gp])]
        settings += [(f"default + --calibration {x}", ["--calibration", gp] + x.split()) for x in a.extra]
        for cap in a.caps.split(",") if a.caps else [None]:
            for label, opts in settings:
                capped = opts + (["--file-bits-per-weight", cap] if cap else [])
                r, _ = unseen.one(key, model, "F32", capped, ref, "cal" if opts else None, nfloat)
                r["setting"] = (label + (f" (cap {cap})" if cap else "")
                                + (" (oracle: calibrated on the evaluation inputs)" if opts and a.oracle else ""))
                r["note"] = note if opts else ""
                rows.append(r)
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
    keys = ["model", "dtype", "setting", "floats", "file_bpw", "quant_bpw", "cos_min", "cos_mean",
            "agree", "agree_name", "mean_rel_err", "worst_rel_err", "worst_tensor", "pack_s", "note", "error"]
    if not a.oracle:
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, keys, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: (f"{r[k]:.6g}" if isinstance(r.get(k), (float, np.floating)) else r.get(k, ""))
                            for k in keys})
    print(json.dumps(dict(seconds=round(time.time() - t0), cmd="python3 bench/quality/unseen_calibration.py "
                          + " ".join(sys.argv[1:]))))


if __name__ == "__main__":
    main()
