"""Shape and movement functions: reshape (-1 resolved, symbolic dims kept), flatten, permute,
transpose, movedim, squeeze/unsqueeze, unflatten, broadcast_to, repeat/tile, concat/stack,
split/chunk/unbind, narrow, take (pad is functions/padding.py). `squeeze` of an axis that is
not 1 leaves it (PyTorch); `broadcast_to` keeps a dim given as -1 (PyTorch's expand). `split`
is .dlg's (a number of equal parts, torch.chunk); torch.split's meaning is `split_sizes`, which
the eager frontend names split.
"""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.functions import args
from dlg.functions.args import axes, describe, is_int, tensor
from dlg.functions.front import Front
from dlg.ir.ops.shape import (
    BROADCAST_TO,
    CONCAT,
    FLATTEN,
    INDEX,
    RESHAPE,
    SPLIT,
    SLICE,
    SQUEEZE,
    STACK,
    TAKE,
    TRANSPOSE,
    UNSQUEEZE,
)
from dlg.ir.shapes import Dim, exact_div, numel
from dlg.ir.types import TensorType


def reshape(F: Front, x: Any, *shape: Any) -> Any:
    """reshape(x, 2, -1) or reshape(x, (2, -1)): one dim may be -1, the rest of the elements."""
    t = F.type_of(tensor(F, x, "reshape's argument"))
    dims = list(args.shape(F, shape))
    holes = [i for i, d in enumerate(dims) if d == -1]
    if len(holes) > 1:
        raise DlgShapeError("reshape: only one dim can be -1")
    if holes:
        known = numel([d for d in dims if d != -1])
        rest = exact_div(numel(t.shape), known) if known != 0 else None
        if rest is None:
            raise DlgShapeError(f"reshape: cannot reshape {t} to "
                                f"[{', '.join(str(d) for d in dims)}]: {numel(t.shape)} "
                                f"elements do not divide by {known}")
        dims[holes[0]] = rest
    for d in dims:
        if isinstance(d, int) and d < 0:
            raise DlgShapeError(f"reshape: bad dim {d}")
    if not holes and isinstance(numel(dims), int) and isinstance(numel(t.shape), int) \
            and numel(dims) != numel(t.shape):
        raise DlgShapeError(f"reshape: cannot reshape {t} to [{', '.join(str(d) for d in dims)}]"
                            f": that shape holds {numel(dims)} elements, not {numel(t.shape)}")
    return F.emit(RESHAPE, x, shape=tuple(dims))


def flatten(F: Front, x: Any, start_axis: int = 1, end_axis: int = -1) -> Any:
    """Merge axes start_axis..end_axis into one (nn.Flatten's default; torch.flatten starts
    at 0, which the eager `dlg.flatten` keeps)."""
    return F.emit(FLATTEN, tensor(F, x, "flatten's argument"),
                  start_axis=args.axis(F, start_axis, "start_axis"),
                  end_axis=args.axis(F, end_axis, "end_axis"))


def permute(F: Front, x: Any, *perm: Any) -> Any:
    """permute(x, 2, 0, 1) or permute(x, (2, 0, 1)): output axis i is input axis perm[i]."""
    order = perm[0] if len(perm) == 1 and isinstance(perm[0], (tuple, list)) else perm
    if not all(map(is_int, order)):
        raise DlgTypeError(f"permute takes ints, got {', '.join(describe(F, p) for p in order)}")
    return F.emit(TRANSPOSE, tensor(F, x, "permute's argument"), perm=tuple(order))


def transpose(F: Front, x: Any, dim0: int = -2, dim1: int = -1) -> Any:
    """Swap two axes (the last two by default)."""
    t = F.type_of(tensor(F, x, "transpose's argument"))
    perm = list(range(t.rank))
    bound = max(t.rank, 1)  # a 0-d tensor takes dim 0 or -1, as in PyTorch
    for d in (args.axis(F, dim0, "dim0"), args.axis(F, dim1, "dim1")):
        if not -bound <= d < bound:
            raise DlgShapeError(f"transpose: axis {d} is out of range for {t}")
    if t.rank == 0:
        return x
    perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
    return F.emit(TRANSPOSE, x, perm=tuple(perm))


def T(F: Front, x: Any) -> Any:  # noqa: N802  (the .dlg spelling)
    """T(w): swap the last two axes (w.T for a matrix), as in `x @ T(weight)`."""
    t = F.type_of(tensor(F, x, "T's argument"))
    if t.rank < 2:
        raise DlgShapeError(f"T needs a tensor of rank >= 2, got {t}")
    return transpose(F, x, -2, -1)


def squeeze(F: Front, x: Any, axis: Any = None) -> Any:
    """Drop size-1 axes: all of them, or those of `axis` that are 1 (others stay, as in
    PyTorch)."""
    t = F.type_of(tensor(F, x, "squeeze's argument"))
    picked = axes(F, axis)
    if picked is not None:
        for a in picked:
            if not -max(t.rank, 1) <= a < max(t.rank, 1):  # a 0-d tensor has dims 0 and -1
                raise DlgShapeError(f"squeeze: dim {a} is out of range for {t}")
        picked = tuple(a for a in picked if t.rank and not (isinstance(t.shape[a], int)
                                                             and t.shape[a] != 1))
        if not picked:
            return x
    return F.emit(SQUEEZE, x, axes=picked)


def unsqueeze(F: Front, x: Any, axis: Any) -> Any:
    """Insert size-1 axes at `axis` (an int or a tuple, positions in the result)."""
    return F.emit(UNSQUEEZE, tensor(F, x, "unsqueeze's argument"), axes=axes(F, axis))


def broadcast_to(F: Front, x: Any, *shape: Any) -> Any:
    """NumPy broadcasting to `shape`; a -1 keeps x's dim there (PyTorch's expand)."""
    t = F.type_of(tensor(F, x, "broadcast_to's argument"))
    dims = args.shape(F, shape)
    lead = len(dims) - t.rank
    dims = tuple(t.shape[i - lead] if d == -1 and i >= lead else d for i, d in enumerate(dims))
    return F.emit(BROADCAST_TO, x, shape=dims)


def _tensors(F: Front, xs: Any, name: str) -> list[Any]:
    if not isinstance(xs, (tuple, list)) or not xs:
        raise DlgTypeError(f"{name} takes a tuple of tensors, e.g. {name}((a, b), axis=0)")
    return [tensor(F, x, f"each item of {name}") for x in xs]


def concat(F: Front, xs: Any, axis: int = 0) -> Any:
    """Join tensors along an existing axis. Empty 1-d tensors ([0]) beside others are left out,
    as PyTorch's cat does (its legacy empty tensor joins anything)."""
    parts = _tensors(F, xs, "concat")
    kept = [x for x in parts if F.type_of(x).shape != (0,)]
    return F.emit(CONCAT, *(kept or parts), axis=axis)


def stack(F: Front, xs: Any, axis: int = 0) -> Any:
    """Join equal tensors along a new axis."""
    return F.emit(STACK, *_tensors(F, xs, "stack"), axis=axis)


def split(F: Front, x: Any, sections: Any, axis: int = 0) -> tuple[Any, ...]:
    """split(x, 4, axis=1): 4 equal parts (torch.chunk); split(x, (2, 3)): parts of those
    sizes."""
    t = F.type_of(tensor(F, x, "split's argument"))
    if not -t.rank <= args.axis(F, axis) < t.rank:
        raise DlgShapeError(f"split: axis {axis} is out of range for {t}")
    dim = t.shape[axis]
    if is_int(sections):
        if sections <= 0 or not isinstance(dim, int) or dim % sections:
            raise DlgShapeError(f"split: axis {axis} of {t} does not divide into "
                                f"{sections} equal parts")
        sizes = (dim // sections,) * sections
    elif isinstance(sections, (tuple, list)) and all(map(is_int, sections)):
        sizes = tuple(sections)
    else:
        raise DlgTypeError(f"split takes a number of parts or a tuple of sizes, got "
                           f"{describe(F, sections)}")
    return F.emit(SPLIT, x, axis=axis, sizes=sizes)


def take(F: Front, x: Any, indices: Any, axis: int = 0) -> Any:
    """The slices of x at `indices` along `axis` (NumPy's take, torch.index_select)."""
    return F.emit(TAKE, tensor(F, x, "take's argument"), tensor(F, indices, "take's indices"),
                  axis=axis)


def _axis_of(F: Front, x: Any, axis: Any, name: str) -> tuple[TensorType, int]:
    """x's type and `axis` of it, counted from 0 (a 0-d tensor has none)."""
    t = F.type_of(tensor(F, x, f"{name}'s argument"))
    a = args.axis(F, axis, f"{name}: dim")
    if not -t.rank <= a < t.rank:
        raise DlgShapeError(f"{name}: dim {a} is out of range for {t}")
    return t, a % t.rank


def _known_dim(t: TensorType, a: int, name: str) -> int:
    dim = t.shape[a]
    if not isinstance(dim, int):
        raise DlgShapeError(f"{name}: dim {a} of {t} is symbolic; {name} needs a known size")
    return dim


def _pieces(dim: int, size: int) -> tuple[int, ...]:
    """Parts of `size` covering `dim`, the last one smaller (one empty part when dim is 0)."""
    return tuple(min(size, dim - at) for at in range(0, dim, size)) or (0,)


def split_sizes(F: Front, x: Any, split_size_or_sections: Any, axis: int = 0) -> tuple[Any, ...]:
    """torch.split: parts of `split_size_or_sections` elements (the last one smaller), or of
    each size of a list of sizes that add up to the dim."""
    t, a = _axis_of(F, x, axis, "split")
    dim = _known_dim(t, a, "split")
    sizes = split_size_or_sections
    if is_int(sizes):
        if sizes < 0 or sizes == 0 and dim:
            raise DlgValueError(f"split: split_size must be positive, got {sizes}")
        parts = _pieces(dim, int(sizes) or 1)
    elif isinstance(sizes, (tuple, list)) and all(map(is_int, sizes)):
        if any(s < 0 for s in sizes) or sum(sizes) != dim:
            raise DlgShapeError(f"split: split_size_or_sections {list(sizes)} must be "
                                f"non-negative and add up to {dim}, dim {a} of {t}")
        parts = tuple(int(s) for s in sizes)
    else:
        raise DlgTypeError(f"split: split_size_or_sections must be an int or a list of ints, "
                           f"got {describe(F, sizes)}")
    return F.emit(SPLIT, x, axis=a, sizes=parts)


def chunk(F: Front, x: Any, chunks: Any, axis: int = 0) -> tuple[Any, ...]:
    """torch.chunk: parts of ceil(dim / chunks) elements, the last one smaller (so there may
    be fewer than `chunks` parts)."""
    t, a = _axis_of(F, x, axis, "chunk")
    dim = _known_dim(t, a, "chunk")
    if not is_int(chunks) or chunks <= 0:
        raise DlgValueError(f"chunk: chunks must be a positive int, got {describe(F, chunks)}")
    sizes = _pieces(dim, -(-dim // chunks)) if dim else (0,) * chunks
    return F.emit(SPLIT, x, axis=a, sizes=sizes)


def tensor_split(F: Front, x: Any, indices_or_sections: Any, axis: int = 0) -> tuple[Any, ...]:
    """torch.tensor_split: `n` parts whose sizes differ by at most one (the first dim % n one
    longer), or the Python slices x[:i0], x[i0:i1], ..., x[iN:] along `axis` for a list of
    indices (negative ones count from the end; decreasing ones give an empty part and overlap,
    as slices do, so each part is its own slice)."""
    t, a = _axis_of(F, x, axis, "tensor_split")
    dim = _known_dim(t, a, "tensor_split")
    if is_int(indices_or_sections):
        n = int(indices_or_sections)
        if n <= 0:
            raise DlgValueError(f"tensor_split: the number of sections must be positive, got {n}")
        return F.emit(SPLIT, x, axis=a, sizes=tuple(dim // n + (i < dim % n) for i in range(n)))
    if not (isinstance(indices_or_sections, (tuple, list))
            and all(map(is_int, indices_or_sections))):
        raise DlgTypeError(f"tensor_split: indices_or_sections must be an int or a list of ints, "
                           f"got {describe(F, indices_or_sections)}")
    bounds = [None, *(int(i) for i in indices_or_sections), None]
    return tuple(_slice(F, x, a, *slice(lo, hi).indices(dim)[:2])
                 for lo, hi in zip(bounds, bounds[1:]))


def _slice(F: Front, x: Any, axis: int, start: int, stop: int) -> Any:
    """x[start:stop] along axis, empty when stop <= start."""
    return F.emit(SLICE, x, axes=(axis,), starts=(start,), stops=(max(start, stop),), steps=(1,))


def unbind(F: Front, x: Any, axis: int = 0) -> tuple[Any, ...]:
    """The slices of x along `axis`, that axis removed."""
    t, a = _axis_of(F, x, axis, "unbind")
    return tuple(F.emit(INDEX, x, axis=a, index=i) for i in range(_known_dim(t, a, "unbind")))


def narrow(F: Front, x: Any, axis: Any, start: Any, length: Any) -> Any:
    """Elements start..start+length of `axis` (a negative start counts from the end)."""
    t, a = _axis_of(F, x, axis, "narrow")
    dim = _known_dim(t, a, "narrow")
    begin = args.axis(F, start, "narrow: start")
    size = args.axis(F, length, "narrow: length")
    begin = begin + dim if -dim <= begin < 0 else begin
    if not 0 <= begin <= dim or size < 0 or begin + size > dim:
        raise DlgShapeError(f"narrow: start {start} and length {length} do not fit dim {a} "
                            f"of {t}")
    return F.emit(SLICE, x, axes=(a,), starts=(begin,), stops=(begin + size,), steps=(1,))


def movedim(F: Front, x: Any, source: Any, destination: Any) -> Any:
    """Move axes `source` to positions `destination`; the others keep their order."""
    t = F.type_of(tensor(F, x, "movedim's argument"))
    picked = [_normal_axes(F, t, v, what) for v, what in ((source, "source"),
                                                          (destination, "destination"))]
    if len(picked[0]) != len(picked[1]):
        raise DlgShapeError(f"movedim: source and destination differ in length: "
                            f"{len(picked[0])} and {len(picked[1])}")
    order: list[int | None] = [None] * t.rank
    for s, d in zip(*picked):
        order[d] = s
    rest = iter(i for i in range(t.rank) if i not in picked[0])
    return F.emit(TRANSPOSE, x, perm=tuple(next(rest) if o is None else o for o in order))


def _normal_axes(F: Front, t: TensorType, value: Any, what: str) -> list[int]:
    picked = axes(F, value, f"movedim: {what}") or ()
    if any(not -t.rank <= a < max(t.rank, 1) for a in picked):
        raise DlgShapeError(f"movedim: {what} {value} is out of range for {t}")
    out = [a % max(t.rank, 1) for a in picked]
    if len(set(out)) != len(out):
        raise DlgShapeError(f"movedim: repeated dim in {what} {value}")
    return out


def unflatten(F: Front, x: Any, axis: Any, sizes: Any) -> Any:
    """Split axis `axis` into `sizes` (one of them may be -1)."""
    t, a = _axis_of(F, x, axis, "unflatten")
    dims = args.shape(F, (sizes,)) if isinstance(sizes, (tuple, list)) else None
    if not dims:
        raise DlgTypeError(f"unflatten: sizes must be a non-empty tuple of ints, got "
                           f"{describe(F, sizes)}")
    known = numel([d for d in dims if d != -1])
    fits = known == t.shape[a] if -1 not in dims else exact_div(t.shape[a], known) is not None
    if not fits:
        raise DlgShapeError(f"unflatten: sizes {list(dims)} do not fit dim {a} of {t}")
    return reshape(F, x, (*t.shape[:a], *dims, *t.shape[a + 1:]))


def repeat(F: Front, x: Any, *sizes: Any) -> Any:
    """torch's Tensor.repeat: tile x `sizes[i]` times along each axis; extra leading sizes add
    axes. One broadcast between two reshapes, so the gradient sums the tiles."""
    t = F.type_of(tensor(F, x, "repeat's argument"))
    reps = args.shape(F, sizes)
    if len(reps) < t.rank:
        raise DlgShapeError(f"repeat: {len(reps)} repeats for the {t.rank} dims of {t}; give "
                            f"one per dim (more add leading dims)")
    if any(isinstance(r, int) and r < 0 for r in reps):
        raise DlgValueError(f"repeat: repeats must not be negative, got {list(reps)}")
    dims: tuple[Dim, ...] = (1,) * (len(reps) - t.rank) + tuple(t.shape)
    spread = tuple(d for dim in dims for d in (1, dim))
    tiled = tuple(d for r, dim in zip(reps, dims) for d in (r, dim))
    out = F.emit(BROADCAST_TO, F.emit(RESHAPE, x, shape=spread), shape=tiled)
    return F.emit(RESHAPE, out, shape=tuple(r * d for r, d in zip(reps, dims)))


def tile(F: Front, x: Any, *dims: Any) -> Any:
    """torch.tile: `repeat`, with fewer repeats than dims meaning 1 for the leading ones."""
    t = F.type_of(tensor(F, x, "tile's argument"))
    reps = args.shape(F, dims)
    return repeat(F, x, *(1,) * (t.rank - len(reps)), *reps)
