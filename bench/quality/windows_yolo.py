#!/usr/bin/env python3
"""Zero-sum kernel windows on more photographs: the YOLOv8n detector of unseen.py (nudenet's
320n.onnx) on all 22 of scikit-image 0.26.0's sample images (letterboxed to 320×320 as nudenet
does), packed with `--rounding zero-sum-rows` (rows only) and `--rounding zero-sum` (the default:
kernel windows, then rows) at several budgets, F32 and F16; prints the class scores' cosine
min / mean over the photographs. Run `python3 bench/quality/unseen.py --models yolo8n` once
first (it writes the safetensors copies this reads); SDQ=path picks the binary.

    python3 bench/quality/windows_yolo.py [default,4.5,4,3.5]
"""
import os
import subprocess
import sys
import tempfile

from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import unseen as u  # noqa: E402

SDQ = os.environ.get("SDQ", os.path.join(u.ROOT, "target", "release", "sdq"))


def main():
    budgets = (sys.argv[1] if len(sys.argv) > 1 else "default,4.5,4,3.5").split(",")
    folder = os.path.dirname(u.wheel_member("skimage", "astronaut.png"))
    names = tuple(n[len("skimage_"):] for n in sorted(os.listdir(folder)) if n.startswith("skimage_"))
    m = u.Yolo8()
    m.inp = u.photo_inputs(names)
    base = m.bytes()
    ref = m.run(u.session(base))
    print(f"YOLOv8n class scores, {len(names)} images; cosine min / mean per setting")
    for dt in ("F32", "F16"):
        st = os.path.join(u.CACHE, "work", f"yolo8n-{dt}.safetensors")
        for b in budgets:
            line = f"{dt} {'default budget' if b == 'default' else '--bits-per-weight ' + b}:"
            for r in ("zero-sum-rows", "zero-sum"):
                with tempfile.TemporaryDirectory() as wd:
                    sq, un = os.path.join(wd, "m.sdq"), os.path.join(wd, "u.safetensors")
                    args = [] if b == "default" else ["--bits-per-weight", b]
                    subprocess.run([SDQ, "pack", st, "-o", sq, "-q", "--rounding", r] + args,
                                   check=True, capture_output=True)
                    subprocess.run([SDQ, "unpack", sq, "-o", un, "-q"], check=True, capture_output=True)
                    dec = load_file(un)
                res = m.compare(ref, m.run(u.session(u.put_back(base, dec))))
                line += f"  {r} {res['cos_min']:.4f} / {res['cos_mean']:.4f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
