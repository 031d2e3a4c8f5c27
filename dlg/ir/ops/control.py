"""`scan`: recurrence over a sequence axis as ONE node whose body is a subgraph.

Inputs are `n_carry` initial carries, then `n_seq` sequences, then constants the body reads.
The body graph takes (carries..., one slice of each sequence..., constants...) and returns
(new carries..., per-step outputs...). The node returns the final carries and the per-step
outputs stacked along `axis`. It is never unrolled: the interpreter loops, codegen emits a loop,
and autodiff runs a reverse scan over the saved steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.ir.builder import Builder
from dlg.ir.decompose import copy_into
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.common import normalize_axis, zeros_like
from dlg.ir.ops.linalg import MATMUL
from dlg.ir.ops.opdef import Attr, Trait, defop
from dlg.ir.rewrite import copy_graph
from dlg.ir.shapes import evaluate_shape
from dlg.ir.types import TensorType


def _drop_axis(t: TensorType, axis: int) -> TensorType:
    return t.with_shape(t.shape[:axis] + t.shape[axis + 1:])


def _scan_infer(*types: TensorType, body, n_carry: int, n_seq: int, axis: int, reverse: bool):
    carries, seqs = types[:n_carry], types[n_carry:n_carry + n_seq]
    consts = types[n_carry + n_seq:]
    if n_seq < 1:
        raise DlgTypeError("scan needs at least one sequence to iterate over")
    axes = [normalize_axis("scan", axis, s.rank) for s in seqs]
    lengths = {s.shape[a] for s, a in zip(seqs, axes)}
    if len(lengths) != 1:
        raise DlgShapeError("scan: sequences have different lengths along axis "
                            f"{axis}: {', '.join(str(s) for s in seqs)}")
    (length,) = lengths
    body_inputs = [n.types[0] for n in body.inputs]
    expected = list(carries) + [_drop_axis(s, a) for s, a in zip(seqs, axes)] + list(consts)
    if body_inputs != expected:
        raise DlgTypeError("scan: body inputs " + ", ".join(map(str, body_inputs))
                           + " do not match " + ", ".join(map(str, expected)))
    outs = [body.type_of(v) for _, v in body.outputs]
    if len(outs) < n_carry:
        raise DlgTypeError(f"scan: body returns {len(outs)} values, fewer than its "
                           f"{n_carry} carries")
    for i, (before, after) in enumerate(zip(carries, outs)):
        if before != after:
            name = body.outputs[i][0]
            raise DlgShapeError(f"scan: carry {name!r} starts as {before} but the body makes it "
                                f"{after}; a carry must keep its shape and dtype")
    stacked = []
    for y in outs[n_carry:]:
        a = axis % (y.rank + 1)
        stacked.append(y.with_shape(y.shape[:a] + (length,) + y.shape[a:]))
    return tuple(carries) + tuple(stacked)


def _scan_ref(*arrays: np.ndarray, body, n_carry: int, n_seq: int, axis: int, reverse: bool, ctx):
    carries = list(arrays[:n_carry])
    seqs = arrays[n_carry:n_carry + n_seq]
    consts = list(arrays[n_carry + n_seq:])
    length = seqs[0].shape[axis]
    steps = range(length - 1, -1, -1) if reverse else range(length)
    ys: list[list[np.ndarray]] = []
    for t in steps:
        outs = ctx.run(body, carries + [np.take(s, t, axis=axis) for s in seqs] + consts)
        carries = list(outs[:n_carry])
        ys.append(list(outs[n_carry:]))
    if reverse:
        ys.reverse()
    n_ys = len(body.outputs) - n_carry
    if length == 0:
        y_types = [body.type_of(v) for _, v in body.outputs[n_carry:]]
        stacked = [np.zeros(_empty_shape(t, axis, ctx.env), t.dtype.np) for t in y_types]
    else:
        stacked = [np.stack([step[i] for step in ys], axis=axis % (ys[0][i].ndim + 1))
                   for i in range(n_ys)]
    return tuple(carries) + tuple(stacked)


def _empty_shape(t: TensorType, axis: int, env: dict[str, int]) -> tuple[int, ...]:
    a = axis % (t.rank + 1)
    dims = evaluate_shape(t.shape, env)
    return dims[:a] + (0,) + dims[a:]


# ---- gradient: a reverse scan over the saved per-step carries ---------------------------------
PRODUCT = "saved.product"  # the saved products' output names (no identifier has a dot)


def _scan_save(b: Builder, *inputs: Value, body: Graph, n_carry: int, n_seq: int, axis: int,
               reverse: bool) -> tuple[Value, ...]:
    """The forward scan, also emitting the carry each step starts from (stacked like the other
    per-step outputs), so the backward scan re-reads them instead of recomputing the sequence,
    and each recurrent product (`_products`), which the backward step reads instead of
    recomputing a matmul per step."""
    saving = Graph(body.name, dict(body.nodes), span=body.span)
    saving.outputs = list(body.outputs) + [
        (f"saved_{node.name}", node.out) for node in body.inputs[:n_carry]] + [
        (f"{PRODUCT}{i}", v) for i, v in enumerate(_products(body, n_carry))]
    return b.emit(SCAN, *inputs, body=saving, n_carry=n_carry, n_seq=n_seq, axis=axis,
                  reverse=reverse)


def _products(body: Graph, n_carry: int) -> list[Value]:
    """The matmuls that read a carry, each followed along the elementwise ops that are its only
    reader (a bias, the input projection added: an LSTM's gates before the split): the values
    the backward step would recompute with a GEMM of its own."""
    carried = {p.id for p in body.inputs[:n_carry]}
    found = []
    for n in body:
        if any(v.node in carried for v in n.inputs):
            carried.add(n.id)
            if n.op is MATMUL:
                found.append(_epilogue_end(body, n.out))
    return list(dict.fromkeys(found))


def _epilogue_end(body: Graph, v: Value) -> Value:
    while True:
        users = body.users(v.node)
        if (len(users) != 1 or Trait.ELEMENTWISE not in users[0].op.traits
                or Trait.RANDOM in users[0].op.traits or len(users[0].outs) != 1
                or any(v == out for _, out in body.outputs)):
            return v
        v = users[0].out


def _recomputed(body: Graph, back: Graph, ports: list[Value], wanted: list[Value]
                ) -> dict[Value, Node]:
    """The node of `back` that recomputes each wanted value of `body`, `back` replaying
    body's nodes from `ports` (body's inputs there, in order): matched op by op on equal
    inputs and attributes; a value not found is left out (recomputed, as before)."""
    index = {(n.op, n.inputs, _attrs_key(n)): n for n in back}
    mapping = {p.out: v for p, v in zip(body.inputs, ports)}
    for n in body:
        if n.id in {p.id for p in body.inputs} or not all(v in mapping for v in n.inputs):
            continue
        hit = index.get((n.op, tuple(mapping[v] for v in n.inputs), _attrs_key(n)))
        if hit is not None:
            mapping.update(zip(n.outs, hit.outs))
    return {v: back.node(mapping[v]) for v in wanted if v in mapping}


def _attrs_key(n: Node) -> tuple:
    return tuple((k, v.tobytes() if isinstance(v, np.ndarray) else repr(v))
                 for k, v in sorted(n.attrs.items()))


def _scan_vjp(b: Builder, n: Node, g: tuple[Value, ...], ctx: Any) -> tuple[Value | None, ...]:
    """Backpropagation through time as ONE reverse scan. Its carries are the cotangents of the
    recurrent state and running sums of the constants' (weights') cotangents; its sequences are
    the saved carries and products, the inputs and the per-step output cotangents; its body is
    the VJP of the forward body (which recomputes one step's internals from the saved carry,
    but for the saved products)."""
    a = n.attrs
    nc, ns = a["n_carry"], a["n_seq"]
    saving: Graph = a["body"]
    n_products = sum(name.startswith(PRODUCT) for name, _ in saving.outputs)
    n_ys = len(saving.outputs) - 2 * nc - n_products
    carries, seqs, consts = n.inputs[:nc], n.inputs[nc:nc + ns], n.inputs[nc + ns:]
    saved = n.outs[nc + n_ys:nc + n_ys + nc]
    products = [v for _, v in saving.outputs[len(saving.outputs) - n_products:]]
    body = Graph(saving.name, dict(saving.nodes), saving.outputs[:nc + n_ys], span=saving.span)
    step_vjp = ctx.vjp_graph(body)

    back = Graph(f"{body.name}.reverse", span=body.span)
    sb = Builder(back, b.span, backward=True)
    ct_c = [sb.input(f"d_carry{i}", b.type_of(v)) for i, v in enumerate(carries)]
    acc_k = [sb.input(f"d_const{i}", b.type_of(v)) for i, v in enumerate(consts)]
    c_t = [sb.input(f"carry{i}", node.types[0]) for i, node in enumerate(body.inputs[:nc])]
    x_t = [sb.input(f"x{i}", node.types[0]) for i, node in enumerate(body.inputs[nc:nc + ns])]
    gy_t = [sb.input(f"d_y{i}", body.type_of(v)) for i, (_, v) in enumerate(body.outputs[nc:])]
    for i, v in enumerate(products):  # read where the replay recomputes them (below)
        sb.input(f"product{i}", body.type_of(v))
    k = [sb.input(f"const{i}", node.types[0]) for i, node in enumerate(body.inputs[nc + ns:])]
    d_in = copy_into(sb, step_vjp, c_t + x_t + k + ct_c + gy_t)
    d_c, d_x, d_k = d_in[:nc], d_in[nc:nc + ns], d_in[nc + ns:]
    for i, v in enumerate(d_c):
        back.set_output(f"d_carry{i}", v)
    for i, (acc, v) in enumerate(zip(acc_k, d_k)):
        back.set_output(f"d_const{i}", sb.add(acc, v))
    for i, v in enumerate(d_x):
        back.set_output(f"d_x{i}", v)
    back = _reading_products(back, _recomputed(body, back, c_t + x_t + k, products), products)

    zeros_k = [zeros_like(b, v) for v in consts]
    outs = b.emit(SCAN, *g[:nc], *zeros_k, *saved, *seqs, *g[nc:nc + n_ys],
                  *n.outs[len(n.outs) - n_products:], *consts, body=back,
                  n_carry=nc + len(consts), n_seq=nc + ns + n_ys + n_products, axis=a["axis"],
                  reverse=not a["reverse"])
    d_carries, d_consts, d_seqs = outs[:nc], outs[nc:nc + len(consts)], outs[nc + len(consts):]
    grads = tuple(d_carries) + tuple(d_seqs) + tuple(d_consts)
    return tuple(d if b.type_of(v).dtype.is_float else None for d, v in zip(grads, n.inputs))


def _reading_products(back: Graph, recomputed: dict[Value, Node], products: list[Value]
                      ) -> Graph:
    """`back` with each recomputed product read from its `product{i}` input instead."""
    port = {recomputed[v].id: f"product{i}" for i, v in enumerate(products) if v in recomputed}

    def replace(b: Builder, node: Node, inputs: tuple[Value, ...]) -> Value | None:
        name = port.get(node.id)
        return None if name is None else b.graph.input_named(name).out
    return copy_graph(back, replace) if port else back


SCAN = defop("scan", ("*inputs",), _scan_infer,
             attrs={"body": Attr("graph"), "n_carry": Attr("int"), "n_seq": Attr("int"),
                    "axis": Attr("int", 0), "reverse": Attr("bool", False)},
             ref=_scan_ref, needs_ctx=True, vjp=_scan_vjp, save_for_vjp=_scan_save,
             traits={Trait.OWN_KERNEL, Trait.MULTI_OUTPUT})
