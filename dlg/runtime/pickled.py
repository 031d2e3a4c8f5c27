""".pt/.pth files: a state_dict, or a torch-style checkpoint nesting several (`{"model":
model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}`): dicts, lists and tuples whose
leaves are arrays, numbers, strings and None.

With torch installed a file is torch.save's (torch.load reads it; arrays are stored as torch
tensors) and is read back with `torch.load(weights_only=True)`, which unpickles tensors and
containers only. Without torch, dlg writes the same nest as a plain pickle (protocol 4) of NumPy
arrays and reads it with an unpickler that admits NumPy arrays and containers alone, so loading
runs no code named in the file; torch.load cannot read such a file (save it where torch is
installed to share it).

A whole dlg module (`torch.save(model, path)`, the Save & Load tutorial's "models with shapes")
is pickled as it is, in torch.save's format when torch is installed and as a plain pickle
otherwise; as with torch's own, reading it back needs `dlg.load(path, weights_only=False)`,
which unpickles whatever the file names (so only for trusted files): by default loading refuses
the file and says so.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from dlg.errors import DlgImportError, DlgValueError
from dlg.files import atomic_write
from dlg.ir.dtypes import DType
from dlg.optional import optional_import

SCALARS = (bool, int, float, str, type(None))


def torch_module() -> Any:
    """The `torch` package, or a DlgImportError saying how to install it."""
    return optional_import("torch", "PyTorch models and .pt/.pth files", "pip install torch")


def convert(tree: Any, leaf: Callable[[Any, str], Any], where: str = "the state") -> Any:
    """`tree` with every leaf that is not a number, string or None replaced by `leaf(value,
    where)` (dicts, lists and tuples rebuilt around them; `where` names the leaf's place, as
    `ckpt['model']['weight']`); `leaf` returns None for a value it cannot take, which is a
    DlgValueError naming where the value sits."""
    if isinstance(tree, np.generic):
        return tree.item()
    if isinstance(tree, SCALARS):
        return tree
    if isinstance(tree, Mapping):
        made = OrderedDict if isinstance(tree, OrderedDict) else dict
        return made((k, convert(v, leaf, f"{where}[{k!r}]")) for k, v in tree.items())
    if isinstance(tree, (list, tuple)):
        items = [convert(v, leaf, f"{where}[{i}]") for i, v in enumerate(tree)]
        return items if isinstance(tree, list) else tuple(items)
    out = leaf(tree, where)
    if out is None:
        raise DlgValueError(f"{where} is a {type(tree).__name__}: .pt/.pth files hold tensors, "
                            f"arrays, numbers, strings and None in dicts, lists and tuples")
    return out


def save_tree(target: Path | IO[bytes], tree: Any) -> None:
    """Write a nest of C-contiguous arrays (see the module docstring) to a path, atomically, or
    to an open binary file (torch.save's `io.BytesIO()`)."""
    tree = convert(tree, _array)
    if hasattr(target, "write"):
        _dump(tree, target)  # type: ignore[arg-type]
        return
    with atomic_write(target) as f:  # type: ignore[arg-type]
        _dump(tree, f)


def _dump(tree: Any, f: IO[bytes]) -> None:
    torch = _torch_or_none()
    if torch is None:
        pickle.dump(tree, f, protocol=4)
    else:
        torch.save(convert(tree, lambda a, _: torch.from_numpy(a)), f)


def load_tree(source: Path | IO[bytes]) -> Any:
    """The nest in a .pt/.pth file (or an open binary file), its tensors as NumPy arrays."""
    path = source if isinstance(source, Path) else getattr(source, "name", "the file")
    suffix = source.suffix if isinstance(source, Path) else ""
    try:
        if _is_zip(source):  # torch.save's format
            return convert(_torch_load(source), _torch_array(), getattr(path, "name", path))
        if isinstance(source, Path):
            with open(source, "rb") as f:
                return _ArraysOnly(f).load()
        return _ArraysOnly(source).load()
    except FileNotFoundError:
        raise DlgValueError(f"{path}: no such file") from None
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found is None:
            raise DlgValueError(f"{path} is not a valid {suffix or 'torch.save'} file (it cannot "
                                f"be unpickled)") from None
        raise PickledObjects(f"{path} holds a pickled {found[1]}, not only tensors (a whole "
                             f"module saved with torch.save(model)?); load a file you trust "
                             f"with weights_only=False, or save and load the state_dict: "
                             f"torch.save(model.state_dict(), path)") from None
    except (OSError, ValueError, EOFError, RuntimeError) as e:
        raise DlgValueError(f"{path} is not a valid {suffix or 'torch.save'} file ({e})"
                            ) from None


class PickledObjects(DlgValueError):
    """A .pt file holding more than tensors and containers, read with weights_only on."""


def save_object(target: Path | IO[bytes], obj: Any) -> None:
    """A whole object (a module) pickled as it is: torch.save's format with torch installed (its
    dlg tensors pickle their arrays), a plain pickle otherwise."""
    torch = _torch_or_none()
    if not hasattr(target, "write"):
        with atomic_write(target) as f:  # type: ignore[arg-type]
            save_object(f, obj)
        return
    if torch is None:
        pickle.dump(obj, target, protocol=4)  # type: ignore[arg-type]
    else:
        torch.save(obj, target)


def load_object(source: Path | IO[bytes]) -> Any:
    """What `save_object` wrote, or any pickle (weights_only=False: the file's code runs)."""
    if isinstance(source, Path) and not source.exists():
        raise DlgValueError(f"{source}: no such file")
    if _is_zip(source):
        return torch_module().load(source, weights_only=False, map_location="cpu")
    if isinstance(source, Path):
        with open(source, "rb") as f:
            return pickle.load(f)  # noqa: S301  (weights_only=False asks for it)
    return pickle.load(source)  # type: ignore[arg-type]  # noqa: S301


def load_allowed(source: Path | IO[bytes], allowed: list[Any]) -> Any:
    """A weights_only load that also admits the classes and functions in `allowed` (the
    dlg.serialization allowlist): torch.load's own under torch's safe_globals, or dlg's
    unpickler with them added; a global outside them is still refused unread."""
    path = source if isinstance(source, Path) else getattr(source, "name", "the file")
    try:
        if _is_zip(source):
            torch = torch_module()
            with torch.serialization.safe_globals(allowed):
                return torch.load(source, weights_only=True, map_location="cpu")
        names = {(getattr(o, "__module__", ""), getattr(o, "__qualname__", "")) for o in allowed}

        class Allowed(_ArraysOnly):
            ALLOWED = _ArraysOnly.ALLOWED | names | {("builtins", "set"), ("_codecs", "encode")}

        if isinstance(source, Path):
            with open(source, "rb") as f:
                return Allowed(f).load()
        return Allowed(source).load()
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        raise PickledObjects(f"{path} holds a pickled {found[1] if found else 'object'} that "
                             f"is not in the safe globals; add it with dlg.serialization."
                             f"safe_globals([...]) or add_safe_globals, or load a file you "
                             f"trust with weights_only=False") from None


def _is_zip(source: Path | IO[bytes]) -> bool:
    """Whether `source` is a zip archive; an open file is left where it was."""
    if isinstance(source, Path):
        return zipfile.is_zipfile(source)
    start = source.tell()
    try:
        return zipfile.is_zipfile(source)
    finally:
        source.seek(start)


def is_pickled(path: Path) -> bool:
    """Whether the file at `path` is torch.save's (a zip archive) or a pickle, by its first
    bytes (a checkpoint saved without a suffix, where a .dlg source would be text)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head.startswith((b"PK\x03\x04", b"\x80"))


def _torch_or_none() -> Any:
    try:
        return torch_module()
    except DlgImportError:
        return None


def _array(value: Any, where: str) -> np.ndarray | None:
    return value if isinstance(value, np.ndarray) else None


def _torch_load(source: Path | IO[bytes]) -> Any:
    return torch_module().load(source, weights_only=True, map_location="cpu")


def _torch_array() -> Callable[[Any, str], np.ndarray | None]:
    """A torch tensor's values as an array (None for anything else); a dtype dlg lacks is a
    DlgValueError."""
    torch = torch_module()
    dtypes = {d.torch_name for d in DType}

    def array(value: Any, where: str) -> np.ndarray | None:
        if not isinstance(value, torch.Tensor):
            return None
        if str(value.dtype).removeprefix("torch.") not in dtypes:
            raise DlgValueError(f"{where} is {value.dtype}; dlg has "
                                f"{', '.join(sorted(dtypes))}")
        return value.detach().cpu().numpy()

    return array


class _ArraysOnly(pickle.Unpickler):
    """Unpickles containers and NumPy arrays, nothing else (dlg's pickles without torch)."""

    ALLOWED = {("collections", "OrderedDict"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"Unsupported global: GLOBAL {module}.{name}")
        return super().find_class(module, name)
