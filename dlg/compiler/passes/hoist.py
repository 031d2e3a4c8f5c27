"""hoist: the work of a scan body that does not depend on its carries moves out of the loop, done
once for the whole sequence.

A recurrent layer's input projection `x_t @ W_ih^T` reads one step of the sequence and the
weights only; step by step it is T skinny matmuls, outside the loop it is ONE GEMM over all
T*N rows (`[T*N, I] @ [I, 4H]`). The pass finds, in each axis-0 scan's body, the matmuls whose
left operand is a step of a sequence (or already hoisted work) and whose right operand is
loop-invariant, and the elementwise ops over such values and invariants (a bias add, an
activation); it computes them over the whole sequence before the scan, which then scans over
their results instead (new sequences; inputs the body no longer reads are dropped). Nothing that
depends on a carry, directly or not, moves, nor random draws (each step draws anew).

It runs on the forward graph before autodiff (and again on the training step), so a hoisted
matmul's gradient is its own VJP after the reverse scan: one GEMM for the weight, one for the
input, instead of a sum accumulated step by step in the reverse scan's carries.
"""

from __future__ import annotations

from enum import Enum

from dlg.ir.builder import Builder
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.control import SCAN
from dlg.ir.ops.linalg import MATMUL
from dlg.ir.ops.opdef import Trait
from dlg.ir.rewrite import copy_graph
from dlg.ir.shapes import Dim, numel
from dlg.ir.types import TensorType


class Kind(Enum):
    """How a body value varies over the loop."""

    INVARIANT = "invariant"  # the same at every step: constants and the values read from outside
    STEP = "step"  # a function of the step's slices (and invariants): computable for all steps
    CARRIED = "carried"  # depends on a carry (or draws random numbers): only inside the loop


def hoist(g: Graph) -> Graph:
    """`g` with every scan's carry-independent projections computed before the loop."""
    if not any(n.op is SCAN for n in g):
        return g

    def replace(b: Builder, node: Node, inputs: tuple[Value, ...]) -> tuple[Value, ...] | None:
        return _hoist_scan(b, node, inputs) if node.op is SCAN else None
    return copy_graph(g, replace)


def _hoist_scan(b: Builder, node: Node, inputs: tuple[Value, ...]) -> tuple[Value, ...] | None:
    """The scan `node` (its inputs already in `b.graph`) with its hoistable work emitted before
    it; None when nothing moves."""
    a = node.attrs
    body = hoist(a["body"])  # nested scans first: their own inputs may then be hoistable
    nc, ns = a["n_carry"], a["n_seq"]
    if a["axis"] != 0:
        return _same_scan(b, node, inputs, body)
    ports = body.inputs
    kinds = step_kinds(body, nc, ns)
    hoisted = _hoistable(body, kinds, {p.out for p in ports[nc:nc + ns]})
    boundary, live = _live(body, hoisted)
    if not boundary:
        return _same_scan(b, node, inputs, body)
    length = b.type_of(inputs[nc]).shape[0]
    outer = {p.out: v for p, v in zip(ports[nc:], inputs[nc:])}  # sequences whole, constants
    rows: dict[Value, Value] = {}
    for v in sorted(hoisted, key=lambda v: v.node):
        n = body.node(v)
        with b.at(n.span):
            _copy_invariants(b, body, n, kinds, outer)
            made = _batched(b, body, n, kinds, outer, rows, length)
            if made is not None:
                outer[v] = made
    new_body, kept = _loop_body(body, nc, ns, boundary, live)
    new_inputs = [inputs[i] for i in range(nc)] + [_whole(b, body, v, outer, rows, length)
                                                   for v in kept]
    n_seq = sum(kinds[v] is Kind.STEP for v in kept)
    return b.emit(SCAN, *new_inputs, body=new_body, n_carry=nc, n_seq=n_seq, axis=0,
                  reverse=a["reverse"])


def _same_scan(b: Builder, node: Node, inputs: tuple[Value, ...], body: Graph
               ) -> tuple[Value, ...] | None:
    """The scan unchanged, or over its (nested-)hoisted body when that changed."""
    if body is node.attrs["body"]:
        return None
    return b.emit(SCAN, *inputs, **{**node.attrs, "body": body})


def step_kinds(body: Graph, nc: int, ns: int) -> dict[Value, Kind]:
    ports = {p.id: i for i, p in enumerate(body.inputs)}
    kinds: dict[Value, Kind] = {}
    for n in body:
        if n.id in ports:
            i = ports[n.id]
            kind = Kind.CARRIED if i < nc else Kind.STEP if i < nc + ns else Kind.INVARIANT
        elif Trait.RANDOM in n.op.traits or n.op is SCAN:
            kind = Kind.CARRIED  # a fresh draw each step; a nested loop is never hoisted
        else:
            kind = max((kinds[v] for v in n.inputs), key=_ORDER.index, default=Kind.INVARIANT)
        kinds.update(dict.fromkeys(n.outs, kind))
    return kinds


_ORDER = [Kind.INVARIANT, Kind.STEP, Kind.CARRIED]


def _hoistable(body: Graph, kinds: dict[Value, Kind], sequences: set[Value]) -> set[Value]:
    """The step values worth computing for all steps at once: matmuls of a step value by an
    invariant matrix, and elementwise ops combining hoisted values with steps and invariants.
    (An elementwise op over sequence slices alone is as cheap inside the loop.)"""
    hoisted: set[Value] = set()
    whole = set(sequences)  # step values available for all steps outside the loop
    for n in body:
        if len(n.outs) != 1 or kinds[n.out] is not Kind.STEP:
            continue
        if n.op is MATMUL:
            x, w = n.inputs
            ok = x in whole and kinds[w] is Kind.INVARIANT and body.type_of(w).rank <= 2
        elif Trait.ELEMENTWISE in n.op.traits:
            ok = (any(v in hoisted for v in n.inputs)
                  and all(v in whole or kinds[v] is Kind.INVARIANT for v in n.inputs))
        else:
            ok = False
        if ok:
            hoisted.add(n.out)
            whole.add(n.out)
    return hoisted


def _live(body: Graph, hoisted: set[Value]) -> tuple[list[Value], set[int]]:
    """What the loop still computes: the hoisted values it reads (by a node left in it, or as an
    output: they become sequences), and the nodes it keeps."""
    needed: set[Value] = set()
    live: set[int] = set()
    stack = [v for _, v in body.outputs]
    while stack:
        v = stack.pop()
        if v in hoisted:
            needed.add(v)
        elif v.node not in live:
            live.add(v.node)
            stack.extend(body.node(v).inputs)
    return sorted(needed, key=lambda v: v.node), live


def _copy_invariants(b: Builder, body: Graph, n: Node, kinds: dict[Value, Kind],
                     outer: dict[Value, Value]) -> None:
    """The invariant body values `n` reads (a transposed weight), made outside too."""
    for v in n.inputs:
        if v in outer or kinds[v] is not Kind.INVARIANT:
            continue
        src = body.node(v)
        _copy_invariants(b, body, src, kinds, outer)
        made = b.emit(src.op, *(outer[u] for u in src.inputs), **dict(src.attrs))
        outer.update(zip(src.outs, made if isinstance(made, tuple) else (made,)))


def _batched(b: Builder, body: Graph, n: Node, kinds: dict[Value, Kind],
             outer: dict[Value, Value], rows: dict[Value, Value], length: Dim) -> Value | None:
    """`n` over all steps at once: its step operands (outside) have a leading axis of `length`;
    the result is [length, *n's type]; or None where it is kept only as every step's rows in one
    matrix (`rows`, [length*M, P]): a matmul's result, and elementwise ops over such matrices and
    per-column invariants (a bias), which so become the GEMM's epilogue."""
    step_type = n.types[0]
    steps = [v for v in n.inputs if kinds[v] is Kind.STEP]
    invariants = [v for v in n.inputs if kinds[v] is Kind.INVARIANT]
    x, w = n.inputs if n.op is MATMUL else (None, None)
    if x is not None and body.type_of(x).rank > 1 and body.type_of(w).rank == 2:
        shape = body.type_of(x).shape  # [..., K] -> [T*..., K]: one GEMM over every step's rows
        xs = rows[x] if x in rows else b.reshape(outer[x], shape=(length * numel(shape[:-1]),
                                                                  shape[-1]))
        out = rows[n.out] = b.matmul(xs, outer[w])
    elif (Trait.ELEMENTWISE in n.op.traits and all(v in rows for v in steps)
          and all(body.type_of(v) == step_type for v in steps)
          and all(body.type_of(v).rank <= 1 for v in invariants)):
        out = rows[n.out] = b.emit(n.op, *(rows[v] if v in rows else outer[v] for v in n.inputs),
                                   **dict(n.attrs))
    elif n.op is MATMUL:  # a vector per step, or a vector of weights: no rows to merge
        out = b.matmul(_whole(b, body, x, outer, rows, length), outer[w])
    else:  # step operands of lower rank get 1s after the step axis, so they broadcast as before
        args = [_lead_axis(b, _whole(b, body, v, outer, rows, length), body.type_of(v),
                           step_type.rank, length)
                if kinds[v] is Kind.STEP else outer[v] for v in n.inputs]
        out = b.emit(n.op, *args, **dict(n.attrs))
    if n.out in rows:
        return None
    want = (length,) + step_type.shape
    return out if b.type_of(out).shape == want else b.reshape(out, shape=want)


def _whole(b: Builder, body: Graph, v: Value, outer: dict[Value, Value],
           rows: dict[Value, Value], length: Dim) -> Value:
    """The outside value of step value `v` with its leading step axis (made from its rows)."""
    if v not in outer:
        outer[v] = b.reshape(rows[v], shape=(length,) + body.type_of(v).shape)
    return outer[v]


def _lead_axis(b: Builder, whole: Value, step: TensorType, rank: int, length: Dim) -> Value:
    if step.rank == rank:
        return whole
    return b.reshape(whole, shape=(length,) + (1,) * (rank - step.rank) + step.shape)


def _loop_body(body: Graph, nc: int, ns: int, boundary: list[Value], live: set[int]
               ) -> tuple[Graph, list[Value]]:
    """The body left in the loop, reading the boundary values as step slices of new sequences;
    and the body values whose outside values feed the scan after its carries, in order."""
    new = Graph(body.name, span=body.span)
    mapping: dict[Value, Value] = {}
    ports = body.inputs
    kept: list[Value] = []

    def port(p: Node) -> None:
        mapping[p.out] = new.add_node(p.op, (), p.attrs, p.types, p.name, p.span).out
    names = {p.name for p in ports}
    for p in ports[:nc]:
        port(p)
    for p in ports[nc:nc + ns]:
        if p.id in live:
            port(p)
            kept.append(p.out)
    for v in boundary:
        n = body.node(v)
        name = fresh_name(f"{n.name or f'v{n.id}'}_t", names)
        mapping[v] = Builder(new, n.span).input(name, body.type_of(v))
        kept.append(v)
    for p in ports[nc + ns:]:
        if p.id in live:
            port(p)
            kept.append(p.out)
    port_ids = {p.id for p in ports}
    for n in body:
        if n.id in live and n.id not in port_ids:
            made = new.add_node(n.op, tuple(mapping[v] for v in n.inputs), n.attrs, n.types,
                                n.name, n.span, n.backward)
            mapping.update(zip(n.outs, made.outs))
    new.outputs = [(name, mapping[v]) for name, v in body.outputs]
    return new, kept


def fresh_name(name: str, taken: set[str]) -> str:
    k, candidate = 1, name
    while candidate in taken:
        k += 1
        candidate = f"{name}{k}"
    taken.add(candidate)
    return candidate
