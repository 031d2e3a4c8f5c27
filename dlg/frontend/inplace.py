"""In-place ops (`add_`, `masked_fill_`, `x[idx] = v`, `relu_`, `nn.ReLU(inplace=True)`, ...) as
torch runs them, on every kind of tensor.

`update(x, compute, *args)` is the one protocol: x := compute(x), where compute is the op's
out-of-place form.

* Nothing records a gradient: the new value is written into x's array (NumPy), so views of x
  and other names for it see it; that is all (the fast path).
* A gradient is recorded: the value is written the same way, and x takes the out-of-place
  op's record, so backward differentiates the op applied to x's old value (`Record.sources`
  keeps what earlier readers read). A leaf that does not require grad, given a value that
  does, is copied first: dlg reads leaves again at backward, and the write would change it.
  A view (a record of an `engine.VIEWS` op) also changes its base: the base's new value is its
  old one with the view's elements put back (`put`), and the view is taken again from it, as
  torch's views do. A leaf that requires grad, or a view of one, is torch's error.
* Tracing: x is rebound to the new graph value (SSA: earlier readers keep the old one); a
  module's parameter or buffer becomes a graph update; a traced view rebinds its base too.

Every write stamps x's memory (`versions.written`), so a backward through an op that read the
old value and needs it is refused, as torch's version counter does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.errors import DlgError, DlgShapeError, DlgValueError
from dlg.frontend import engine, versions
from dlg.frontend.tensor import Tensor, op
from dlg.ir.dtypes import DType
from dlg.ir.ops.linalg import DIAGONAL
from dlg.ir.ops.shape import INDEX, SLICE, TRANSPOSE
from dlg.ir.shapes import Sym

LEAF_ERROR = ("a leaf tensor that requires grad (or a view of one) is used in an in-place "
              "operation; update parameters under `with dlg.no_grad():`")


def update(x: Tensor, compute: Callable[[Tensor], Tensor], *args: Any) -> Tensor:
    """x := compute(x) in place, `args` the other tensors the op reads (see the module
    docstring); returns x."""
    tracer = engine.current_tracer()
    if tracer is not None and (x.graph_value is not None or tracer.owns(x) or any(
            isinstance(a, Tensor) and (a.graph_value is not None or tracer.owns(a)) for a in args)):
        _leaf_check(x)
        _rebind_traced(tracer, x, fit(x, compute(x)))
        return x
    if not (engine.grad_enabled() and (x.requires_grad or any(
            isinstance(a, Tensor) and a.requires_grad for a in args))):
        versions.written(x)
        value = compute(x).numpy_view()
        shape = x.tensor_type.shape
        np.copyto(x.numpy_view(), value if value.shape == shape else np.broadcast_to(value, shape),
                  casting="unsafe")  # broadcast_to refuses what torch refuses; it costs 2.5 us
        return x
    _leaf_check(x)
    if x.record is None:  # a leaf: its old value kept, as dlg reads leaves at backward
        old = Tensor.of(x.numpy_view().copy())
    else:  # x's old value, as the ops computing the new one read it (its record, x's memory)
        old = versions.kept(Tensor.result(x.numpy_view(), x.tensor_type, x.record))
    versions.written(x)
    result = fit(x, compute(old))
    np.copyto(x.numpy_view(), result.numpy_view())
    if result.record is not None:
        rebind(x, result)
    return x


def _leaf_check(x: Tensor) -> None:
    """torch's error for a leaf that requires grad, or a view of one, under grad mode."""
    if not engine.grad_enabled():
        return
    while (base := engine.view_base(x)) is not None:
        x = base
    if x.requires_grad and x.record is None:
        raise DlgValueError(LEAF_ERROR, engine.caller_span())


def fit(x: Tensor, result: Tensor) -> Tensor:
    """The result as x's dtype and shape (a value that broadcasts to x is expanded; torch
    refuses a result of another shape)."""
    if result.dtype is not x.dtype:
        result = result.to(x.dtype)
    if result.shape != x.shape:
        try:
            result = result.expand(*x.shape)
        except DlgError:
            raise DlgShapeError(f"an in-place op's result {result.tensor_type} does not fit the "
                                f"tensor it writes into ({x.tensor_type})",
                                engine.caller_span()) from None
    return result


def rebind(x: Tensor, new: Tensor) -> None:
    """x (recorded, its array already holding `new`'s value) takes `new`'s record; a view also
    changes its base, and is then taken again from the base's new value (`engine.current`)."""
    base = engine.view_base(x)
    if base is not None:
        r = x.record
        assert r is not None
        rebind(base, put_view(base, r.op, r.attrs, r.index, new))
    else:
        x.record = new.record
    x._requires_grad = True


# ---- the value of x with some elements replaced (functional setitem) ---------------------------
def put(x: Tensor, key: Any, value: Any) -> Tensor:
    """`x` with `x[key]` replaced by `value` (torch's index_put, NumPy's indexing), recorded or
    traced: `value` gets the gradient of the elements it fills, x's old value that of the
    others. Static shapes: a scatter at the positions NumPy's indexing names; a symbolic shape
    (a trace's batch axis): a `where` over a constant mask, for ints, slices and `...` (taken
    whole on symbolic axes), or a boolean mask of x's shape with a single value."""
    v = value if isinstance(value, Tensor) else Tensor.of(np.asarray(value, x.dtype.np))
    if v.dtype is not x.dtype:
        v = v.to(x.dtype)
    items = key if isinstance(key, tuple) else (key,)
    if (len(items) == 1 and isinstance(items[0], Tensor) and items[0].dtype is DType.bool
            and items[0].ndim == x.ndim and v.ndim == 0):
        return op("where", items[0], v, x)
    if all(isinstance(d, int) for d in x.shape):
        try:
            positions = np.arange(int(np.prod(x.shape)), dtype=np.int64).reshape(x.shape)[
                tuple(k.numpy_view() if isinstance(k, Tensor) else k for k in items)]
        except engine.TraceHazard:
            raise DlgValueError("x[index] = value while tracing: the index is a traced tensor, "
                                "whose positions are data; use dlg.where or masked_fill",
                                engine.caller_span()) from None
        except (IndexError, ValueError, TypeError) as e:
            raise DlgValueError(f"x[...] = value: {e} (x: {x.tensor_type})",
                                engine.caller_span()) from None
        return scatter(x, positions, v)
    return _put_axes(x, items, v)


def scatter(x: Tensor, positions: np.ndarray, v: Tensor) -> Tensor:
    """x with v (broadcast to positions' shape) at the flat positions (NumPy's last write wins
    where one repeats; every element of v gets its position's gradient, as torch's rule)."""
    try:
        src = v.expand(*positions.shape) if v.shape != positions.shape else v
    except DlgError:
        raise DlgValueError(f"x[...] = value: a value of shape {list(v.shape)} cannot fill "
                            f"{list(positions.shape)} elements (x: {x.tensor_type})",
                            engine.caller_span()) from None
    flat = x.reshape(-1).scatter(0, Tensor.of(positions.reshape(-1)), src.reshape(-1))
    return flat.reshape(*x.shape)


def _put_axes(x: Tensor, items: tuple[Any, ...], v: Tensor) -> Tensor:
    """`put` for ints, slices and `...` on a shape with symbolic axes: the value laid out along
    each constrained axis with a constant `take`, chosen by a constant mask."""
    if sum(k is Ellipsis for k in items) > 1 or not all(
            k is Ellipsis or isinstance(k, (int, slice)) for k in items):
        raise DlgValueError(f"x[index] = value on {x.tensor_type} (a symbolic shape) takes ints, "
                            f"slices and ... only, got {items}", engine.caller_span())
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items = items[:at] + (slice(None),) * (x.ndim - len(items) + 1) + items[at + 1:]
    items = items + (slice(None),) * (x.ndim - len(items))
    if len(items) > x.ndim:
        raise DlgValueError(f"x[...] = value: too many indices for {x.tensor_type}",
                            engine.caller_span())
    picked = []  # per axis: None (whole), or the positions of the axis written, in order
    for axis, (k, dim) in enumerate(zip(items, x.shape)):
        if k == slice(None):
            picked.append(None)
        elif isinstance(dim, Sym):
            raise DlgValueError(f"x[index] = value: axis {axis} of {x.tensor_type} is symbolic, "
                                f"so it can only be taken whole (:)", engine.caller_span())
        else:
            picked.append(np.arange(dim)[k])
    shape = [d if p is None else p.size for d, p in zip(x.shape, picked) if p is None or p.ndim]
    try:
        v = v.expand(*shape) if tuple(v.shape) != tuple(shape) else v
    except DlgError:
        raise DlgValueError(f"x[...] = value: a value of shape {list(v.shape)} cannot fill "
                            f"{shape} (x: {x.tensor_type})", engine.caller_span()) from None
    ints = [axis for axis, p in enumerate(picked) if p is not None and p.ndim == 0]
    for axis in ints:  # ascending, so each lands where it belongs
        v = v.unsqueeze(axis)
    mask = np.ones([1] * x.ndim, bool)
    for axis, p in enumerate(picked):
        if p is None:
            continue
        at = np.zeros(x.shape[axis], np.int64)  # where along the axis each element comes from
        at[np.atleast_1d(p)] = np.arange(np.atleast_1d(p).size)
        v = op("take", v, Tensor.of(at), axis=axis)
        along = np.zeros(x.shape[axis], bool)
        along[p] = True
        mask = mask & along.reshape([-1 if a == axis else 1 for a in range(x.ndim)])
    return op("where", Tensor.of(mask), v, x)


def view_key(view_op: Any, attrs: dict[str, Any], index: int, rank: int) -> tuple[Any, ...]:
    """The NumPy key a SLICE, INDEX or SPLIT view takes from its base."""
    key: list[Any] = [slice(None)] * rank
    if view_op is SLICE:
        for axis, start, stop, step in zip(attrs["axes"], attrs["starts"], attrs["stops"],
                                           attrs["steps"]):
            key[axis] = slice(start, None if step < 0 and stop < 0 else stop, step)
    elif view_op is INDEX:
        key[attrs["axis"]] = attrs["index"]
    else:
        start = sum(attrs["sizes"][:index])
        key[attrs["axis"]] = slice(start, start + attrs["sizes"][index])
    return tuple(key)


def put_view(base: Tensor, view_op: Any, attrs: dict[str, Any], index: int, value: Tensor
             ) -> Tensor:
    """base with the elements of its view (output `index` of `view_op`) replaced by `value`."""
    if view_op in engine.RESHAPES:
        return value.reshape(*base.shape)
    if view_op is TRANSPOSE:
        perm = [a % base.ndim for a in attrs["perm"]]
        return value.permute(*np.argsort(perm).tolist())
    if view_op is DIAGONAL:
        if not all(isinstance(d, int) for d in base.shape):
            raise DlgValueError(f"an in-place op on the diagonal of {base.tensor_type} (a symbolic "
                                f"shape) while tracing", engine.caller_span())
        flat = np.arange(int(np.prod(base.shape)), dtype=np.int64).reshape(base.shape)
        return scatter(base, engine.VIEWS[DIAGONAL](flat, **attrs)[0].copy(), value)
    return put(base, view_key(view_op, attrs, index, base.ndim), value)


# ---- tracing ------------------------------------------------------------------------------------
def _rebind_traced(tracer: engine.Tracer, x: Tensor, new: Tensor) -> None:
    """x holds `new` from here on in the trace; a traced view puts it back into its base, and
    `base.data` writes its base."""
    alias = tracer.aliases.get(id(x))
    if alias is not None and alias[0] is x:
        _rebind_traced(tracer, alias[1], new)
        tracer.rebind(x, tracer.value_of(new))
        return
    view = tracer.views.get(id(x))
    if view is not None and view[0] is x:
        _, base, view_op, attrs, index, _ = view
        _rebind_traced(tracer, base, put_view(base, view_op, attrs, index, new))
        tracer.rebind(x, tracer.value_of(x))  # taken again from the base's new value
    else:
        tracer.rebind(x, tracer.value_of(new))
