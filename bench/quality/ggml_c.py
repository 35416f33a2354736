"""llama.cpp's own quantizers (ggml-quants.c), compiled here into a shared library.

The source comes from the llama-cpp-python sdist on PyPI (vendor/llama.cpp/ggml/src):
  pip download --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36 -d DIR
Only ggml-quants.c and its headers are extracted into the cache folder, a tiny stub
provides the few ggml symbols it calls (abort, type sizes), and gcc builds
libggmlquants.so there. Nothing of llama.cpp is committed.

Quantization goes through quantize_<type>(src, dst, nrow, n_per_row, imatrix), which is
what llama-quantize runs (imatrix NULL without --imatrix); dequantization through
dequantize_row_<type>.
"""

import ctypes
import glob
import os
import subprocess
import sys
import tarfile

import numpy as np

import gguf

LLAMA_CPP_PYTHON = "0.3.36"
T = gguf.GGMLQuantizationType

# type -> (C name) for the types we call through the C library
C_TYPES = {
    T.Q2_K: "q2_K", T.Q3_K: "q3_K", T.Q4_K: "q4_K", T.Q5_K: "q5_K", T.Q6_K: "q6_K",
    T.IQ4_XS: "iq4_xs", T.IQ4_NL: "iq4_nl",
    T.Q4_0: "q4_0", T.Q4_1: "q4_1", T.Q5_0: "q5_0", T.Q5_1: "q5_1", T.Q8_0: "q8_0",
}

# llama.cpp src/llama-quant.cpp tensor_type_fallback (row length not a multiple of the
# type's block size)
FALLBACK = {
    T.IQ4_XS: T.IQ4_NL, T.Q2_K: T.Q4_0, T.Q3_K: T.Q4_0,
    T.Q4_K: T.Q5_0, T.Q5_K: T.Q5_1, T.Q6_K: T.Q8_0,
}

STUB = r"""
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
void ggml_abort(const char * file, int line, const char * fmt, ...) {
    va_list ap; va_start(ap, fmt);
    fprintf(stderr, "ggml_abort %s:%d: ", file, line); vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n"); va_end(ap); abort();
}
static const struct { int type; int blck; int bytes; } SIZES[] = { %SIZES% };
static int find(int type) {
    for (size_t i = 0; i < sizeof(SIZES) / sizeof(SIZES[0]); i++) if (SIZES[i].type == type) return (int) i;
    fprintf(stderr, "stub: unknown ggml type %d\n", type); abort();
}
size_t ggml_type_size(int type) { return (size_t) SIZES[find(type)].bytes; }
size_t ggml_row_size(int type, int64_t ne) { int i = find(type); return (size_t) SIZES[i].bytes * (size_t) (ne / SIZES[i].blck); }
const char * ggml_type_name(int type) { (void) type; return "?"; }
"""


def _build(cache):
    libdir = os.path.join(cache, "ggml")
    lib = os.path.join(libdir, "libggmlquants.so")
    if os.path.exists(lib):
        return lib
    os.makedirs(libdir, exist_ok=True)
    sdist_dir = os.path.join(cache, "llama-cpp-python-sdist")
    tars = glob.glob(os.path.join(sdist_dir, f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"))
    if not tars:
        os.makedirs(sdist_dir, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
               "llama-cpp-python", f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", sdist_dir]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        tars = glob.glob(os.path.join(sdist_dir, f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"))
    src = os.path.join(libdir, "src")
    prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/ggml/"
    with tarfile.open(tars[0]) as tf:
        members = [m for m in tf.getmembers()
                   if m.isfile() and m.name.startswith(prefix)
                   and (m.name.startswith(prefix + "include/")
                        or m.name[len(prefix):] in ("src/ggml-quants.c", "src/ggml-quants.h",
                                                    "src/ggml-common.h", "src/ggml-impl.h")
                        or m.name.startswith(prefix + "src/ggml-cpu/ggml-cpu-impl.h"))]
        for m in members:
            m.name = m.name[len(prefix):]
            tf.extract(m, src)
    sizes = ", ".join(f"{{{int(t)}, {b}, {s}}}" for t, (b, s) in gguf.GGML_QUANT_SIZES.items())
    stub = os.path.join(libdir, "stub.c")
    with open(stub, "w") as f:
        f.write(STUB.replace("%SIZES%", sizes))
    cmd = ["gcc", "-O2", "-shared", "-fPIC", "-std=gnu11", "-w",
           "-I", os.path.join(src, "include"), "-I", os.path.join(src, "src"),
           "-I", os.path.join(src, "src", "ggml-cpu"),
           os.path.join(src, "src", "ggml-quants.c"), stub, "-o", lib + ".tmp", "-lm"]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    os.replace(lib + ".tmp", lib)
    return lib


class GgmlQuants:
    def __init__(self, cache):
        self.lib = ctypes.CDLL(_build(cache))
        for name in C_TYPES.values():
            q = getattr(self.lib, "quantize_" + name)
            q.restype = ctypes.c_size_t
            q.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
            d = getattr(self.lib, "dequantize_row_" + name)
            d.restype = None
            d.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]

    def roundtrip(self, W, qtype, imatrix=None):
        """Quantizes W[rows, n_per_row] (f32, C-contiguous) and returns (W~, bytes). imatrix:
        n_per_row importance weights (llama-quantize --imatrix: the mean square of each input
        over the calibration tokens), or None."""
        name = C_TYPES[qtype]
        W = np.ascontiguousarray(W, dtype=np.float32)
        nrow, n = W.shape
        blck, bsize = gguf.GGML_QUANT_SIZES[qtype]
        assert n % blck == 0
        nbytes = nrow * (n // blck) * bsize
        buf = np.empty(nbytes, dtype=np.uint8)
        im = None
        if imatrix is not None:
            im = np.ascontiguousarray(imatrix, dtype=np.float32)
            assert im.shape == (n,)
        got = getattr(self.lib, "quantize_" + name)(W.ctypes.data, buf.ctypes.data, nrow, n,
                                                     None if im is None else im.ctypes.data)
        assert got == nbytes, (got, nbytes)
        out = np.empty_like(W)
        getattr(self.lib, "dequantize_row_" + name)(buf.ctypes.data, out.ctypes.data, W.size)
        return out, nbytes
