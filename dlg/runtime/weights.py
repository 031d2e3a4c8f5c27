"""Weights on disk: `.safetensors` (the format PyTorch and Hugging Face share; the safetensors
library parses it safely and without pickle), NumPy `.npz` (read with allow_pickle=False) or
PyTorch's `.pt`/`.pth` state_dicts (torch.save's files, read with `weights_only=True`, which
unpickles tensors and containers only; dlg.runtime.pickled says what is written without torch).
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
from dlg.runtime.pickled import load_tree, save_tree

FORMATS = (".safetensors", ".npz", ".pt", ".pth")
TORCH_FORMATS = (".pt", ".pth")


def _format(path: Path) -> str:
    if path.suffix not in FORMATS:
        raise DlgValueError(f"{path}: weights are {', '.join(FORMATS)} files, "
                            f"not {path.suffix or 'a file without a suffix'}")
    return path.suffix


def save_weights(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Written atomically (dlg.files): a failed write leaves the old file as it was."""
    path = Path(path)
    contiguous: dict[str, Any] = {k: np.array(v, order="C") for k, v in arrays.items()}
    if _format(path) == ".safetensors":
        write_bytes(path, save_tensors(contiguous))
        return
    if path.suffix in TORCH_FORMATS:
        save_tree(path, contiguous)
        return
    with atomic_write(path) as f:
        np.savez(f, **contiguous)


def load_weights(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    kind = _format(path)
    try:
        if kind == ".safetensors":
            return dict(load_file(str(path)))
        if kind in TORCH_FORMATS:
            return _load_torch(path)
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except FileNotFoundError:
        raise DlgValueError(f"{path}: no such file") from None
    except (OSError, ValueError, SafetensorError, EOFError, RuntimeError) as e:
        raise DlgValueError(f"{path} is not a valid {kind} file ({e})") from None


def _load_torch(path: Path) -> dict[str, np.ndarray]:
    """A torch.save'd state_dict (or dlg's pickle of one, see dlg.runtime.pickled)."""
    state = load_tree(path)
    if not isinstance(state, Mapping):
        raise DlgValueError(f"{path} holds a {type(state).__name__}, not a state_dict")
    wrong = [k for k, v in state.items() if not isinstance(v, np.ndarray)]
    if wrong:
        raise DlgValueError(f"{path} is not a state_dict of tensors: {', '.join(map(str, wrong))} "
                            f"{'are' if len(wrong) > 1 else 'is'} not tensors (a checkpoint? "
                            f"save its model's state_dict, or read it with dlg.load)")
    return {str(k): v for k, v in state.items()}
