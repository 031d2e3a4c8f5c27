"""Arrays of other libraries where dlg takes a NumPy array: a torch.Tensor from a torchvision
dataset or a torch DataLoader, a JAX array, any CPU array exposing `__dlpack__` or `__array__`.

A program ported piece by piece keeps torch's data pipeline and swaps the model, loss and
optimizer to dlg, so the tensors torch yields must enter dlg as NumPy arrays do. Nothing here
imports torch: a foreign array is recognised by its protocols, a torch tensor by its class's
module. The memory is shared where the owner allows it (torch's `detach().numpy()`, DLPack);
a read-only export (JAX's) is copied, since a dlg tensor can be written in place. What cannot be
shared without changing the program's meaning is a DlgTypeError saying what to do: a torch tensor
that requires grad (its gradient would not reach torch's autograd: `.detach()`) or one on a GPU
(`.cpu()`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgTypeError

_DLPACK_DEVICES = {1: "cpu", 2: "cuda", 3: "cuda host memory", 4: "opencl", 7: "vulkan",
                   8: "metal", 9: "vpi", 10: "rocm", 11: "rocm host memory", 13: "cuda managed "
                   "memory", 14: "oneapi", 15: "webgpu", 16: "hexagon", 17: "maia"}


def type_name(value: Any) -> str:
    """The class of `value` as its users spell it, with its module (`torch.Tensor`,
    `jaxlib._jax.ArrayImpl`), so an error about a foreign tensor does not read as dlg's own."""
    cls = type(value)
    module = cls.__module__
    if module in ("builtins", None) or module == "dlg" or module.startswith("dlg."):
        return cls.__qualname__  # dict, Linear
    return f"{module}.{cls.__qualname__}"


def is_foreign(value: Any) -> bool:
    """Whether `value` is another library's array: an object exposing `__dlpack__` or
    `__array__` that is neither a NumPy array or scalar nor one of dlg's own."""
    cls = type(value)
    if cls is np.ndarray or isinstance(value, (np.ndarray, np.generic)):
        return False
    if not (hasattr(cls, "__dlpack__") or hasattr(cls, "__array__")):
        return False
    module = cls.__module__ or ""
    return module != "dlg" and not module.startswith("dlg.")


def numpy_of(value: Any) -> np.ndarray:
    """The foreign array `value` as a NumPy array sharing its memory where the owner allows it;
    a DlgTypeError (without a span: callers add theirs) for what dlg cannot take as data."""
    if (type(value).__module__ or "").split(".")[0] == "torch":
        return _torch(value)
    device = getattr(value, "__dlpack_device__", None)
    if device is not None and hasattr(value, "__dlpack__"):
        kind, index = (int(v) for v in device())
        if kind != 1:
            where = _DLPACK_DEVICES.get(kind, f"DLPack device {kind}")
            raise DlgTypeError(f"a {type_name(value)} on {where}:{index} cannot be dlg data: dlg's "
                               f"eager tensors live in host memory; copy it to the CPU first "
                               f"(torch's x.cpu(), cupy.asnumpy(x), jax.device_get(x))")
        try:
            return _writable(np.from_dlpack(value))
        except (BufferError, TypeError, RuntimeError, ValueError):
            pass  # a dtype DLPack cannot carry: its __array__ may still convert it
    try:
        return _writable(np.asarray(value))
    except Exception as e:  # noqa: BLE001  (the owner's error, whatever its class, told as ours)
        raise DlgTypeError(f"cannot take a {type_name(value)} as an array: {e}") from None


def asarray(value: Any) -> np.ndarray:
    """`np.asarray(value)`, a foreign array through `numpy_of` (its refusals dlg's)."""
    return numpy_of(value) if is_foreign(value) else np.asarray(value)


def _writable(array: np.ndarray) -> np.ndarray:
    """A read-only export (a JAX array) copied: dlg tensors can be written in place."""
    return array if array.flags.writeable else array.copy()


def _torch(t: Any) -> np.ndarray:
    """A torch tensor's NumPy view, as `t.numpy()` (no torch import: its own methods)."""
    name = type_name(t)
    if not hasattr(t, "numpy") or not hasattr(t, "requires_grad"):  # a torch object, no tensor
        return _writable(np.asarray(t))
    on_cpu = t.device.type == "cpu"
    if t.requires_grad:
        fix = "x.detach()" if on_cpu else "x.detach().cpu()"
        raise DlgTypeError(f"a {name} that requires grad cannot be dlg data: dlg records its own "
                           f"gradients and torch's autograd would not see this use; pass {fix} "
                           f"(or make it with dlg.tensor(..., requires_grad=True))")
    if not on_cpu:
        raise DlgTypeError(f"a {name} on {t.device} cannot be dlg data: dlg's eager tensors live "
                           f"in host memory; pass x.cpu()")
    if str(t.layout) != "torch.strided":
        raise DlgTypeError(f"a {str(t.layout).removeprefix('torch.')} {name} cannot be dlg data; "
                           f"pass x.to_dense()")
    dtype = str(t.dtype).removeprefix("torch.")
    if dtype == "bfloat16":
        raise DlgTypeError(f"a {name} of dtype torch.bfloat16 cannot be dlg data: dlg has no "
                           f"bfloat16 tensors; pass x.float()")
    try:  # a lazy conjugate or negation (x.conj()) is materialised first, as numpy() demands
        return t.resolve_conj().resolve_neg().numpy()
    except (TypeError, RuntimeError) as e:  # a quantised tensor, float8...: torch's reason
        raise DlgTypeError(f"a {name} of dtype torch.{dtype} cannot be dlg data: {e}") from None
