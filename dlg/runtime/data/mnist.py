"""MNIST's IDX files (http://yann.lecun.com/exdb/mnist/): a big-endian header (two zero bytes,
a dtype code, the number of dims, one u32 per dim) and the raw data. Read from a local folder,
.gz or not; `write_idx` makes them (tests, or exporting data for other tools)."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

from dlg.errors import DlgValueError
from dlg.files import atomic_write

CODES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
         0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DlgValueError(f"{path}: no such file") from None
    except (OSError, EOFError) as e:
        raise DlgValueError(f"{path}: cannot read it ({e})") from None


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (native byte order)."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in CODES:
        raise DlgValueError(f"{path}: not an IDX file (bad magic number "
                            f"{data[:4].hex() or 'missing'})")
    dtype, ndim = CODES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DlgValueError(f"{path}: truncated IDX header ({len(data)} bytes, {ndim} dims)")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    expected = header + math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if len(data) != expected:
        raise DlgValueError(f"{path}: the header says shape {list(shape)} ({expected} bytes) but "
                            f"the file has {len(data)} bytes")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write `array` as an IDX file (gzip-compressed when the name ends in .gz)."""
    path = Path(path)
    array = np.asarray(array)
    code = next((c for c, d in CODES.items() if d.newbyteorder("=") == array.dtype), None)
    if code is None:
        raise DlgValueError(f"IDX files hold u8, i8, i16, i32, f32 or f64, not {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + array.astype(CODES[code]).tobytes()
    with atomic_write(path) as f:
        if path.suffix == ".gz":
            with gzip.GzipFile(path.name, "wb", fileobj=f) as z:
                z.write(data)
        else:
            f.write(data)


def _find(folder: Path, name: str) -> Path:
    candidates = [name, name + ".gz", name.replace("-idx", ".idx"),
                  name.replace("-idx", ".idx") + ".gz"]
    for c in candidates:
        if (folder / c).is_file():
            return folder / c
    raise DlgValueError(f"{folder}: no {name} (looked for {', '.join(candidates)})")


def load_mnist(folder: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(x, y) from the standard MNIST files in `folder`: x float32 [N, 1, 28, 28] in [0, 1],
    y int64 [N]."""
    if split not in NAMES:
        raise DlgValueError(f"load_mnist: split is train or test, got {split!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise DlgValueError(f"{folder}: no such folder (it should hold MNIST's IDX files: "
                            f"{', '.join(NAMES[split])})")
    images_path, labels_path = (_find(folder, n) for n in NAMES[split])
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1:
        raise DlgValueError(f"{folder}: expected images [N, rows, cols] and labels [N], got "
                            f"{list(images.shape)} and {list(labels.shape)}")
    if len(images) != len(labels):
        raise DlgValueError(f"{folder}: {len(images)} images but {len(labels)} labels")
    x = np.divide(images[:, None], np.float32(255), dtype=np.float32)  # one pass, one array
    return x, labels.astype(np.int64)
