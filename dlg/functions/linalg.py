"""Products and norms with PyTorch's names: mm, bmm, mv, dot (strict ranks, unlike matmul),
outer, einsum, and norm / vector_norm.

einsum is a decomposition, not an op: each operand's repeated labels become a diagonal (a
product with an identity, summed), labels no one else reads are summed out, and operands are
contracted left to right by one matmul each, after a transpose and reshape into (batch, free,
contracted). Size-1 dims broadcast, as in PyTorch. The gradient and compiled form are those of
the primitives.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.functions.args import describe, is_number, tensor
from dlg.functions.front import Front
from dlg.functions.reduce import dims, with_dtype
from dlg.ir.dtypes import DType, promote_types
from dlg.ir.ops.elementwise import ABS, CAST, EQ, MUL
from dlg.ir.ops.linalg import MATMUL
from dlg.ir.ops.reduce import REDUCE_SUM, VECTOR_NORM
from dlg.ir.ops.shape import RESHAPE, TRANSPOSE
from dlg.ir.ops.source import ARANGE
from dlg.ir.shapes import Dim, numel


def _matrices(F: Front, name: str, values: Sequence[Any], ranks: Sequence[int]) -> list[Any]:
    """The operands of mm/bmm/mv/dot: tensors of exactly these ranks and one dtype."""
    out = []
    for value, rank, what in zip(values, ranks, ("input", "mat2")):
        t = F.type_of(tensor(F, value, f"{name}'s {what}"))
        if t.rank != rank:
            raise DlgShapeError(f"{name}: {what} must be {rank}-d, got {t}")
        out.append(value)
    types = [F.type_of(v) for v in out]
    if types[0].dtype != types[1].dtype:
        raise DlgTypeError(f"{name}: dtypes differ: {types[0]} vs {types[1]}")
    return out


def _product(F: Front, name: str, x: Any, y: Any, ranks: tuple[int, int]) -> Any:
    a, b = _matrices(F, name, (x, y), ranks)
    ta, tb = F.type_of(a), F.type_of(b)
    if ta.shape[-1] != tb.shape[0 if tb.rank == 1 else -2]:
        raise DlgShapeError(f"{name}: inner dims differ: {ta} and {tb}")
    if name == "bmm" and ta.shape[0] != tb.shape[0]:
        raise DlgShapeError(f"bmm: batch sizes differ: {ta} and {tb}")
    return F.emit(MATMUL, a, b)


def mm(F: Front, x: Any, y: Any) -> Any:
    """Matrix times matrix: both exactly 2-d (matmul broadcasts; mm does not)."""
    return _product(F, "mm", x, y, (2, 2))


def bmm(F: Front, x: Any, y: Any) -> Any:
    """Batched matrix product of two 3-d tensors with equal batch sizes."""
    return _product(F, "bmm", x, y, (3, 3))


def mv(F: Front, x: Any, y: Any) -> Any:
    """Matrix times vector."""
    return _product(F, "mv", x, y, (2, 1))


def dot(F: Front, x: Any, y: Any) -> Any:
    """The inner product of two 1-d tensors of one length and dtype, 0-d."""
    return _product(F, "dot", x, y, (1, 1))


def outer(F: Front, x: Any, y: Any) -> Any:
    """x[i] * y[j] for two 1-d tensors, at their common dtype (torch promotes here, unlike mm:
    LLaMA's outer(arange(end), freqs))."""
    for v, what in ((x, "input"), (y, "vec2")):
        tensor(F, v, f"outer's {what}")
    common = promote_types(F.type_of(x).dtype, F.type_of(y).dtype)
    x, y = (v if F.type_of(v).dtype == common else F.emit(CAST, v, dtype=common) for v in (x, y))
    a, b = _matrices(F, "outer", (x, y), (1, 1))
    column = F.emit(RESHAPE, a, shape=(F.type_of(a).shape[0], 1))
    return F.emit(MUL, column, F.emit(RESHAPE, b, shape=(1, F.type_of(b).shape[0])))


# ---- norms -------------------------------------------------------------------------------------
def vector_norm(F: Front, x: Any, ord: Any = 2, axis: Any = None, keepdims: bool = False,
                dtype: DType | None = None) -> Any:  # noqa: A002
    """torch.linalg.vector_norm: sum(|x|^ord)^(1/ord) over `axis`; inf, -inf, 0 and 1 as
    PyTorch defines them."""
    x = with_dtype(F, tensor(F, x, "vector_norm's argument"), dtype)
    if F.type_of(x).dtype.is_complex:  # the norm of the moduli, as torch's
        x = F.emit(ABS, x)
    if not is_number(ord):
        raise DlgTypeError(f"vector_norm: ord must be a number, got {describe(F, ord)}")
    return F.emit(VECTOR_NORM, x, axes=dims(F, x, axis, "vector_norm"), keepdims=keepdims,
                  ord=float(ord))


def norm(F: Front, x: Any, p: Any = "fro", axis: Any = None, keepdims: bool = False,
         dtype: DType | None = None) -> Any:
    """torch.norm: the vector p-norm over `axis` (all by default); 'fro' is the 2-norm."""
    if p == "fro":
        p = 2
    elif isinstance(p, str):
        raise DlgValueError(f"norm: p={p!r} is not supported (numbers and 'fro' are)")
    return vector_norm(F, x, p, axis, keepdims, dtype)


# ---- einsum ------------------------------------------------------------------------------------
def einsum(F: Front, equation: Any, *operands: Any) -> Any:
    """Einstein summation, e.g. einsum("bij,bjk->bik", a, b); '...' stands for the leading
    dims, and the output is implicit (the labels seen once, sorted) without '->'. torch's
    sublist form einsum(a, [0, 1], b, [1, 2], [0, 2]) is read as that equation."""
    if not isinstance(equation, str) and operands and _is_sublist(operands[0]):
        equation, operands = _sublist_equation(F, (equation, *operands))
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise DlgTypeError(f"einsum: the equation must be a string, got {describe(F, equation)}")
    xs = [tensor(F, x, f"einsum's operand {i}") for i, x in enumerate(operands)]
    dtypes = {F.type_of(x).dtype for x in xs}
    if len(dtypes) > 1:
        raise DlgTypeError(f"einsum: operands have different dtypes: "
                           f"{', '.join(str(F.type_of(x)) for x in xs)}")
    terms, out = _parse(F, equation.replace(" ", ""), xs)
    dtype = F.type_of(xs[0]).dtype if xs else DType.f32
    if (dtype.is_int or dtype == DType.bool) and any(
            set(t) - set(out) - {c for other in terms if other is not t for c in other}
            for t in terms):  # torch sums a label of one operand alone with torch.sum first:
        xs = [F.emit(CAST, x, dtype=DType.i64) for x in xs]  # integers then count in int64
    state = [_diagonals(F, x, labels) for x, labels in zip(xs, terms)]
    state = [_squeeze_ones(F, x, labels, state) for x, labels in state]
    while len(state) > 1:
        state = [_contract(F, state[0], state[1], _needed(out, state[2:]))] + state[2:]
    x, labels = _sum_out(F, *state[0], set(out))
    if labels != out:
        x = F.emit(TRANSPOSE, x, perm=tuple(labels.index(c) for c in out))
    return x


Labels = list[str]


def _is_sublist(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        v is Ellipsis or (isinstance(v, int) and not isinstance(v, bool)) for v in value)


def _sublist_equation(F: Front, args: tuple) -> tuple[str, tuple]:
    """torch's sublist form (operand, sublist, ..., [output sublist]) as an equation; labels
    0-25 are 'A'-'Z' and 26-51 'a'-'z', as torch letters them (so the implicit order is)."""
    def letters(sublist: Any) -> str:
        if not _is_sublist(sublist):
            raise DlgTypeError(f"einsum: a sublist must hold ints and ..., got "
                               f"{describe(F, sublist)}")
        for v in sublist:
            if v is not Ellipsis and not 0 <= v < 52:
                raise DlgValueError(f"einsum: subscript {v} in a sublist is not in [0, 52)")
        return "".join("..." if v is Ellipsis else string.ascii_uppercase[v] if v < 26
                       else string.ascii_lowercase[v - 26] for v in sublist)
    pairs, rest = args[:len(args) // 2 * 2], args[len(args) // 2 * 2:]
    lhs = ",".join(letters(sub) for sub in pairs[1::2])
    return lhs + ("->" + letters(rest[0]) if rest else ""), tuple(pairs[0::2])


def _parse(F: Front, equation: str, xs: list[Any]) -> tuple[list[Labels], Labels]:
    """Each operand's labels, one per dim ('...' dims become '.0', '.1', ... aligned at the
    right), and the output's."""
    lhs, arrow, rhs = equation.partition("->")
    specs = lhs.split(",")
    if len(specs) != len(xs):
        raise DlgValueError(f"einsum: {equation!r} has {len(specs)} operand(s), got {len(xs)}")
    ellipsis = 0
    for spec, x in zip(specs, xs):
        letters = spec.replace("...", "")
        if any(c not in string.ascii_letters for c in letters) or spec.count("...") > 1:
            raise DlgValueError(f"einsum: bad subscripts {spec!r} in {equation!r}")
        rank = F.type_of(x).rank
        if len(letters) > rank or ("..." not in spec and len(letters) != rank):
            raise DlgShapeError(f"einsum: {spec!r} does not fit {F.type_of(x)}")
        ellipsis = max(ellipsis, rank - len(letters))
    terms = [_expand(spec, F.type_of(x).rank, ellipsis) for spec, x in zip(specs, xs)]
    if arrow:
        out = _expand(rhs, len(rhs.replace("...", "")) + ellipsis, ellipsis)
        seen = {c for t in terms for c in t}
        for c in out:
            if c not in seen or out.count(c) > 1:
                raise DlgValueError(f"einsum: output label {c!r} of {equation!r} is "
                                    f"{'repeated' if c in seen else 'not in any input'}")
    else:
        counts = [c for t in terms for c in set(t) if not c.startswith(".")]
        out = [f".{i}" for i in range(ellipsis)] + sorted(
            c for c in set(counts) if sum(t.count(c) for t in terms) == 1)
    return terms, out


def _expand(spec: str, rank: int, ellipsis: int) -> Labels:
    head, dots, tail = spec.partition("...")
    n = rank - len(head) - len(tail) if dots else 0
    return list(head) + [f".{ellipsis - n + i}" for i in range(n)] + list(tail)


def _diagonals(F: Front, x: Any, labels: Labels) -> tuple[Any, Labels]:
    """Repeated labels of one operand ('ii->i') reduced to their diagonal."""
    labels = list(labels)
    for c in dict.fromkeys(labels):
        while labels.count(c) > 1:
            i = labels.index(c)
            j = labels.index(c, i + 1)
            shape = F.type_of(x).shape
            if shape[i] != shape[j]:
                raise DlgShapeError(f"einsum: label {c!r} has sizes {shape[i]} and {shape[j]}")
            x = F.emit(REDUCE_SUM, F.emit(MUL, x, _eye(F, shape, i, j, F.type_of(x).dtype)),
                       axes=(j,), keepdims=False)
            del labels[j]
    return x, labels


def _eye(F: Front, shape: tuple[Dim, ...], i: int, j: int, dtype: DType) -> Any:
    """The identity over axes i and j of a tensor of `shape`, 1 along the others."""
    def line(axis: int) -> Any:
        along = tuple(shape[axis] if k == axis else 1 for k in range(len(shape)))
        return F.emit(RESHAPE, F.emit(ARANGE, stop=shape[axis]), shape=along)
    rows, cols = line(i), line(j)
    return F.emit(CAST, F.emit(EQ, rows, cols), dtype=dtype)


def _squeeze_ones(F: Front, x: Any, labels: Labels, state: list[tuple[Any, Labels]]
                  ) -> tuple[Any, Labels]:
    """Size-1 dims whose label is longer elsewhere are dropped: they broadcast (their one
    element multiplies every element of the other operand)."""
    sizes: dict[str, set[Dim]] = {}
    for y, ls in state:
        for c, d in zip(ls, F.type_of(y).shape):
            sizes.setdefault(c, set()).add(d)
    shape = F.type_of(x).shape
    keep = [k for k, c in enumerate(labels) if not (shape[k] == 1 and sizes[c] - {1})]
    for c in labels:
        if len(sizes[c] - {1}) > 1:
            raise DlgShapeError(f"einsum: label {c!r} has sizes "
                                f"{', '.join(map(str, sorted(sizes[c], key=str)))}")
    if len(keep) == len(labels):
        return x, labels
    return (F.emit(RESHAPE, x, shape=tuple(shape[k] for k in keep)),
            [labels[k] for k in keep])


def _needed(out: Labels, rest: list[tuple[Any, Labels]]) -> set[str]:
    return set(out).union(*(set(ls) for _, ls in rest))


def _sum_out(F: Front, x: Any, labels: Labels, keep: set[str]) -> tuple[Any, Labels]:
    gone = tuple(k for k, c in enumerate(labels) if c not in keep)
    if not gone:
        return x, labels
    return (F.emit(REDUCE_SUM, x, axes=gone, keepdims=False),
            [c for c in labels if c in keep])


def _contract(F: Front, left: tuple[Any, Labels], right: tuple[Any, Labels], keep: set[str]
              ) -> tuple[Any, Labels]:
    """Two operands as one matmul over their shared labels (batch: also kept)."""
    a, la = _sum_out(F, *left, keep | set(right[1]))
    b, lb = _sum_out(F, *right, keep | set(la))
    batch = [c for c in la if c in lb and c in keep]
    summed = [c for c in la if c in lb and c not in keep]
    free_a = [c for c in la if c not in lb]
    free_b = [c for c in lb if c not in la]
    size = dict(zip(la, F.type_of(a).shape)) | dict(zip(lb, F.type_of(b).shape))
    batch_shape = tuple(size[c] for c in batch)
    a = _arrange(F, a, la, batch + free_a + summed,
                 batch_shape + (numel([size[c] for c in free_a]), numel([size[c] for c in summed])))
    b = _arrange(F, b, lb, batch + summed + free_b,
                 batch_shape + (numel([size[c] for c in summed]), numel([size[c] for c in free_b])))
    product = F.emit(MATMUL, a, b)
    labels = batch + free_a + free_b
    return F.emit(RESHAPE, product, shape=tuple(size[c] for c in labels)), labels


def _arrange(F: Front, x: Any, labels: Labels, order: Labels, shape: tuple[Dim, ...]) -> Any:
    if labels != order:
        x = F.emit(TRANSPOSE, x, perm=tuple(labels.index(c) for c in order))
    return F.emit(RESHAPE, x, shape=shape)
