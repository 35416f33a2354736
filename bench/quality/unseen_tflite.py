#!/usr/bin/env python3
"""sdq's defaults on MediaPipe's TFLite models (native F16 weights), beside llama.cpp's legacy
types on the same tensors — an exploratory check, not part of unseen.md's verdict (see the
caveat below).

    pip install tflite ai-edge-litert gguf==0.19.0
    python3 bench/quality/unseen_tflite.py          # writes docs/quality/unseen_tflite.txt
    python3 bench/quality/unseen_tflite.py iris hand # only models whose file name has one of
                                                     #   these words; prints, writes nothing
    python3 bench/quality/unseen_tflite.py palm --pack-args='--bits-per-weight 8'
                                                     # also sdq with these options (repeatable)

The models come from the mediapipe 0.10.14 wheel (Apache-2.0; fetched once with `pip download
--no-deps` into bench/quality/cache/unseen/wheels/): palm and hand-landmark detectors, face
detection and landmarks, pose landmarks, selfie segmentation (F16 weights with DEQUANTIZE ops)
and the iris-landmark and hand-recrop models (F32). The two models with sparse weights
(pose_detection, face_detection_full_range_sparse: their buffers hold only the nonzero values,
densified at run time) are left out.

Method: every float constant buffer (F16 or F32, at least 2 elements; a buffer shared by two
tensors once) goes to a safetensors file in its own dtype and shape (TFLite's [out, kh, kw, in]
convolutions are [out, kh·kw·in] rows for sdq); `sdq pack` with no option; `sdq unpack`; the
decoded values are written back into a copy of the flatbuffer at the same byte offsets; the
LiteRT interpreter (one thread) runs the original and the decoded model on scikit-image's six
sample photographs resized to the input size (scaled to [-1, 1] for the detectors, [0, 1] for
the others, as MediaPipe feeds them). For each output: the cosine between original and decoded
output per photograph, min / mean. The peers replace the same buffers with llama.cpp's Q8_0,
Q5_0 and Q4_0 (gguf 0.19.0's numpy quantizers; blocks of 32 along each row; rows whose length is
not a multiple of 32 stay F16/F32, so their bits are a lower bound on what they would take).

**Caveat.** None of the photographs shows a hand and only one a person's upper body: most of
these models see inputs unlike any they were trained on, and some of their outputs (the hand
model's world landmarks, the pose model's segmentation and heatmaps) then move far even under
Q8_0 at 8.5 bits. Compare sdq with the peers row by row; the absolute cosines say little about
what a user of these models would see.
"""

import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sdq_cli  # noqa: E402
import unseen  # noqa: E402

try:
    import tflite
    from ai_edge_litert.interpreter import Interpreter
except ImportError as e:  # pragma: no cover - a clear message instead of a trace
    sys.exit(f"unseen_tflite.py needs `pip install tflite ai-edge-litert gguf==0.19.0` ({e})")

SDQ = os.environ.get("SDQ", os.path.join(unseen.ROOT, "target", "release", "sdq"))
OUT = os.path.join(unseen.ROOT, "docs", "quality", "unseen_tflite.txt")
# (path inside mediapipe/modules/, input scale: -1 for [-1, 1], 0 for [0, 1])
MODELS = [
    ("palm_detection/palm_detection_full.tflite", -1),
    ("palm_detection/palm_detection_lite.tflite", -1),
    ("hand_landmark/hand_landmark_full.tflite", 0),
    ("hand_landmark/hand_landmark_lite.tflite", 0),
    ("face_detection/face_detection_short_range.tflite", -1),
    ("face_landmark/face_landmark.tflite", 0),
    ("pose_landmark/pose_landmark_full.tflite", 0),
    ("selfie_segmentation/selfie_segmentation.tflite", 0),
    ("iris_landmark/iris_landmark.tflite", 0),
    ("holistic_landmark/hand_recrop.tflite", 0),
]
FLOAT = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16}
PEERS = ("Q8_0", "Q5_0", "Q4_0")


def constants(buf):
    """{key: (name, byte offset, byte length, dtype, shape)} of the float constant buffers."""
    m = tflite.Model.GetRootAsModel(buf, 0)
    out = {}
    for g in range(m.SubgraphsLength()):
        sg = m.Subgraphs(g)
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            if t.Type() not in FLOAT or str(t.Buffer()) in out:
                continue
            b = m.Buffers(t.Buffer())
            n = b.DataLength()
            dt = FLOAT[t.Type()]
            count = n // np.dtype(dt).itemsize
            if count < 2:
                continue
            shape = tuple(int(x) for x in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            if int(np.prod(shape)) != count:
                raise ValueError(f"buffer {t.Buffer()} holds {count} values for shape {shape}")
            start = b._tab.Vector(b._tab.Offset(4))  # the data vector's first byte
            out[str(t.Buffer())] = (t.Name().decode(), start, n, dt, shape)
    return out


def photos(h, w, signed):
    from PIL import Image

    out = []
    for name in ("astronaut.png", "camera.png", "coffee.png", "chelsea.png",
                 "motorcycle_left.png", "rocket.jpg"):
        im = Image.open(unseen.wheel_member("skimage", name)).convert("RGB")
        a = np.asarray(im.resize((w, h), Image.BILINEAR), np.float32) / 255.0
        out.append((a * 2 - 1 if signed else a)[None])
    return out


def run(content, xs):
    it = Interpreter(model_content=bytes(content), num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]["index"]
    res = []
    for x in xs:
        it.set_tensor(inp, x)
        it.invoke()
        res.append([it.get_tensor(o["index"]).astype(np.float64).ravel()
                    for o in it.get_output_details()])
    names = [o["name"] for o in it.get_output_details()]
    return res, names


def cos(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 1.0 if na == 0 and nb == 0 else float(a @ b / max(na * nb, 1e-300))


def patched(buf, consts, values):
    nb = bytearray(buf)
    for key, (_, start, n, dt, _) in consts.items():
        data = np.asarray(values[key]).astype(dt).tobytes()
        assert len(data) == n
        nb[start:start + n] = data
    return nb


def sdq_values(tensors, args=()):
    dec, size, info, _ = sdq_cli.roundtrip(SDQ, tensors, args)
    q = [t for t in info["tensors"] if t["encoding"] != "raw"]
    qw = sum(t["elements"] for t in q)
    return dec, size, {
        "quantized": f"{len(q)} tensors, {qw} weights, "
                     f"{sum(t['stored_bytes'] for t in q) * 8 / max(qw, 1):.2f} stored bits each",
        "rel.err": f"mean {np.mean([t['quantization']['relative_error'] for t in q]):.3f}, "
                   f"worst {max(t['quantization']['relative_error'] for t in q):.3f}"}


def peer_values(tensors, name):
    import gguf

    t = getattr(gguf.GGMLQuantizationType, name)
    out, bits = {}, 0
    for k, v in tensors.items():
        w = v.astype(np.float32).reshape(v.shape[0], -1) if v.ndim >= 2 else None
        if w is not None and w.shape[1] % 32 == 0:
            q = gguf.quants.quantize(w, t)
            out[k] = gguf.quants.dequantize(q, t).reshape(v.shape)
            bits += q.nbytes * 8
        else:
            out[k] = v
            bits += v.nbytes * 8
    return out, bits


def main():
    t0 = time.time()
    lines = ["python3 bench/quality/unseen_tflite.py  (" + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
             + f"; {subprocess.run([SDQ, '--version'], capture_output=True, text=True).stdout.strip()}"
             + f" at git {subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=unseen.ROOT, capture_output=True, text=True).stdout.strip()}, "
             "mediapipe 0.10.14's models, ai-edge-litert, gguf 0.19.0)",
             "cosine of each output, original vs decoded model, per photograph: min / mean;"
             " bits = whole payload of the float buffers per float weight (sdq: the .sdq file)"]
    extra_args = [a.split("=", 1)[1].split() for a in sys.argv[1:] if a.startswith("--pack-args=")]
    only = [a for a in sys.argv[1:] if not a.startswith("--pack-args=")]
    for rel, signed in MODELS:
        if only and not any(w in os.path.basename(rel) for w in only):
            continue
        path = unseen.wheel_member("mediapipe", rel)
        buf = bytearray(open(path, "rb").read())
        consts = constants(buf)
        tensors = {k: np.frombuffer(bytes(buf[s:s + n]), dt).reshape(shape)
                   for k, (_, s, n, dt, shape) in consts.items()}
        floats = sum(v.size for v in tensors.values())
        dtypes = "/".join(sorted({v.dtype.name.upper().replace("FLOAT", "F") for v in tensors.values()}))
        it = Interpreter(model_path=path)
        ish = it.get_input_details()[0]["shape"]
        xs = photos(int(ish[1]), int(ish[2]), signed < 0)
        ref, names = run(buf, xs)
        lines.append(f"\n== {os.path.basename(rel)}: {len(tensors)} float buffers, {floats} float "
                     f"weights ({dtypes}), outputs: " + ", ".join(names))
        rows = []
        for args in [[]] + extra_args:
            dec, size, extra = sdq_values(tensors, args)
            rows.append((f"sdq {' '.join(args) or '(defaults)'}", dec, size * 8 / floats,
                         "; ".join(f"{k} {v}" for k, v in extra.items())))
        for p in PEERS:
            vals, bits = peer_values(tensors, p)
            rows.append((p, vals, bits / floats, ""))
        for label, vals, bits, note in rows:
            got, _ = run(patched(buf, consts, vals), xs)
            per = [[cos(a[k], b[k]) for a, b in zip(ref, got)] for k in range(len(names))]
            lines.append(f"  {label:15s} {bits:6.2f} bits  " + "  ".join(
                f"{min(c):.4f}/{np.mean(c):.4f}" for c in per) + (f"  ({note})" if note else ""))
        print("\n".join(lines[-len(rows) - 1:]), flush=True)
    lines.append(f"\n{time.time() - t0:.0f} s")
    if only or extra_args:
        return
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
