"""One pack-and-unpack round trip through the sdq command line, for the benchmark scripts."""
import json
import os
import subprocess
import tempfile

from safetensors.numpy import load_file, save_file


def roundtrip(sdq, tensors, args=()):
    """Writes `tensors` (name -> numpy array) to a safetensors file, `sdq pack` it with `args`,
    `sdq unpack` it and `sdq verify --against` the source. Returns (decoded tensors, the .sdq
    file's bytes, `sdq info --json`'s dict, verify's exit code)."""
    with tempfile.TemporaryDirectory() as wd:
        src, sq, back = (os.path.join(wd, x) for x in ("m.safetensors", "m.sdq", "b.safetensors"))
        save_file(tensors, src)
        subprocess.run([sdq, "pack", src, "-o", sq, "-q", *args], check=True, capture_output=True)
        subprocess.run([sdq, "unpack", sq, "-o", back, "-q"], check=True, capture_output=True)
        info = json.loads(subprocess.run([sdq, "info", sq, "--json"], check=True,
                                         capture_output=True, text=True).stdout)
        verify = subprocess.run([sdq, "verify", sq, "--against", src], capture_output=True).returncode
        return load_file(back), os.path.getsize(sq), info, verify
