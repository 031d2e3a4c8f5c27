"""torch's index_put / index_put_: `x[indices] = values` (or `+=` with `accumulate`, where
repeated positions add up) for a tuple of index tensors, as a function. The first k dims of x
are flattened into one, the broadcast indices into positions along it, and the values written
with index_copy or added with index_add along it, so gradients reach x and the values. Boolean
masks become their nonzero positions (eager only: their count depends on the data)."""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.foreign import type_name
from dlg.frontend import inplace, selection
from dlg.frontend.engine import caller_span
from dlg.frontend.tensor import Tensor, call, foreign_tensors
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import broadcast_shapes


def _positions(x: Tensor, indices: Any) -> list[Tensor]:
    """The index tensors, masks expanded to positions, checked against x's leading dims."""
    if not isinstance(indices, (tuple, list)):
        raise DlgTypeError(f"index_put: indices must be a tuple of tensors, got "
                           f"{type(indices).__name__}", caller_span())
    out: list[Tensor] = []
    for i in foreign_tensors(list(indices)):  # torch's index tensors: dlg's
        if not isinstance(i, Tensor):
            raise DlgTypeError(f"index_put: each index must be a tensor (torch's None for a "
                               f"whole dim is not supported: index with x[...] = v), got "
                               f"{type_name(i)}", caller_span())
        if i.dtype == DType.bool:
            out.extend(selection.nonzero(i, as_tuple=True))
        elif i.dtype in (DType.i32, DType.i64):
            out.append(i.to(DType.i64))
        else:
            raise DlgTypeError(f"index_put: tensors used as indices must be long, int or bool "
                               f"tensors, got {i.dtype}", caller_span())
    if len(out) > x.ndim:
        raise DlgShapeError(f"index_put: too many indices for a tensor of dimension {x.ndim} "
                            f"(got {len(out)})", caller_span())
    return out


def index_put(input: Tensor, indices: Any, values: Any,  # noqa: A002 (torch's names)
              accumulate: bool = False) -> Tensor:
    """input with `values` written at `indices` (added there, repeats summed, when
    `accumulate`); values broadcast to the indices' shape followed by input's other dims."""
    positions = _positions(input, indices)
    k = len(positions)
    lead, rest = tuple(input.shape[:k]), tuple(input.shape[k:])
    try:
        shape = broadcast_shapes("index_put: the indices", *(tuple(p.shape) for p in positions))
    except DlgShapeError as e:
        raise e.with_span(caller_span()) from None
    flat_index: Any = 0
    for p, size in zip(positions, lead):
        flat_index = flat_index * size + call("where", p < 0, p + size, p)
    flat_index = (flat_index if isinstance(flat_index, Tensor) else
                  Tensor.of(flat_index).to(DType.i64)).expand(shape).reshape(-1)
    values = values if isinstance(values, Tensor) else Tensor.of(values)
    try:
        values = values.to(input.dtype).expand(shape + rest).reshape((-1,) + rest)
    except DlgShapeError:
        raise DlgShapeError(f"index_put: values of shape {tuple(values.shape)} cannot be "
                            f"broadcast to the indexed shape {shape + rest}",
                            caller_span()) from None
    flat = input.reshape((-1,) + rest)
    out = (call("index_add", flat, 0, flat_index, values) if accumulate
           else call("index_copy", flat, 0, flat_index, values))
    return out.reshape(input.shape)


def index_put_(self: Tensor, indices: Any, values: Any, accumulate: bool = False) -> Tensor:
    """index_put written into self (frontend/inplace.py)."""
    tensors = [t for t in (*indices, values) if isinstance(t, Tensor)] if isinstance(
        indices, (tuple, list)) else []
    return inplace.update(self, lambda s: index_put(s, indices, values, accumulate), *tensors)


Tensor.index_put = index_put  # type: ignore[attr-defined]
Tensor.index_put_ = index_put_  # type: ignore[attr-defined]

__all__ = ["index_put"]
