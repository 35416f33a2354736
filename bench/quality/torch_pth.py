"""Read a PyTorch checkpoint (`torch.save` of a state dict) into numpy arrays without torch.

Both of torch's layouts: the zip archive (torch >= 1.6: `archive/data.pkl` + `archive/data/N`)
and the legacy stream (a magic number, a protocol number, system info, the pickled object, the
storage keys, then each storage's bytes after an 8-byte element count). Only what a state dict
holds is rebuilt: OrderedDict, tensors (`torch._utils._rebuild_tensor_v2`) over float / half /
bfloat16 / integer storages; any other class in the pickle raises, so a checkpoint cannot run
code here.

    from torch_pth import load
    sd = load("model.pth")  # {name: np.ndarray}
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

STORAGES = {
    "FloatStorage": np.float32, "HalfStorage": np.float16, "DoubleStorage": np.float64,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "BFloat16Storage": "bf16",
}
MAGIC = 0x1950A86A20F9469CFC6C


class _Storage:
    def __init__(self, kind, key):
        self.kind, self.key = kind, key


def _rebuild_tensor(storage, offset, size, stride, *rest):
    return ("tensor", storage, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGES:
            return name
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a state dict")

    def __init__(self, f):
        super().__init__(f)
        self.kinds = {}

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, numel[, view metadata])
        st = _Storage(pid[1], str(pid[2]))
        self.kinds[st.key] = st.kind
        return st


def _array(raw, kind):
    if kind == "bf16":
        u = np.frombuffer(raw, np.uint16).astype(np.uint32) << 16
        return u.view(np.float32)
    return np.frombuffer(raw, STORAGES[kind])


def _materialise(obj, storages):
    out = collections.OrderedDict()
    for k, v in obj.items():
        if isinstance(v, tuple) and v and v[0] == "tensor":
            _, st, offset, size, stride = v
            flat = storages[st.key]
            item = flat.itemsize
            a = np.lib.stride_tricks.as_strided(flat[offset:], shape=size, strides=[s * item for s in stride])
            out[k] = np.array(a)  # a contiguous copy
        elif isinstance(v, dict):
            for k2, v2 in _materialise(v, storages).items():
                out[f"{k}.{k2}"] = v2
    return out


def load(path):
    data = open(path, "rb").read()
    if data[:4] == b"PK\x03\x04":
        z = zipfile.ZipFile(io.BytesIO(data))
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
        root = pkl[: -len("data.pkl")]
        up = _Unpickler(io.BytesIO(z.read(pkl)))
        obj = up.load()
        storages = {key: _array(z.read(root + "data/" + key), kind) for key, kind in up.kinds.items()}
        return _materialise(obj, storages)
    f = io.BytesIO(data)
    if pickle.load(f) != MAGIC:
        raise ValueError(f"{path}: not a PyTorch checkpoint")
    pickle.load(f)  # protocol version
    pickle.load(f)  # system info
    up = _Unpickler(f)
    obj = up.load()
    kinds = up.kinds
    keys = pickle.load(f)
    storages = {}
    for key in keys:
        (n,) = struct.unpack("<q", f.read(8))
        kind = kinds[key]
        item = 2 if kind == "bf16" else np.dtype(STORAGES[kind]).itemsize
        storages[key] = _array(f.read(n * item), kind)
    return _materialise(obj, storages)
