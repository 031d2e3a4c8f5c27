"""last_step: a scan's per-step output read only at its last step is its final carry.

A recurrent classifier reads its sequence's output at the last step (`out[:, -1]` after an
LSTM), and that output is the hidden state the scan carries: the body returns the same value
as a carry and as a per-step output. Stacking it costs a copy per step, and in a training step
the reverse scan adds that output's cotangent (zero but at the last step) at every step. So
each slice of such an output at the last step (the last index along the scan axis, the first
for a reverse scan; through transposes, as a batch-first layer reads it) becomes the final
carry with a unit axis put back, and a per-step output nothing else reads leaves the scan.

It runs on the forward graph before autodiff, so the gradient never sees the stacked output.
"""

from __future__ import annotations

from dlg.ir.builder import Builder
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.control import SCAN
from dlg.ir.ops.shape import RESHAPE, SLICE, TRANSPOSE
from dlg.ir.rewrite import copy_graph
from dlg.ir.shapes import Dim


def last_step(g: Graph) -> Graph:
    """`g` with its scans' last-step reads taken from their final carries."""
    plans = {node.id: plan for node in g if node.op is SCAN
             and (plan := _last_step_reads(g, node))}
    if not plans:
        return g
    reads = {n.id: (scan_id, k) for scan_id, plan in plans.items()
             for k, nodes in plan.items() for n in nodes}
    made: dict[int, tuple[Value, ...]] = {}  # the new scans' outputs, by the old scan's id

    def replace(b: Builder, node: Node, inputs: tuple[Value, ...]
                ) -> Value | tuple[Value, ...] | None:
        if node.id in plans:
            made[node.id] = _narrowed_scan(b, node, inputs, set(plans[node.id]))
            return made[node.id]
        if node.id not in reads:
            return None
        scan_id, k = reads[node.id]
        carry = made[scan_id][_carry_of(g.node(scan_id), k)]
        if node.op is SLICE:
            return _as_slice(b, g, node, g.node(scan_id), carry)
        return carry  # a transpose only such slices read: nothing in the new graph reads it
    return copy_graph(g, replace)


def _carry_of(scan: Node, k: int) -> int:
    """The carry whose body value the per-step output `k` (an index among the node's outputs)
    repeats, or -1."""
    body = scan.attrs["body"]
    nc = scan.attrs["n_carry"]
    value = body.outputs[k][1]
    return next((j for j in range(nc) if body.outputs[j][1] == value), -1)


def _last_step_reads(g: Graph, scan: Node) -> dict[int, list[Node]]:
    """Per-step outputs (by output index) that repeat a carry and are read only by slices at
    the last step, through transposes: the nodes of those reads."""
    nc, axis = scan.attrs["n_carry"], scan.attrs["axis"]
    length = g.type_of(scan.inputs[nc]).shape[axis]
    if isinstance(length, int) and length < 1:
        return {}
    last = 0 if scan.attrs["reverse"] else length - 1  # symbolic: T - 1, as slices write it
    read = {v for _, v in g.outputs} | {v for _, v in g.updates}
    plans = {}
    for k in range(nc, len(scan.outs)):
        v = scan.outs[k]
        rank = g.type_of(v).rank
        stacked_axis = axis % rank
        nodes = _reads(g, v, stacked_axis, last, read)
        if nodes and _carry_of(scan, k) >= 0:
            plans[k] = nodes
    return plans


def _reads(g: Graph, v: Value, axis: int, last: Dim, read: set[Value]) -> list[Node] | None:
    """The transposes and last-step slices that are all of `v`'s readers (and theirs), `axis`
    being the stacked axis's place in `v`; None when anything else reads it."""
    if v in read:
        return None
    users = [u for u in g.users(v.node) if v in u.inputs]
    if not users:
        return None
    found: list[Node] = []
    for u in users:
        if u.op is TRANSPOSE:
            inner = _reads(g, u.out, list(u.attrs["perm"]).index(axis), last, read)
            if inner is None:
                return None
            found += [u, *inner]
        elif u.op is SLICE and _picks(u, axis, last):
            found.append(u)
        else:
            return None
    return found


def _picks(node: Node, axis: int, index: Dim) -> bool:
    """Whether a slice keeps exactly `index` along `axis` and slices nothing else."""
    a = node.attrs
    return (list(a["axes"]) == [axis] and a["starts"][0] == index
            and a["stops"][0] == index + 1 and a["steps"][0] == 1)


def _narrowed_scan(b: Builder, node: Node, inputs: tuple[Value, ...], dropped: set[int]
                   ) -> tuple[Value, ...]:
    """The scan without the per-step outputs in `dropped`; its outputs where the old node's
    were (a dropped one stands in as the carry it repeats: only replaced reads refer to it)."""
    body: Graph = node.attrs["body"]
    kept = Graph(body.name, dict(body.nodes), [out for k, out in enumerate(body.outputs)
                                               if k not in dropped], list(body.updates),
                 body.span)
    new = b.emit(SCAN, *inputs, **{**node.attrs, "body": kept})
    made = iter(new if isinstance(new, tuple) else (new,))
    outs = [None if k in dropped else next(made) for k in range(len(node.outs))]
    return tuple(outs[_carry_of(node, k)] if v is None else v  # type: ignore[misc]
                 for k, v in enumerate(outs))


def _as_slice(b: Builder, g: Graph, node: Node, scan: Node, carry: Value) -> Value:
    """The slice's value from the final carry: the stacked axis put back as a unit axis where
    the transposes between the scan and the slice moved it, a reshape when they keep the
    carry's own axes in order (a batch-first layer's out[:, -1]), else those transposes."""
    chain: list[Node] = []
    v = node.inputs[0]
    while g.node(v).op is TRANSPOSE:
        chain.append(g.node(v))
        v = g.node(v).inputs[0]
    stacked = g.type_of(v).shape
    axis = scan.attrs["axis"] % len(stacked)
    order = list(range(len(stacked)))  # the stacked tensor's axis at each place of the slice
    for t in reversed(chain):
        order = [order[p] for p in t.attrs["perm"]]
    own = [a for a in order if a != axis]
    if own == sorted(own):
        return b.emit(RESHAPE, carry, shape=list(g.type_of(node.out).shape))
    out = b.emit(RESHAPE, carry, shape=list(stacked[:axis]) + [1] + list(stacked[axis + 1:]))
    for t in reversed(chain):
        out = b.emit(TRANSPOSE, out, perm=list(t.attrs["perm"]))
    return out
