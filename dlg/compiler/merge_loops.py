"""Neighbouring elementwise kernels over the same loops run as one loop nest, and a nest's
loops over contiguous memory as one loop (`merge_axes.merged_store`).

Fusion keeps a value in memory when several ops read it (an LSTM cell's gates, a gradient's
recomputed sigmoid), so a chain of elementwise kernels over the same [N, 128] often follows:
each its own pass over memory, its own thread dispatch. When two neighbours have the same
loops and the second reads what the first writes only at the element the same iteration
writes, iteration by iteration is the same order of effects as kernel by kernel, so the stores
can share one loop: the value is read back from L1 (or forwarded in registers) and the loop
overhead and the dispatch are paid once. The merged kernel keeps both names.

Only plain store nests merge (no register tiles, GEMMs or accumulating stores), only
neighbours (no reordering), and only when neither writes what the other reads elsewhere.
"""

from __future__ import annotations

from dlg.compiler import indexing as ix
from dlg.compiler.kernel_ir import IfFinite, Kernel, Load, Loop, Stmt, Store, walk
from dlg.compiler.merge_axes import merged_store
from dlg.compiler.lower import Program


def merge_loops(p: Program) -> Program:
    """`p` with each run of mergeable neighbouring kernels as one kernel (scan bodies too), in
    place."""
    merged: list[Kernel] = []
    for kernel in p.kernels:
        if merged and (joined := _joined(merged[-1], kernel)) is not None:
            merged[-1] = joined
        else:
            merged.append(kernel)
    p.kernels = [_flat(kernel) for kernel in merged]
    for body in p.bodies:
        merge_loops(body)
    return p


def _flat(kernel: Kernel) -> Kernel:
    body = _flat_body(kernel.body)
    return kernel if body is kernel.body else Kernel(kernel.name, body, kernel.reads, kernel.writes)


def _flat_body(body: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
    """The body with its plain store nest's (alone or under the finite-loss check) adjacent
    loops merged where every index allows it; the body itself when none do."""
    if len(body) == 1 and isinstance(body[0], IfFinite):
        inner = _flat_body(body[0].body)
        return body if inner is body[0].body else (IfFinite(body[0].buffer, inner),)
    nest = _nest(body)
    if nest is None or len(nest[0]) < 2:
        return body
    loops, stores = nest[0][:], list(nest[1])
    for k in reversed(range(1, len(loops))):
        outer, inner = loops[k - 1], loops[k]
        size = ix.int_value(inner.extent)
        merged = [] if size is None else [merged_store(s, outer.var, inner.var, size)
                                          for s in stores]
        if merged and None not in merged:
            stores = merged  # type: ignore[assignment]
            loops[k - 1:k + 1] = [Loop(inner.var, ix.mul(outer.extent, inner.extent), (),
                                       outer.parallel)]
    if len(loops) == len(nest[0]):
        return body
    return _nested(loops, tuple(stores))


def _nest(body: tuple[Stmt, ...]) -> tuple[list[Loop], tuple[Store, ...]] | None:
    """A body's loops (one statement each down to the last) and the plain stores the last
    one holds."""
    loops: list[Loop] = []
    stmts: tuple[Stmt, ...] = body
    while len(stmts) == 1 and isinstance(stmts[0], Loop):
        loops.append(stmts[0])
        stmts = stmts[0].body
    if not loops or not all(isinstance(s, Store) and not s.accumulate for s in stmts):
        return None
    return loops, stmts  # type: ignore[return-value]


def _joined(a: Kernel, b: Kernel) -> Kernel | None:
    """a then b as one loop nest, or None when that could change what either computes."""
    first, second = _nest(a.body), _nest(b.body)
    if first is None or second is None:
        return None
    (loops_a, stores_a), (loops_b, stores_b) = first, second
    if [(lp.var, lp.extent, lp.parallel) for lp in loops_a] != [
            (lp.var, lp.extent, lp.parallel) for lp in loops_b]:
        return None
    written_at = {s.buffer: s.index for s in stores_a}
    if any(s.buffer in written_at for s in stores_b):
        return None
    written_by_b = {s.buffer for s in stores_b}
    for s in stores_a:  # a must not read what b writes: b's store could come first
        if any(isinstance(e, Load) and e.buffer in written_by_b for e in walk(s.value)):
            return None
    for s in stores_b:  # b reads a's values only where this very iteration wrote them
        for e in walk(s.value):
            if isinstance(e, Load) and e.buffer in written_at and (
                    e.index != written_at[e.buffer] or e.guard is not None):
                return None
    body = _nested(loops_a, stores_a + stores_b)
    writes = tuple(dict.fromkeys(a.writes + b.writes))
    reads = tuple(r for r in dict.fromkeys(a.reads + b.reads) if r not in writes)
    return Kernel(f"{a.name}+{b.name}", body, reads, writes)


def _nested(loops: list[Loop], stmts: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
    for lp in reversed(loops):
        stmts = (Loop(lp.var, lp.extent, stmts, lp.parallel),)
    return stmts
