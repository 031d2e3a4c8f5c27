"""Moving PyTorch's sample arguments into dlg and comparing results: torch tensors become dlg
tensors (one dlg tensor per torch tensor, so a tensor passed twice is one leaf), torch dtypes,
sizes and devices their dlg spellings; outputs are compared as nested structures, a difference
described in one line that names where it is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import dlg

DTYPES = {torch.float16: dlg.float16, torch.float32: dlg.float32, torch.float64: dlg.float64,
          torch.int32: dlg.int32, torch.int64: dlg.int64, torch.bool: dlg.bool,
          torch.uint8: dlg.uint8, torch.int8: dlg.int8, torch.int16: dlg.int16}


DTYPES.update({torch.complex64: dlg.complex64, torch.complex128: dlg.complex128})


class NoCounterpart(Exception):
    """A torch value dlg has no spelling for (a dtype such as uint16): dlg cannot take it."""


def to_dlg(value: Any, memo: dict[int, Any]) -> Any:
    """`value` with every torch object replaced by its dlg counterpart (lists, tuples and dicts
    walked); other values pass unchanged, for dlg to take or refuse."""
    if isinstance(value, torch.Tensor):
        if id(value) not in memo:
            memo[id(value)] = dlg.tensor(value.detach().numpy(),
                                         requires_grad=value.requires_grad)
        return memo[id(value)]
    if isinstance(value, torch.dtype):
        if value not in DTYPES:
            raise NoCounterpart(f"dlg has no dtype for {value}")
        return DTYPES[value]
    if isinstance(value, torch.Size):
        return tuple(value)
    if isinstance(value, torch.device):
        return value.type
    if isinstance(value, (torch.memory_format, torch.layout)):
        return getattr(dlg, str(value).removeprefix("torch."))
    if isinstance(value, list):
        return [to_dlg(v, memo) for v in value]
    if isinstance(value, tuple):
        return tuple(to_dlg(v, memo) for v in value)
    if isinstance(value, dict):
        return {k: to_dlg(v, memo) for k, v in value.items()}
    return value


def leaves(value: Any, kind: type) -> list[Any]:
    """The objects of type `kind` in a nested structure, in order, each once."""
    found: dict[int, Any] = {}

    def walk(v: Any) -> None:
        if isinstance(v, kind):
            found.setdefault(id(v), v)
        elif isinstance(v, (list, tuple)):
            for item in v:
                walk(item)
        elif isinstance(v, dict):
            for item in v.values():
                walk(item)
    walk(value)
    return list(found.values())


def rebuild(value: Any, replace: Callable[[Any], Any], kind: type) -> Any:
    """`value` with every object of type `kind` replaced by `replace(obj)`."""
    if isinstance(value, kind):
        return replace(value)
    if isinstance(value, (list, tuple)):
        items = [rebuild(v, replace, kind) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {k: rebuild(v, replace, kind) for k, v in value.items()}
    return value


def flat_outputs(value: Any) -> list[Any]:
    """An op's outputs in order, tuples (torch.return_types, dlg's MaxResult) flattened."""
    if isinstance(value, (list, tuple)):
        return [o for v in value for o in flat_outputs(v)]
    return [value]


def array_difference(got: np.ndarray, want: np.ndarray, rtol: float, atol: float,
                     what: str, against: str = "torch") -> str | None:
    """None when `got` matches `want` (shape, dtype kind, values: exact for ints and bools,
    within tolerance for floats, NaN where NaN), else one line saying where they differ."""
    if got.shape != want.shape:
        return f"{what}shape {list(got.shape)} != {against} {list(want.shape)}"
    if want.dtype.kind in "fc":  # complex: within tolerance of the complex difference
        wide = np.complex128 if want.dtype.kind == "c" else np.float64
        close = np.isclose(got.astype(wide), want.astype(wide), rtol, atol, equal_nan=True)
    else:
        close = got == want
    if close.all():
        return None
    at = tuple(int(i) for i in np.argwhere(~close)[0])
    return (f"{what}{int((~close).sum())} of {close.size} values differ; at {list(at)} dlg "
            f"{got[at].item()!r} {against} {want[at].item()!r}")


def difference(got: Any, want: Any, rtol: float, atol: float, values: bool = True,
               where: str = "") -> str | None:
    """None when dlg's result `got` is torch's `want` (structure, shapes, dtypes and, with
    `values`, values); else the first difference in one line."""
    what = f"output{where}: " if where else ""
    if isinstance(want, torch.Tensor):
        if not isinstance(got, dlg.Tensor):
            return f"{what}dlg returned {type(got).__name__}, torch a tensor"
        if DTYPES.get(want.dtype) is not got.dtype:
            return f"{what}dtype {got.dtype!r} != torch {want.dtype}"
        if not values:
            return None if got.shape == tuple(want.shape) else (
                f"{what}shape {list(got.shape)} != torch {list(want.shape)}")
        return array_difference(np.asarray(got.detach().numpy()),
                                want.detach().resolve_conj().resolve_neg().numpy(), rtol, atol,
                                what)
    if isinstance(want, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(want):
            return f"{what}dlg returned {_kind(got)}, torch {_kind(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            diff = difference(g, w, rtol, atol, values, f"{where}[{i}]")
            if diff:
                return diff
        return None
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return None if np.isclose(got, want, rtol, atol, equal_nan=True) else (
            f"{what}{got!r} != torch {want!r}")
    if type(got) is not type(want) or got != want:
        return f"{what}dlg returned {got!r}, torch {want!r}"
    return None


def _kind(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


def describe(value: Any) -> str:
    """A sample argument in short: tensors as dtype[shape], everything else as repr."""
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        contiguous = "" if value.is_contiguous() else " non-contiguous"
        return f"{dtype}{list(value.shape)}{contiguous}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(describe(v) for v in value)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={describe(v)}" for k, v in value.items()) + "}"
    return repr(value)
