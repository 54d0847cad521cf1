"""The IDX file format of (Fashion-)MNIST: a 4-byte magic ``0 0 <dtype> <ndim>``, ``ndim``
big-endian uint32 dimensions, then the array in C order (big-endian for multi-byte types).
Files may be gzip-compressed (``.gz``).

Why not torchvision's reader (``torchvision.datasets.mnist.read_image_file``, 0.29.1): it
opens its path with the builtin ``open``, so it cannot read the ``.gz`` files that Debian's
``dataset-fashion-mnist`` and ``shared/data/mnist-t10k`` ship (it fails with a bare
``AssertionError``, no file named); it checks the header with ``assert`` (gone under
``python -O``) and, for images and labels, not the file size. Using it means gunzipping
each file to disk first (55 MB for Fashion-MNIST), which is no faster:
``benchmarks/idx_reader.py`` read Fashion-MNIST's 10000 test images in 143 ms here and in
192 ms by gunzip-then-torchvision (1.34x; 1.00x for the 60000 training images), on 2 AMD
EPYC cores (AVX-512) at load average 13-15. Decompression dominates both. The tests check
that this reader and torchvision's agree on every IDX type (tests/dino_core/test_data_idx.py).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}


class IdxFormatError(ValueError):
    """A file that is not valid IDX; the message names the file."""


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally ``.gz``) into a native-endian numpy array."""
    p = Path(path)
    try:
        data = _read_bytes(p)
    except (OSError, EOFError) as err:
        raise IdxFormatError(f"cannot read IDX file {str(p)!r}: {err}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise IdxFormatError(f"{str(p)!r} is not an IDX file (bad magic {data[:4]!r})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxFormatError(f"{str(p)!r}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[data[2]])
    count = int(np.prod(dims)) if dims else 1
    expected = header + count * dtype.itemsize
    if len(data) != expected:
        raise IdxFormatError(
            f"{str(p)!r}: IDX header says {dims} of {dtype} ({expected} bytes) "
            f"but the file holds {len(data)} bytes"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as IDX (gzip-compressed when ``path`` ends in ``.gz``)."""
    arr = np.asarray(array)
    big = arr.dtype.newbyteorder(">") if arr.dtype.itemsize > 1 else arr.dtype
    code = _CODES.get(big)
    if code is None:
        raise IdxFormatError(f"IDX cannot store dtype {arr.dtype}")
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    payload = header + arr.astype(big, copy=False).tobytes(order="C")
    p = Path(path)
    if p.suffix == ".gz":
        with gzip.open(p, "wb") as f:
            f.write(payload)
    else:
        p.write_bytes(payload)
