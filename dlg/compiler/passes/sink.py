"""sink: a scan carry that only sums one term per step becomes one GEMM (or one reduction) after
the loop, hoist's mirror for the reverse scans autodiff makes.

Backpropagation through a recurrent layer accumulates the recurrent weights' gradient in the
reverse scan's carries: `dW += (h_t^T @ dgates_t)^T` and `db += sum(dgates_t, axis=0)` at every
step, T skinny matmuls [H, N] @ [N, 4H] plus a read-modify-write of all of dW each step. The sum
over steps of `X_t @ Y_t` is the matmul of every step's X side by side by every step's Y stacked
(`[H, T*N] @ [T*N, 4H]`), and a sum of sums is one sum over the stacked steps. So the pass finds
carries whose new value is `carry + L(term)`, the carry read by nothing else and the term a
matmul of two step values or a reduce_sum of one (L a chain of transposes and reshapes, which
commute with the sum), stacks the term's operands as per-step outputs (a sequence the scan reads
or an output it already stacks is used as it is), and computes the sum once after the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlg.compiler.passes.hoist import Kind, fresh_name, step_kinds
from dlg.ir.builder import Builder
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.control import SCAN
from dlg.ir.ops.elementwise import ADD
from dlg.ir.ops.linalg import MATMUL
from dlg.ir.ops.reduce import REDUCE_SUM
from dlg.ir.ops.shape import RESHAPE, TRANSPOSE
from dlg.ir.rewrite import copy_graph
from dlg.ir.shapes import Dim

_LINEAR = (TRANSPOSE, RESHAPE)  # shape-only maps: L(sum of terms) == sum of L(term)


@dataclass(frozen=True)
class Sum:
    """Carry `index` of the scan adds `term` (after the shape-only `chain`, innermost first)
    to itself at every step."""

    index: int
    term: Node
    chain: tuple[Node, ...]


def sink(g: Graph) -> Graph:
    """`g` with the per-step sums of its scans' carries done after each loop; `g` itself when
    no scan has one."""
    sunk: list[bool] = []

    def replace(b: Builder, node: Node, inputs: tuple[Value, ...]) -> tuple[Value, ...] | None:
        made = _sink_scan(b, node, inputs) if node.op is SCAN else None
        sunk.append(made is not None)
        return made
    if not any(n.op is SCAN for n in g):
        return g
    out = copy_graph(g, replace)
    return out if any(sunk) else g


def _sink_scan(b: Builder, node: Node, inputs: tuple[Value, ...]) -> tuple[Value, ...] | None:
    a = node.attrs
    body: Graph = a["body"]
    nc, ns = a["n_carry"], a["n_seq"]
    if a["axis"] != 0:
        return None
    kinds = step_kinds(body, nc, ns)
    sums = [s for i in range(nc) if (s := _per_step_sum(body, i, kinds)) is not None]
    if not sums:
        return None
    outputs = [v for _, v in body.outputs]
    sequences = {p.out: inputs[nc + j] for j, p in enumerate(body.inputs[nc:nc + ns])}
    stacked = [v for s in sums for v in _operands(body, s.term) if v not in sequences]
    extra = list(dict.fromkeys(v for v in stacked if v not in outputs[nc:]))
    gone = {s.index for s in sums}
    new_body = _body(body, gone, extra)
    kept = [i for i in range(nc) if i not in gone]
    outs = b.emit(SCAN, *(inputs[i] for i in kept), *inputs[nc:], body=new_body,
                  n_carry=len(kept), n_seq=ns, axis=0, reverse=a["reverse"])
    outs = outs if isinstance(outs, tuple) else (outs,)
    ys = outs[len(kept):]
    n_ys = len(outputs) - nc
    whole = dict(sequences)
    whole.update((v, ys[k]) for k, v in enumerate(outputs[nc:]) if v not in whole)
    whole.update((v, ys[n_ys + k]) for k, v in enumerate(extra))
    finals = dict(zip(kept, outs))
    for s in sums:
        total = _whole_term(b, body, s.term, whole, b.type_of(inputs[nc]).shape[0])
        for link in s.chain:
            total = b.emit(link.op, total, **dict(link.attrs))
        finals[s.index] = b.add(inputs[s.index], total)
    return tuple(finals[i] for i in range(nc)) + ys[:n_ys]


def _per_step_sum(body: Graph, i: int, kinds: dict[Value, Kind]) -> Sum | None:
    """Carry i's running sum, when its new value is `carry + L(term)` and nothing else reads
    the carry or its new value."""
    port = body.inputs[i]
    new = body.outputs[i][1]
    add = body.node(new)
    outputs = [v for _, v in body.outputs]
    if (add.op is not ADD or port.out not in add.inputs or body.users(port.id) != [add]
            or body.users(add.id) or outputs.count(new) != 1 or port.out in outputs):
        return None
    other = add.inputs[1] if add.inputs[0] == port.out else add.inputs[0]
    if other == port.out or body.type_of(other) != body.type_of(new):
        return None
    chain: list[Node] = []
    term = body.node(other)
    while term.op in _LINEAR:
        chain.append(term)
        term = body.node(term.inputs[0])
    if term.op is MATMUL:
        ok = all(body.type_of(v).rank == 2 for v in term.inputs)
    else:
        ok = term.op is REDUCE_SUM
    if not ok or any(kinds[v] is Kind.INVARIANT for v in term.inputs):
        return None  # a sum of the same value every step is no GEMM
    return Sum(i, term, tuple(reversed(chain)))


def _operands(body: Graph, term: Node) -> list[Value]:
    """The step values whose stacks make the whole sum: a transposed left matmul operand's
    source (so the stack needs no transpose per step)."""
    if term.op is not MATMUL:
        return [term.inputs[0]]
    x, y = term.inputs
    src = body.node(x)
    return [src.inputs[0] if _transposed(src) else x, y]


def _transposed(n: Node) -> bool:
    return n.op is TRANSPOSE and list(n.attrs["perm"]) == [1, 0]


def _whole_term(b: Builder, body: Graph, term: Node, whole: dict[Value, Value],
                length: Dim) -> Value:
    """The sum over all steps of `term`, from its operands' stacks [length, ...]."""
    if term.op is REDUCE_SUM:
        (y,) = term.inputs
        rank = body.type_of(y).rank
        axes = term.attrs["axes"]
        axes = list(range(rank)) if axes is None else [a % rank for a in axes]
        if 0 in axes:  # the steps' rows as one axis: the sum reads as autodiff writes a bias's
            shape = body.type_of(y).shape
            rows = b.reshape(whole[y], shape=(length * shape[0], *shape[1:]))
            return b.emit(REDUCE_SUM, rows, **dict(term.attrs))
        summed = b.emit(REDUCE_SUM, whole[y], axes=[0, *(a + 1 for a in axes)],
                        keepdims=False)
        return b.reshape(summed, shape=term.types[0].shape)
    x, y = term.inputs
    m, n = body.type_of(y).shape
    ys = b.reshape(whole[y], shape=(length * m, n))
    k = body.type_of(x).shape[0]
    src = body.node(x)
    if _transposed(src):  # x_t = p_t^T, p_t [m, k]: the stacked p's rows, transposed
        xs = b.transpose(b.reshape(whole[src.inputs[0]], shape=(length * m, k)), perm=[1, 0])
    else:  # x_t [k, m]: the steps side by side
        xs = b.reshape(b.transpose(whole[x], perm=[1, 0, 2]), shape=(k, length * m))
    return b.matmul(xs, ys)


def _body(body: Graph, gone: set[int], extra: list[Value]) -> Graph:
    """`body` without the sunk carries (their ports and outputs) and with the `extra` step
    values as per-step outputs after the others; only what the outputs need is kept."""
    new = Graph(body.name, span=body.span)
    outputs = [(name, v) for i, (name, v) in enumerate(body.outputs) if i not in gone]
    names = {name for name, _ in body.outputs}
    outputs += [(fresh_name(f"{body.node(v).name or f'v{v.node}'}_sum", names), v) for v in extra]
    live = body.ancestors([v for _, v in outputs])
    ports = {p.id for p in body.inputs}
    dropped = {body.inputs[i].id for i in gone}
    mapping: dict[Value, Value] = {}
    for n in body:
        if n.id in dropped or (n.id not in live and n.id not in ports):
            continue
        made = new.add_node(n.op, tuple(mapping[v] for v in n.inputs), n.attrs, n.types, n.name,
                            n.span, n.backward)
        mapping.update(zip(n.outs, made.outs))
    new.outputs = [(name, mapping[v]) for name, v in outputs]
    return new
