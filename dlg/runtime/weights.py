"""Weights on disk: `.safetensors` (the format PyTorch and Hugging Face share; the safetensors
library parses it safely and without pickle) or NumPy `.npz` (read with allow_pickle=False).
Names are the PyTorch-style parameter names, so files move between dlg and PyTorch as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file
from safetensors.numpy import save as save_tensors

from dlg.errors import DlgValueError
from dlg.files import atomic_write, write_bytes

FORMATS = (".safetensors", ".npz")


def _format(path: Path) -> str:
    if path.suffix not in FORMATS:
        raise DlgValueError(f"{path}: weights are .safetensors or .npz files, "
                            f"not {path.suffix or 'a file without a suffix'}")
    return path.suffix


def save_weights(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Written atomically (dlg.files): a failed write leaves the old file as it was."""
    path = Path(path)
    contiguous: dict[str, Any] = {k: np.array(v, order="C") for k, v in arrays.items()}
    if _format(path) == ".safetensors":
        write_bytes(path, save_tensors(contiguous))
        return
    with atomic_write(path) as f:
        np.savez(f, **contiguous)


def load_weights(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    kind = _format(path)
    try:
        if kind == ".safetensors":
            return dict(load_file(str(path)))
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except FileNotFoundError:
        raise DlgValueError(f"{path}: no such file") from None
    except (OSError, ValueError, SafetensorError, EOFError) as e:
        raise DlgValueError(f"{path} is not a valid {kind} file ({e})") from None
