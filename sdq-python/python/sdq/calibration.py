"""Calibration Gram files for ``sdq pack --calibration GRAM.safetensors`` (pure numpy).

For a linear layer ``y = W x + b`` with ``W`` of shape ``[out, in]``, the Gram file holds a
tensor **with the weight's name** (e.g. ``"encoder.layer.0.attention.self.query.weight"``):

* full mode: ``H = mean(x xᵀ)`` of shape ``[in, in]`` over every calibration input vector
  ``x`` of the layer (every token of every sentence, every image of a batch, ...); symmetric
  positive semi-definite;
* diagonal mode: ``mean(x²)`` of shape ``[in]`` (an importance vector, like llama.cpp's
  imatrix).

The bias's input is the constant 1 and is not part of the file. See docs/calibration.md.

Example::

    import numpy as np
    from sdq.calibration import GramAccumulator

    acc = GramAccumulator()
    for batch in batches:                      # activations you recorded, [..., in]
        acc.update("fc1.weight", batch)
    acc.save("gram.safetensors")               # F32; dtype="F64" keeps float64
"""

import json
import os
import tempfile

import numpy as np

__all__ = ["GramAccumulator", "save_safetensors"]

_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}


class GramAccumulator:
    """Accumulates, per tensor name, the sum of ``x xᵀ`` (or of ``x²`` with ``diagonal=True``)
    and the number of vectors ``x``, in float64.

    ``update(name, x)`` takes activations of shape ``[..., in]`` (leading axes are flattened:
    ``[tokens, in]``, ``[batch, seq, in]``, ...); ``gram(name)`` is the mean; ``save(path)``
    writes every name's mean to a safetensors file.
    """

    def __init__(self, diagonal=False):
        self.diagonal = bool(diagonal)
        self._sums = {}
        self._counts = {}

    def update(self, name, x):
        """Adds the vectors of ``x`` (a numpy array ``[..., in]`` of any float dtype) to the
        statistics of ``name``.

        Raises ``ValueError`` (naming the tensor) if ``x`` is not a floating-point array of
        rank >= 1 with ``in >= 1``, holds NaN or infinity, or its ``in`` differs from earlier
        updates of the same name; ``TypeError`` if ``name`` is not a non-empty string.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"the tensor name must be a non-empty string, not {name!r}")
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise ValueError(f"{name}: activations must be a floating-point array, "
                             f"not dtype {x.dtype}")
        if x.ndim < 1 or x.shape[-1] == 0:
            raise ValueError(f"{name}: activations must have shape [..., in] with in >= 1, "
                             f"not {x.shape}")
        n_in = x.shape[-1]
        x = x.reshape(-1, n_in).astype(np.float64, copy=False)
        if not np.isfinite(x).all():
            bad = int(np.count_nonzero(~np.isfinite(x)))
            raise ValueError(f"{name}: activations hold {bad} non-finite value(s) (NaN or "
                             f"infinity); not accumulated")
        if name in self._sums:
            have = self._sums[name].shape[0]
            if have != n_in:
                raise ValueError(f"{name}: activations have in = {n_in}, earlier updates of "
                                 f"this tensor had in = {have}")
        else:
            shape = (n_in,) if self.diagonal else (n_in, n_in)
            self._sums[name] = np.zeros(shape, dtype=np.float64)
            self._counts[name] = 0
        if x.shape[0] == 0:
            return
        if self.diagonal:
            self._sums[name] += np.einsum("ti,ti->i", x, x)
        else:
            self._sums[name] += x.T @ x
        self._counts[name] += x.shape[0]

    def names(self):
        """The tensor names seen so far, in order of their first update."""
        return list(self._sums)

    def count(self, name):
        """How many vectors ``x`` were accumulated for ``name``."""
        self._check_name(name)
        return self._counts[name]

    def gram(self, name):
        """The mean of ``x xᵀ`` (``[in, in]``, symmetric) or, in diagonal mode, of ``x²``
        (``[in]``) over every vector accumulated for ``name``, as float64.

        Raises ``KeyError`` for an unknown name and ``ValueError`` if no vector was
        accumulated (only empty arrays were given).
        """
        self._check_name(name)
        n = self._counts[name]
        if n == 0:
            raise ValueError(f"{name}: no activation vector was accumulated (only empty "
                             f"arrays), so the mean is undefined")
        g = self._sums[name] / n
        if not self.diagonal:
            g = 0.5 * (g + g.T)  # exactly symmetric
        return g

    def save(self, path, dtype="F32", metadata=None):
        """Writes every name's mean (``gram(name)``) to the safetensors file ``path``.

        ``dtype``: ``"F32"`` (default) or ``"F64"``. ``metadata``: an optional dict of
        strings stored in the header's ``__metadata__``. The file is written to a temporary
        file in the same directory and renamed over ``path``, so a reader never sees a
        partial file. Raises ``ValueError`` if nothing was accumulated.
        """
        if not self._sums:
            raise ValueError("no tensor was accumulated: nothing to save")
        # one tensor in memory at a time (a model's Gram matrices can be gigabytes)
        _write(path, [(k, self._sums[k].shape, lambda k=k: self.gram(k)) for k in self._sums],
               dtype, metadata)

    def _check_name(self, name):
        if name not in self._sums:
            known = ", ".join(list(self._sums)[:5]) or "none"
            raise KeyError(f"{name!r}: no activations were accumulated for this tensor "
                           f"(known: {known}{', ...' if len(self._sums) > 5 else ''})")


def save_safetensors(tensors, path, dtype="F32", metadata=None):
    """Writes a dict ``{name: float array}`` to a safetensors file with numpy only, every
    tensor converted to ``dtype`` (``"F32"`` or ``"F64"``), little-endian, in the dict's order.

    Layout: an 8-byte little-endian header length, the JSON header (``dtype``, ``shape``,
    ``data_offsets`` per tensor, optional ``__metadata__``) padded with spaces to a multiple
    of 8 bytes, then the tensors' bytes. Written atomically (temporary file, then rename).
    """
    items = []
    for name, a in tensors.items():
        a = np.asarray(a)
        items.append((name, a.shape, lambda a=a: a))
    _write(path, items, dtype, metadata)


def _write(path, items, dtype, metadata):
    """items: (name, shape, function returning the array) in file order."""
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, not {dtype!r}")
    dt = _DTYPES[dtype]
    header = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError("metadata must be a dict of strings to strings")
        header["__metadata__"] = dict(metadata)
    off = 0
    for name, shape, _ in items:
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved by the safetensors format")
        if not isinstance(name, str) or not name:
            raise ValueError(f"tensor names must be non-empty strings, not {name!r}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        header[name] = {"dtype": dtype, "shape": [int(d) for d in shape],
                        "data_offsets": [off, off + nbytes]}
        off += nbytes
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".gram-", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(len(hb).to_bytes(8, "little"))
            f.write(hb)
            for name, shape, get in items:
                a = np.asarray(get())
                if a.dtype.kind != "f" or a.shape != tuple(shape):
                    raise ValueError(f"{name}: expected a float array of shape "
                                     f"{tuple(shape)}, got {a.dtype} {a.shape}")
                with np.errstate(over="ignore"):  # past the F32 range: refused just below
                    a = np.ascontiguousarray(a, dtype=dt)
                if not np.isfinite(a).all():
                    raise ValueError(f"{name}: holds non-finite values (NaN, infinity, or "
                                     f"past the {dtype} range)")
                f.write(a.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the Gram file private
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
