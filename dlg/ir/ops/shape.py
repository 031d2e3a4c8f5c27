"""Movement ops: reshape, transpose, broadcast, slice, concat, split, pad, gather (`take`).

They move or copy elements without arithmetic, so every dtype is allowed. Dims may be symbolic:
shape rules use `Sym` arithmetic and ask for a concrete dim only where the output size truly
depends on its value (split sizes, strided slices). Attributes arrive normalised by the caller
(no -1 in a reshape, slice bounds inside the dim); negative axes are accepted and normalised here.
squeeze, unsqueeze, flatten, stack and index are composites built from these primitives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.ir.ops.common import (
    INDEX_INTS,
    check_indices,
    interleave_zeros,
    normalize_axes,
    normalize_axis,
    require_dtype,
    same_dtype,
)
from dlg.ir.ops.opdef import Attr, Trait, defop
from dlg.ir.shapes import Dim, Shape, Sym, numel
from dlg.ir.types import TensorType


def _dims(shape: Sequence[Dim]) -> str:
    """A shape as the types print it: `[N,5]`."""
    return "[" + ",".join(str(d) for d in shape) + "]"


def _check_dims(op: str, shape: Sequence[Dim]) -> None:
    for d in shape:
        if isinstance(d, int) and d < 0:
            raise DlgShapeError(f"{op}: negative dim {d} in {_dims(shape)}")


def _axis(op: str, axis: int, x: TensorType) -> int:
    """An axis of `x` (negatives count from the end); a scalar has none."""
    if x.rank == 0:
        raise DlgShapeError(f"{op}: axis {axis} is out of range for the scalar {x}")
    return normalize_axis(op, axis, x.rank)


# ---- reshape ----------------------------------------------------------------------------------
def _reshape_infer(x: TensorType, shape: Shape) -> TensorType:
    _check_dims("reshape", shape)
    if numel(x.shape) != numel(shape):
        raise DlgShapeError(f"reshape: cannot reshape {x} to {_dims(shape)}")
    return x.with_shape(shape)


_VIEW = frozenset({Trait.MOVEMENT, Trait.VIEW, Trait.CHEAP})  # index arithmetic over one input
RESHAPE = defop("reshape", ("x",), _reshape_infer, attrs={"shape": Attr("dims")},
                ref=lambda x, shape: x.reshape(shape), traits=_VIEW,
                vjp=lambda b, n, g: (b.reshape(g, shape=b.type_of(n.inputs[0]).shape),),
                doc="Same elements, new shape (row-major); the caller resolves -1.")


# ---- transpose --------------------------------------------------------------------------------
def _transpose_infer(x: TensorType, perm: tuple[int, ...]) -> TensorType:
    rank = x.rank
    if len(perm) != rank or any(not -rank <= p < rank for p in perm) \
            or sorted(p % rank for p in perm) != list(range(rank)):
        raise DlgShapeError(f"transpose: perm {list(perm)} is not a permutation of the "
                            f"{rank} axes of {x}")
    return x.with_shape(tuple(x.shape[p] for p in perm))


def _transpose_vjp(b: Any, n: Any, g: Any) -> tuple[Any]:
    perm = [p % len(n.attrs["perm"]) for p in n.attrs["perm"]]
    return (b.transpose(g, perm=tuple(int(i) for i in np.argsort(perm))),)


TRANSPOSE = defop("transpose", ("x",), _transpose_infer, attrs={"perm": Attr("ints")},
                  ref=lambda x, perm: np.transpose(x, perm).copy(), vjp=_transpose_vjp,
                  traits=_VIEW, doc="Output axis i is input axis perm[i] (negatives allowed).")


# ---- broadcast_to -----------------------------------------------------------------------------
def _broadcast_to_infer(x: TensorType, shape: Shape) -> TensorType:
    _check_dims("broadcast_to", shape)
    lead = len(shape) - x.rank
    if lead < 0 or any(d != 1 and d != shape[lead + i] for i, d in enumerate(x.shape)):
        raise DlgShapeError(f"broadcast_to: cannot broadcast {x} to {_dims(shape)}")
    return x.with_shape(shape)


BROADCAST_TO = defop("broadcast_to", ("x",), _broadcast_to_infer, attrs={"shape": Attr("dims")},
                     ref=lambda x, shape: np.array(np.broadcast_to(x, shape)), traits=_VIEW,
                     vjp=lambda b, n, g: (g,),  # the autodiff pass sums it back
                     doc="NumPy broadcasting to an explicit shape (PyTorch's expand).")


# ---- slice ------------------------------------------------------------------------------------
# Bounds are what `slice(start, stop, step).indices(dim)` gives: with step > 0 in 0..dim, with
# step < 0 in -1..dim-1 (stop = -1: on to the first element), so `x[::-1]` is one view that
# lowers to `start + i * step` like any other slice.
def _slice_len(start: Dim, stop: Dim, step: int) -> Dim:
    if isinstance(start, int) and isinstance(stop, int):
        return max(0, -(-(stop - start) // step))
    return (stop - start) * step  # step is 1 or -1 here


def _slice_infer(x: TensorType, axes: tuple[int, ...], starts: Shape, stops: Shape,
                 steps: tuple[int, ...]) -> TensorType:
    if not len(axes) == len(starts) == len(stops) == len(steps):
        raise DlgShapeError(f"slice: axes, starts, stops and steps differ in length: {len(axes)}, "
                            f"{len(starts)}, {len(stops)}, {len(steps)}")
    normalize_axes("slice", axes, x.rank)  # in range, no repeats
    out = list(x.shape)
    for axis, start, stop, step in zip(axes, starts, stops, steps):
        axis = _axis("slice", axis, x)
        dim = x.shape[axis]
        if step == 0:
            raise DlgShapeError(f"slice: step must not be 0, on axis {axis} of {x}")
        lo, hi = (0, dim) if step > 0 else (-1, dim - 1)
        for bound in (start, stop):
            if isinstance(bound, int) and (bound < lo or isinstance(hi, int) and bound > hi):
                raise DlgShapeError(f"slice: bound {bound} is outside {lo}..{hi} on axis {axis} "
                                    f"of {x} (step {step})")
        if abs(step) != 1 and not (isinstance(start, int) and isinstance(stop, int)):
            raise DlgShapeError(f"slice: step {step} needs concrete bounds, got {start}:{stop} on "
                                f"axis {axis} of {x}")
        out[axis] = _slice_len(start, stop, step)
    return x.with_shape(tuple(out))


def _slice_ref(x: np.ndarray, axes: tuple[int, ...], starts: tuple[int, ...],
               stops: tuple[int, ...], steps: tuple[int, ...]) -> np.ndarray:
    return sliced(x, axes, starts, stops, steps).copy()


def sliced(x: np.ndarray, axes: tuple[int, ...], starts: tuple[int, ...],
           stops: tuple[int, ...], steps: tuple[int, ...]) -> np.ndarray:
    """The slice as a NumPy view of x (eager tensors share memory as torch's views do)."""
    return x[slice_index(x.shape, axes, starts, stops, steps)]


def slice_index(shape: tuple[int, ...], axes: tuple[int, ...], starts: tuple[int, ...],
                stops: tuple[int, ...], steps: tuple[int, ...]) -> tuple[slice, ...]:
    """The NumPy index taking the slice from an array of `shape`, its bounds checked (eager
    makes it once per shape and attributes)."""
    index = [slice(None)] * len(shape)
    for axis, start, stop, step in zip(axes, starts, stops, steps):
        dim = shape[axis]
        lo, hi = (0, dim) if step > 0 else (-1, dim - 1)
        if not (lo <= start <= hi and lo <= stop <= hi):
            raise DlgValueError(f"slice: bounds {start}:{stop} are outside {lo}..{hi} on axis "
                                f"{axis % len(shape)} (step {step})")
        if step > 0:
            index[axis] = slice(start, max(start, stop), step)
        elif start >= 0:  # NumPy would read a bound of -1 as the last element, so: None
            index[axis] = slice(start, stop if stop >= 0 else None, step)
        else:
            index[axis] = slice(0, 0)
    return tuple(index)


def _zeros_around(b: Any, g: Any, axis: int, lo: Dim, hi: Dim) -> Any:
    """`g` padded with zeros along `axis`; a concat of zeros where a length is symbolic (pad's
    widths are ints), as for `x[:, -1]` on an axis of length T."""
    if isinstance(lo, int) and isinstance(hi, int):
        rank = b.type_of(g).rank
        return b.pad(g, pads=tuple((lo, hi) if i == axis else (0, 0) for i in range(rank)))
    t = b.type_of(g)

    def zeros(n: Dim) -> list[Any]:
        shape = t.shape[:axis] + (n,) + t.shape[axis + 1:]
        return [b.full(shape=shape, value=0.0, dtype=t.dtype)] if n != 0 else []

    return b.concat(*zeros(lo), g, *zeros(hi), axis=axis)


def _slice_vjp(b: Any, n: Any, g: Any) -> tuple[Any]:
    """Zeros around (and, for steps > 1, between) the sliced elements; a negative step reverses
    the gradient first, so it reads the same elements forwards."""
    x = b.type_of(n.inputs[0])
    a = n.attrs
    for axis, start, step in zip(a["axes"], a["starts"], a["steps"]):
        axis = axis % x.rank
        length = b.type_of(g).shape[axis]
        if length == 0:
            return (b.full(shape=x.shape, value=0.0, dtype=x.dtype),)
        if step < 0:
            g = b.slice(g, axes=(axis,), starts=(length - 1,), stops=(-1,), steps=(-1,))
            start, step = start + (length - 1) * step, -step
        g = interleave_zeros(b, g, axis, step)
        used = b.type_of(g).shape[axis]
        g = _zeros_around(b, g, axis, start, x.shape[axis] - start - used)
    return (g,)


SLICE = defop("slice", ("x",), _slice_infer, vjp=_slice_vjp,
              attrs={"axes": Attr("ints"), "starts": Attr("dims"), "stops": Attr("dims"),
                     "steps": Attr("ints")},
              ref=_slice_ref, traits=_VIEW,
              doc="x[start:stop:step] on the listed axes, bounds as slice.indices gives them; "
                  "steps may be negative; an empty range gives an empty axis.")


# ---- concat / split ---------------------------------------------------------------------------
def _concat_infer(*xs: TensorType, axis: int) -> TensorType:
    if not xs:
        raise DlgTypeError("concat takes at least one tensor")
    same_dtype("concat", *xs)
    a = _axis("concat", axis, xs[0])
    for t in xs[1:]:
        if t.rank != xs[0].rank or any(d != e for i, (d, e) in enumerate(zip(t.shape, xs[0].shape))
                                       if i != a):
            raise DlgShapeError(f"concat: shapes differ off axis {axis}: "
                                + ", ".join(str(t) for t in xs))
    total: Dim = 0
    for t in xs:
        total = total + t.shape[a]
    return xs[0].with_shape(xs[0].shape[:a] + (total,) + xs[0].shape[a + 1:])


def _concat_vjp(b: Any, n: Any, g: Any) -> tuple[Any, ...]:
    axis = n.attrs["axis"]
    out, start = [], 0
    for x in n.inputs:
        size = b.type_of(x).shape[axis]
        out.append(b.slice(g, axes=(axis,), starts=(start,), stops=(start + size,), steps=(1,)))
        start = start + size
    return tuple(out)


CONCAT = defop("concat", ("*xs",), _concat_infer, attrs={"axis": Attr("int")}, vjp=_concat_vjp,
               ref=lambda *xs, axis: np.concatenate(xs, axis=axis), traits={Trait.MOVEMENT},
               doc="Join tensors along an existing axis (PyTorch's cat).")


def _split_infer(x: TensorType, axis: int, sizes: tuple[int, ...]) -> tuple[TensorType, ...]:
    a = _axis("split", axis, x)
    dim = x.shape[a]
    if isinstance(dim, Sym):
        raise DlgShapeError(f"split: axis {axis} of {x} is symbolic; split needs a known size")
    if not sizes or any(s < 0 for s in sizes) or sum(sizes) != dim:
        raise DlgShapeError(f"split: sizes {list(sizes)} do not add up to axis {axis} of {x}")
    return tuple(x.with_shape(x.shape[:a] + (s,) + x.shape[a + 1:]) for s in sizes)


def _split_ref(x: np.ndarray, axis: int, sizes: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    return tuple(p.copy() for p in split_views(x, axis, sizes))


def index_view(x: np.ndarray, axis: int, index: int) -> np.ndarray:
    """x[..., index, ...] as a NumPy view of x (unbind's parts are torch's views)."""
    return x[(slice(None),) * (axis % x.ndim) + (index,)]


def split_views(x: np.ndarray, axis: int, sizes: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """The parts as NumPy views of x (eager tensors share memory as torch's views do)."""
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


SPLIT = defop("split", ("x",), _split_infer, attrs={"axis": Attr("int"), "sizes": Attr("ints")},
              vjp=lambda b, n, g: (b.concat(*g, axis=n.attrs["axis"]),),
              ref=_split_ref, traits=_VIEW | {Trait.MULTI_OUTPUT},
              doc="Cut one axis into consecutive parts of the given sizes (always a tuple).")


# ---- pad --------------------------------------------------------------------------------------
def _pad_infer(x: TensorType, pads: tuple[tuple[int, int], ...], value: float) -> TensorType:
    if len(pads) != x.rank or any(lo < 0 or hi < 0 for lo, hi in pads):
        raise DlgShapeError(f"pad: pads {[list(p) for p in pads]} must be one non-negative "
                            f"(lo, hi) pair per axis of {x}")
    return x.with_shape(tuple(d + lo + hi for d, (lo, hi) in zip(x.shape, pads)))


def _pad_ref(x: np.ndarray, pads: tuple[tuple[int, int], ...], value: float) -> np.ndarray:
    return np.pad(x, pads, constant_values=value) if pads else x.copy()  # np.pad rejects ()


def _pad_vjp(b: Any, n: Any, g: Any) -> tuple[Any]:
    x = b.type_of(n.inputs[0])
    pads = n.attrs["pads"]
    return (b.slice(g, axes=tuple(range(x.rank)), starts=tuple(lo for lo, _ in pads),
                    stops=tuple(lo + d for (lo, _), d in zip(pads, x.shape)),
                    steps=(1,) * x.rank),)


PAD = defop("pad", ("x",), _pad_infer, attrs={"pads": Attr("pads"), "value": Attr("float", 0.0)},
            vjp=_pad_vjp,
            ref=_pad_ref, traits={Trait.MOVEMENT},
            doc="Constant padding, (lo, hi) per axis.")


# ---- take -------------------------------------------------------------------------------------
def _take_infer(x: TensorType, indices: TensorType, axis: int) -> TensorType:
    require_dtype("take", indices, INDEX_INTS, "indices")
    a = _axis("take", axis, x)
    return x.with_shape(x.shape[:a] + indices.shape + x.shape[a + 1:])


def _take_ref(x: np.ndarray, indices: np.ndarray, axis: int) -> np.ndarray:
    check_indices("take", indices, x.shape[axis], axis % x.ndim)
    return np.take(x, indices, axis=axis)


def _take_vjp(b: Any, n: Any, g: Any) -> tuple[Any, None]:
    x, indices = n.inputs
    return b.scatter_add(g, indices, axis=n.attrs["axis"], shape=b.type_of(x).shape), None


TAKE = defop("take", ("x", "indices"), _take_infer, attrs={"axis": Attr("int")}, ref=_take_ref,
             vjp=_take_vjp, traits={Trait.MOVEMENT},
             doc="Gather along one axis by an integer tensor of indices in 0..dim-1 (embedding).")


def _scatter_add_infer(g: TensorType, indices: TensorType, axis: int, shape: Shape) -> TensorType:
    require_dtype("scatter_add", indices, INDEX_INTS, "indices")
    _check_dims("scatter_add", shape)
    a = normalize_axis("scatter_add", axis, len(shape))
    expected = tuple(shape[:a]) + indices.shape + tuple(shape[a + 1:])
    if g.shape != expected:
        raise DlgShapeError(f"scatter_add: updates {g} do not fit indices {indices} on axis "
                            f"{axis} of {_dims(shape)}")
    return g.with_shape(shape)


def _scatter_add_ref(g: np.ndarray, indices: np.ndarray, axis: int, shape: tuple[int, ...]
                     ) -> np.ndarray:
    a = axis % len(shape)
    check_indices("scatter_add", indices, shape[a], a)
    out = np.zeros(shape, g.dtype)
    rows = g.reshape(g.shape[:a] + (indices.size,) + g.shape[a + indices.ndim:])
    np.add.at(np.moveaxis(out, a, 0), indices.reshape(-1), np.moveaxis(rows, a, 0))
    return out


SCATTER_ADD = defop("scatter_add", ("updates", "indices"), _scatter_add_infer,
                    attrs={"axis": Attr("int"), "shape": Attr("dims")}, ref=_scatter_add_ref,
                    vjp=lambda b, n, g: (b.take(g, n.inputs[1], axis=n.attrs["axis"]), None),
                    traits={Trait.MOVEMENT, Trait.OWN_KERNEL},
                    doc="take's transpose: add rows of `updates` into zeros of `shape` at "
                        "`indices` (repeated indices add up): the gradient of take/embedding.")


# ---- composites -------------------------------------------------------------------------------
def _squeeze_infer(x: TensorType, axes: tuple[int, ...] | None) -> TensorType:
    if axes is None:
        return x.with_shape(tuple(d for d in x.shape if d != 1))
    drop = normalize_axes("squeeze", axes, x.rank)
    for a in drop:
        if x.shape[a] != 1:
            raise DlgShapeError(f"squeeze: axis {a} of {x} has size {x.shape[a]}, not 1")
    return x.with_shape(tuple(d for i, d in enumerate(x.shape) if i not in drop))


def _unsqueeze_infer(x: TensorType, axes: tuple[int, ...]) -> TensorType:
    rank = x.rank + len(axes)
    new = normalize_axes("unsqueeze", axes, rank)
    dims = iter(x.shape)
    return x.with_shape(tuple(1 if i in new else next(dims) for i in range(rank)))


def _flatten_infer(x: TensorType, start_axis: int, end_axis: int) -> TensorType:
    if x.rank == 0:
        normalize_axis("flatten", start_axis, 1)
        normalize_axis("flatten", end_axis, 1)
        return x.with_shape((1,))
    s = normalize_axis("flatten", start_axis, x.rank)
    e = normalize_axis("flatten", end_axis, x.rank)
    if s > e:
        raise DlgShapeError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis} "
                            f"in {x}")
    return x.with_shape(x.shape[:s] + (numel(x.shape[s:e + 1]),) + x.shape[e + 1:])


def _reshape_like(infer: Any) -> Any:
    """A decomposition that reshapes to the shape the composite's own rule computes."""
    def decompose(b: Any, x: Any, **attrs: Any) -> Any:
        return b.reshape(x, shape=infer(b.type_of(x), **attrs).shape)
    return decompose


SQUEEZE = defop("squeeze", ("x",), _squeeze_infer, attrs={"axes": Attr("axes", None)},
                decompose=_reshape_like(_squeeze_infer), traits={Trait.MOVEMENT},
                doc="Drop size-1 axes (all of them when axes is None).")
UNSQUEEZE = defop("unsqueeze", ("x",), _unsqueeze_infer, attrs={"axes": Attr("ints")},
                  decompose=_reshape_like(_unsqueeze_infer), traits={Trait.MOVEMENT},
                  doc="Insert size-1 axes; axes index the output.")
FLATTEN = defop("flatten", ("x",), _flatten_infer,
                attrs={"start_axis": Attr("int", 1), "end_axis": Attr("int", -1)},
                decompose=_reshape_like(_flatten_infer), traits={Trait.MOVEMENT},
                doc="Merge axes start_axis..end_axis (inclusive) into one.")


def _stack_infer(*xs: TensorType, axis: int) -> TensorType:
    if not xs:
        raise DlgTypeError("stack takes at least one tensor")
    same_dtype("stack", *xs)
    if any(t.shape != xs[0].shape for t in xs):
        raise DlgShapeError("stack: shapes differ: " + ", ".join(str(t) for t in xs))
    a = normalize_axis("stack", axis, xs[0].rank + 1)
    return xs[0].with_shape(xs[0].shape[:a] + (len(xs),) + xs[0].shape[a:])


def _stack_decompose(b: Any, *xs: Any, axis: int) -> Any:
    a = normalize_axis("stack", axis, b.type_of(xs[0]).rank + 1)
    return b.concat(*(b.unsqueeze(x, axes=(a,)) for x in xs), axis=a)


STACK = defop("stack", ("*xs",), _stack_infer, attrs={"axis": Attr("int", 0)},
              decompose=_stack_decompose, traits={Trait.MOVEMENT},
              doc="Join equal tensors along a new axis.")


def _index_infer(x: TensorType, axis: int, index: Dim) -> TensorType:
    a = _axis("index", axis, x)
    dim = x.shape[a]
    if isinstance(index, int) and (index < 0 or isinstance(dim, int) and index >= dim):
        raise DlgShapeError(f"index: position {index} is out of range for axis {axis} of {x}")
    return x.with_shape(x.shape[:a] + x.shape[a + 1:])


def _index_decompose(b: Any, x: Any, axis: int, index: Dim) -> Any:
    out = _index_infer(b.type_of(x), axis, index)
    picked = b.slice(x, axes=(axis,), starts=(index,), stops=(index + 1,), steps=(1,))
    return b.reshape(picked, shape=out.shape)


INDEX = defop("index", ("x",), _index_infer, attrs={"axis": Attr("int"), "index": Attr("int")},
              decompose=_index_decompose, traits={Trait.MOVEMENT},
              doc="x[..., i, ...]: one position of one axis, which is dropped.")
