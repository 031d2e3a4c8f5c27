"""Adjacent reduction axes, and adjacent loops of an elementwise nest, merged into one, so a sum
over a contiguous block, or an update of a whole contiguous tensor, is one loop.

A bias gradient sums [N, C, H, W] over N, H and W; as three nested loops with the constant
trip counts H and W, LLVM's O3 unrolls and vectorises the inner pair into thousands of
instructions (a second of compile time for a microsecond of work). When the body reads the two
axes (a outer, b inner, b of constant extent B) only through affine indices in which a steps B
times as far as b, the pair is the single axis r = a*B + b: every index becomes its part
without a plus b's step times r. r runs in the nest's order, so the fold sees the same values
in the same order and the result is identical.

The same holds for the loops around plain stores (`merged_store`, used by merge_loops.py): an
optimizer's update of a [64, 64, 3, 3] weight was four loops whose 3 x 3 inner pair O3 unrolled
into pages (0.1-0.25 s a kernel; ResNet-18's training step has 62 of them); as one loop of
36,864 it is one vectorised loop.
"""

from __future__ import annotations

from dlg.compiler import indexing as ix
from dlg.compiler.kernel_ir import Expr, Load, Op, Random, Reduce, Store, Var
from dlg.ir.ops.elementwise import ADD, MUL, SUB


def merge_axes(r: Expr) -> Expr:
    """A reduction with each mergeable pair of adjacent axes folded into one, inner to outer."""
    if not isinstance(r, Reduce):
        return r
    axes, body = list(r.axes), r.body
    k = len(axes) - 1
    while k > 0:
        (outer, extent), (inner, inner_extent) = axes[k - 1], axes[k]
        size = ix.int_value(inner_extent)
        merged = None if size is None else _merged(body, outer, inner, size)
        if merged is not None:
            body = merged
            axes[k - 1:k + 1] = [(inner, ix.mul(extent, inner_extent))]
        k -= 1
    return r if body is r.body else Reduce(r.dtype, r.combine, tuple(axes), body, r.init)


def merged_store(s: Store, outer: str, inner: str, size: int) -> Store | None:
    """A plain store over the merged axis (named `inner`), or None when some index is not
    affine in the pair with outer's step `size` times inner's."""
    index = _merged_index(s.index, outer, inner, size)
    value = _merged(s.value, outer, inner, size)
    return None if index is None or value is None else Store(s.buffer, index, value)


def _merged_index(index: Expr, outer: str, inner: str, size: int) -> Expr | None:
    """An affine index over the merged axis (named `inner`), or None when outer's step is not
    `size` times inner's."""
    if not (ix.mentions(index, outer) or ix.mentions(index, inner)):
        return index
    step_outer, step_inner = ix.coefficient(index, outer), ix.coefficient(index, inner)
    if step_outer is None or step_inner is None or step_outer != size * step_inner:
        return None
    return _without(index, outer)


def _merged(e: Expr, outer: str, inner: str, size: int) -> Expr | None:
    """`e` over the merged axis (named `inner`), or None when some use of the two variables is
    not an affine index with outer's step `size` times inner's."""
    if isinstance(e, Var):
        return None if e.name in (outer, inner) else e
    if isinstance(e, Load):
        if e.guard is not None and (ix.mentions(e.guard, outer) or ix.mentions(e.guard, inner)):
            return None
        index = _merged_index(e.index, outer, inner, size)
        return None if index is None else Load(e.dtype, e.buffer, index, e.guard, e.other)
    if isinstance(e, Op):
        args = [_merged(a, outer, inner, size) for a in e.args]
        if any(a is None for a in args):
            return None
        return Op(e.dtype, e.op, tuple(args))  # type: ignore[arg-type]
    if isinstance(e, Reduce):
        body = _merged(e.body, outer, inner, size)
        if body is None or any(ix.mentions(n, outer) or ix.mentions(n, inner) for _, n in e.axes):
            return None
        return Reduce(e.dtype, e.combine, e.axes, body, e.init)
    if isinstance(e, Random):
        return None if ix.mentions(e.index, outer) or ix.mentions(e.index, inner) else e
    return e


def _without(e: Expr, var: str) -> Expr:
    """An affine index with `var` taken as 0, its arithmetic folded again."""
    if isinstance(e, Var) and e.name == var:
        return ix.ZERO
    if isinstance(e, Op) and e.op in _FOLD:
        return _FOLD[e.op](*(_without(a, var) for a in e.args))
    return e


_FOLD = {ADD: ix.add, SUB: ix.sub, MUL: ix.mul}
