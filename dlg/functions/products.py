"""Products with PyTorch's names beyond linalg.py's: tensordot, addmm, addmv, baddbmm, addbmm,
addr, inner, vdot, kron, cross, cdist, pdist and dist, each a composite of the existing ones.

tensordot is an einsum (one equation built from `dims`); the add-products are beta * input +
alpha * product, where beta 0 ignores input's values (a NaN there does not show), as in
PyTorch; kron multiplies two interleaved reshapes; cross reads the components in rotated order
(`take`); cdist and pdist are vector_norm of every difference (pdist's pairs taken), so their
gradient at a zero distance is vector_norm's (0, as PyTorch's).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.functions.args import describe, is_int, is_number, tensor
from dlg.functions.arrange import axis_of, gather
from dlg.functions.elementwise import apply
from dlg.functions.front import Front
from dlg.functions.linalg import bmm, dot, einsum, mm, mv, outer, vector_norm
from dlg.functions.pointwise import floats, promoted
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import broadcast_shapes
from dlg.ir.ops.complexes import CONJ
from dlg.ir.ops.elementwise import ADD, MUL, SUB
from dlg.ir.ops.reduce import REDUCE_SUM
from dlg.ir.ops.shape import BROADCAST_TO, RESHAPE, TAKE, UNSQUEEZE
from dlg.ir.shapes import Dim


# ---- tensordot -------------------------------------------------------------------------------
def _contracted(F: Front, dims: Any, ranks: tuple[int, int]) -> tuple[list[int], list[int]]:
    """tensordot's dims as the axes of a and of b to contract, each counted from 0."""
    if is_int(dims):
        if not 0 <= dims <= min(ranks):
            raise DlgValueError(f"tensordot: dims={dims} must be in 0..{min(ranks)} for "
                                f"operands of {ranks[0]} and {ranks[1]} dims")
        return list(range(ranks[0] - dims, ranks[0])), list(range(dims))
    if isinstance(dims, (tuple, list)) and len(dims) == 2:
        pair = [[d] if is_int(d) else list(d) if isinstance(d, (tuple, list)) else None
                for d in dims]
        if all(p is not None and all(map(is_int, p)) for p in pair):
            left, right = pair  # type: ignore[misc]
            if len(left) != len(right):
                raise DlgValueError(f"tensordot: dims name {len(left)} axes of a and "
                                    f"{len(right)} of b")
            return ([_axis(d, ranks[0]) for d in left], [_axis(d, ranks[1]) for d in right])
    raise DlgTypeError(f"tensordot: dims must be an int or a pair of lists of axes, got "
                       f"{describe(F, dims)}")


def _axis(d: int, rank: int) -> int:
    if not -rank <= d < rank:
        raise DlgShapeError(f"tensordot: dim {d} is out of range for an operand of {rank} dims")
    return d % rank


def tensordot(F: Front, a: Any, b: Any, dims: Any = 2) -> Any:
    """Sum over the paired axes of a and b (`dims`: the last n of a with the first n of b, or
    two lists of axes); the free axes of a, then b's, remain."""
    x, y = promoted(F, (tensor(F, a, "tensordot's a"), tensor(F, b, "tensordot's b")),
                    ("tensordot's a", "tensordot's b"))
    ta, tb = F.type_of(x), F.type_of(y)
    left, right = _contracted(F, dims, (ta.rank, tb.rank))
    if ta.rank + tb.rank - len(left) > len(string.ascii_letters):
        raise DlgValueError("tensordot: too many dims")
    letters = iter(string.ascii_letters)
    la = [next(letters) for _ in range(ta.rank)]
    lb = [next(letters) for _ in range(tb.rank)]
    for i, j in zip(left, right):
        if ta.shape[i] != tb.shape[j] and 1 not in (ta.shape[i], tb.shape[j]):  # 1 broadcasts
            raise DlgShapeError(f"tensordot: dim {i} of {ta} and dim {j} of {tb} differ")
        lb[j] = la[i]
    out = [c for i, c in enumerate(la) if i not in left]
    out += [c for j, c in enumerate(lb) if j not in right]
    return einsum(F, f"{''.join(la)},{''.join(lb)}->{''.join(out)}", x, y)


# ---- beta * input + alpha * product ------------------------------------------------------------
def _added(F: Front, name: str, x: Any, product: Any, beta: Any, alpha: Any) -> Any:
    """beta * x + alpha * product, x broadcast to the product's shape."""
    for value, what in ((beta, "beta"), (alpha, "alpha")):
        if not is_number(value):
            raise DlgTypeError(f"{name}: {what} must be a number, got {describe(F, value)}")
    t, p = F.type_of(tensor(F, x, f"{name}'s input")), F.type_of(product)
    if t.dtype != p.dtype:
        raise DlgTypeError(f"{name}: input and the matrices must be one dtype, got {t} and {p}")
    x = F.emit(BROADCAST_TO, x, shape=broadcast_shapes(name, t.shape, p.shape))
    if F.type_of(x).shape != p.shape:
        raise DlgShapeError(f"{name}: input {t} does not broadcast to the product's {p}")
    scaled = product if alpha == 1 else apply(F, MUL, [product, alpha], {})
    if beta == 0:
        return scaled
    return F.emit(ADD, x if beta == 1 else apply(F, MUL, [x, beta], {}), scaled)


def _add_product(name: str, product: Callable[..., Any], summed: bool = False
                 ) -> Callable[..., Any]:
    def fn(F: Front, x: Any, m1: Any, m2: Any, beta: Any = 1, alpha: Any = 1) -> Any:
        p = product(F, m1, m2)
        if summed:
            p = F.emit(REDUCE_SUM, p, axes=(0,), keepdims=False)
        return _added(F, name, x, p, beta, alpha)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"beta * input + alpha * {product.__name__}(m1, m2)"
                  f"{' summed over the batch' if summed else ''} (beta 0: input's values are "
                  "not read).")
    return fn


addmm = _add_product("addmm", mm)
addmv = _add_product("addmv", mv)
baddbmm = _add_product("baddbmm", bmm)
addbmm = _add_product("addbmm", bmm, summed=True)


def _outer(F: Front, x: Any, y: Any) -> Any:
    return outer(F, *promoted(F, (x, y), ("outer's vec1", "outer's vec2")))


_outer.__name__ = "outer"
addr = _add_product("addr", _outer)


def inner(F: Front, a: Any, b: Any) -> Any:
    """The sum over the last dims of a and b (a * b when either is 0-d); the other dims of a,
    then b's, remain."""
    x, y = promoted(F, (tensor(F, a, "inner's input"), tensor(F, b, "inner's other")),
                    ("inner's input", "inner's other"))
    if F.type_of(x).rank == 0 or F.type_of(y).rank == 0:
        return apply(F, MUL, [x, y], {})
    return tensordot(F, x, y, ([-1], [-1]))


def vdot(F: Front, a: Any, b: Any) -> Any:
    """The dot product of two 1-d tensors, the first conjugated when complex."""
    a = tensor(F, a, "vdot's input")
    return dot(F, F.emit(CONJ, a) if F.type_of(a).dtype.is_complex else a, b)


def dist(F: Front, x: Any, y: Any, p: Any = 2) -> Any:
    """The p-norm of x - y (broadcast), a 0-d tensor."""
    a, b = floats(F, "dist", (x, y), ("input", "other"))
    return vector_norm(F, F.emit(SUB, *_broadcast(F, "dist", a, b)), p)


def _broadcast(F: Front, name: str, a: Any, b: Any) -> list[Any]:
    shape = broadcast_shapes(name, F.type_of(a).shape, F.type_of(b).shape)
    return [v if F.type_of(v).shape == shape else F.emit(BROADCAST_TO, v, shape=shape)
            for v in (a, b)]


# ---- kron, cross, cdist ----------------------------------------------------------------------
def kron(F: Front, a: Any, b: Any) -> Any:
    """The Kronecker product: block (i, j, ...) of the result is a[i, j, ...] * b."""
    x, y = promoted(F, (tensor(F, a, "kron's input"), tensor(F, b, "kron's other")),
                    ("kron's input", "kron's other"))
    ta, tb = F.type_of(x), F.type_of(y)
    rank = max(ta.rank, tb.rank)
    sa: tuple[Dim, ...] = (1,) * (rank - ta.rank) + tuple(ta.shape)
    sb: tuple[Dim, ...] = (1,) * (rank - tb.rank) + tuple(tb.shape)
    spread_a = tuple(d for s in sa for d in (s, 1))
    spread_b = tuple(d for s in sb for d in (1, s))
    out = F.emit(MUL, F.emit(RESHAPE, x, shape=spread_a), F.emit(RESHAPE, y, shape=spread_b))
    return F.emit(RESHAPE, out, shape=tuple(p * q for p, q in zip(sa, sb)))


def cross(F: Front, x: Any, y: Any, axis: Any = None) -> Any:
    """The cross product of 3-vectors along `axis` (torch.cross's default: the first axis of
    size 3), x and y broadcast together."""
    name = "cross"
    a, b = promoted(F, (tensor(F, x, f"{name}'s input"), tensor(F, y, f"{name}'s other")),
                    (f"{name}'s input", f"{name}'s other"))
    shape = broadcast_shapes(name, F.type_of(a).shape, F.type_of(b).shape)
    a, b = (F.emit(BROADCAST_TO, v, shape=shape) for v in (a, b))
    t = F.type_of(a)
    if axis is None:
        axis = next((i for i, d in enumerate(shape) if d == 3), None)
        if axis is None:
            raise DlgShapeError(f"{name}: no dim of size 3 in {t}")
    d = axis_of(F, t, axis, name)
    if t.rank == 0 or shape[d] != 3:
        raise DlgShapeError(f"{name}: dim {axis} of {t} must have size 3")
    ahead, behind = np.array([1, 2, 0]), np.array([2, 0, 1])
    first = F.emit(MUL, gather(F, a, ahead, d), gather(F, b, behind, d))
    return F.emit(SUB, first, F.emit(MUL, gather(F, a, behind, d), gather(F, b, ahead, d)))


def cdist(F: Front, x1: Any, x2: Any, p: Any = 2.0, compute_mode: Any = None) -> Any:
    """The p-norm distance between each row of x1 (..., P, M) and each row of x2 (..., R, M):
    (..., P, R); leading dims broadcast. compute_mode is accepted; every mode computes the
    differences directly."""
    ta = F.type_of(tensor(F, x1, "cdist's x1"))
    tb = F.type_of(tensor(F, x2, "cdist's x2"))
    if ta.rank < 2 or tb.rank < 2 or ta.shape[-1] != tb.shape[-1]:
        raise DlgShapeError(f"cdist: x1 and x2 must be (..., P, M) and (..., R, M), got {ta} "
                            f"and {tb}")
    if not ta.dtype.is_float or ta.dtype != tb.dtype:
        raise DlgTypeError(f"cdist: x1 and x2 must be one float dtype, got {ta} and {tb}")
    if not is_number(p) or p < 0:
        raise DlgValueError(f"cdist: p must be a non-negative number, got {describe(F, p)}")
    rows = F.emit(UNSQUEEZE, x1, axes=(ta.rank - 1,))  # (..., P, 1, M)
    cols = F.emit(UNSQUEEZE, x2, axes=(tb.rank - 2,))  # (..., 1, R, M)
    return vector_norm(F, F.emit(SUB, rows, cols), p, -1)


def pdist(F: Front, x: Any, p: Any = 2.0) -> Any:
    """The p-norm distance between every pair of rows i < j of x (N, M), in that order: the
    N (N - 1) / 2 entries above cdist(x, x)'s diagonal (torch.pdist)."""
    t = F.type_of(tensor(F, x, "pdist's input"))
    if t.rank != 2:
        raise DlgShapeError(f"pdist only supports 2D tensors, got: {t.rank}D")
    if not t.dtype.is_float:
        raise DlgTypeError(f"pdist only supports floating-point dtypes, got {t}")
    if not is_number(p) or p < 0:
        raise DlgValueError(f"pdist only supports non-negative p values, got {describe(F, p)}")
    n = t.shape[0]
    if not isinstance(n, int):
        raise DlgShapeError(f"pdist: the number of rows of {t} is symbolic; pdist needs it")
    rows, cols = (F.lift(v.astype(np.int64).tolist(), DType.i64) for v in np.triu_indices(n, 1))
    pairs = F.emit(SUB, F.emit(TAKE, x, rows, axis=0), F.emit(TAKE, x, cols, axis=0))
    return vector_norm(F, pairs, p, -1)
