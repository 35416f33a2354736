"""sdq: frame-quantized neural-network weights (.sdq files) with numpy.

Load, lazily open, pack and inspect .sdq files (the native extension ``sdq._native``, whose
names are re-exported here), and build calibration Gram files for ``sdq pack --calibration``
(:mod:`sdq.calibration`, pure numpy).
"""

from ._native import (
    ChecksumError,
    DataError,
    FormatError,
    IoError,
    LimitError,
    NoSuchTensorError,
    ParameterError,
    SdqError,
    __version__,
    info,
    load_file,
    pack,
    safe_open,
    safe_slice,
)
from . import calibration

__all__ = [
    "ChecksumError",
    "DataError",
    "FormatError",
    "IoError",
    "LimitError",
    "NoSuchTensorError",
    "ParameterError",
    "SdqError",
    "__version__",
    "calibration",
    "info",
    "load_file",
    "pack",
    "safe_open",
    "safe_slice",
]
