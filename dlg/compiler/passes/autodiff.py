"""Reverse-mode automatic differentiation as a graph pass (STYLE §3).

`grad(graph, loss, wrt)` returns a new graph computing the forward outputs *and* the gradient
of the scalar output `loss` with respect to parameters (or inputs), as outputs named
`grad.<name>`. It is micrograd's walk over IR: decompose composites (all but OWN_GRADIENT ones,
a traced autograd.Function, whose VJP is the user's), copy the forward graph, seed the loss
with 1, visit the nodes between the sources and the loss in reverse order, call each op's `vjp`
rule (which builds IR), sum cotangents back to the input's shape where the op broadcast, and add
up cotangents of values used several times. The result is an ordinary graph:
the interpreter runs it, the printer prints it, and `grad` of it gives second derivatives.

`vjp_graph(body)` is the same walk for a graph with several outputs and given cotangents: scan's
VJP uses it to differentiate its body.
"""

from __future__ import annotations

from collections.abc import Sequence

from dlg.errors import DlgNameError, DlgTypeError
from dlg.ir.builder import Builder
from dlg.ir.decompose import decompose
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.common import sum_to_shape
from dlg.ir.ops.opdef import Trait
from dlg.ir.rewrite import copy_nodes
from dlg.ir.types import TensorType

GRAD_PREFIX = "grad."


def grad(graph: Graph, loss: str = "loss", wrt: Sequence[str] | None = None) -> Graph:
    """The graph plus `grad.<name>` outputs: d loss / d name for each name in `wrt`.

    `wrt` names params or inputs; by default every trainable param the loss depends on (a param
    the loss does not read gets no gradient output, as torch leaves its `.grad` None). A name
    given explicitly that the loss does not read gets a zero gradient.
    """
    forward = decompose(graph, keep=Trait.OWN_GRADIENT)
    outputs = dict(forward.outputs)
    if loss not in outputs:
        raise DlgNameError(f"grad: {graph.name} has no output {loss!r} "
                           f"(it has {', '.join(outputs) or 'none'})")
    loss_type = forward.type_of(outputs[loss])
    if loss_type.rank != 0 or not loss_type.dtype.is_float:
        raise DlgTypeError(f"grad: the loss must be a float scalar, got {loss_type}", graph.span)
    sources = gradient_sources(forward, wrt)
    out = Graph(forward.name, span=forward.span)
    b = Builder(out, forward.span)
    on_path = downstream(forward, {n.id for n in sources.values()}) & forward.ancestors(
        [outputs[loss]])
    mapping = copy_forward(b, forward, on_path)
    new_sources = {name: mapping[node.out] for name, node in sources.items()}
    new_loss = mapping[outputs[loss]]
    with b.at(forward.span):
        seed = b.full(shape=(), value=1.0, dtype=loss_type.dtype)
    cotangents = backward(b, {new_loss: seed}, set(new_sources.values()))
    out.outputs = [(name, mapping[v]) for name, v in forward.outputs]
    out.updates = [(name, mapping[v]) for name, v in forward.updates]
    for name, v in new_sources.items():
        ct = cotangents.get(v)
        if ct is None and wrt is not None:
            t = out.type_of(v)
            ct = b.full(shape=t.shape, value=0.0, dtype=t.dtype)
        if ct is not None:
            out.set_output(GRAD_PREFIX + name, ct)
    return out


def vjp_graph(body: Graph) -> Graph:
    """A graph taking (body's inputs..., a cotangent per body output...) and returning a
    cotangent per body input (zeros for integer inputs and inputs no output depends on)."""
    forward = decompose(body, keep=Trait.OWN_GRADIENT)
    out = Graph(f"{body.name}.vjp", span=body.span)
    b = Builder(out, body.span)
    inputs = [node.out for node in forward.inputs]
    floats = {v for v in inputs if forward.type_of(v).dtype.is_inexact}
    ends = [v for _, v in forward.outputs]
    on_path = downstream(forward, {v.node for v in floats}) & forward.ancestors(ends)
    mapping = copy_forward(b, forward, on_path)
    seeds: dict[Value, Value] = {}
    for i, v in enumerate(ends):
        t = forward.type_of(v)
        ct = b.input(f"ct{i}", t)
        if t.dtype.is_inexact:
            new = mapping[v]
            seeds[new] = b.add(seeds[new], ct) if new in seeds else ct
    cotangents = backward(b, seeds, {mapping[v] for v in floats})
    for i, v in enumerate(inputs):
        ct = cotangents.get(mapping[v])
        if ct is None:
            t = forward.type_of(v)
            ct = b.full(shape=t.shape, value=0, dtype=t.dtype)
        out.set_output(f"d_in{i}", ct)
    return out


def backward(b: Builder, seeds: dict[Value, Value], sources: set[Value]) -> dict[Value, Value]:
    """Propagate cotangents from `seeds` back to `sources` through `b.graph`; returns the
    cotangent of every value reached (sources included)."""
    g = b.graph
    cotangents = dict(seeds)
    reach = downstream(g, {v.node for v in sources})
    wanted = g.ancestors(list(seeds)) & reach
    for node in reversed([n for n in g if n.id in wanted and Trait.SOURCE not in n.op.traits]):
        cts = [cotangents.get(v) for v in node.outs]
        if all(ct is None for ct in cts):
            continue
        if node.op.vjp is None:
            raise DlgTypeError(f"{node.op.name} is not differentiable, but the loss depends on "
                               f"its output through a parameter", node.span)
        with b.at(node.span):
            saved, b.backward = b.backward, True
            try:
                arg = _cotangent_arg(b, node, cts)
                extra = {"ctx": _VjpCtx()} if node.op.needs_ctx else {}
                grads = node.op.vjp(b, node, arg, **extra)
            finally:
                b.backward = saved
            assert len(grads) == len(node.inputs), \
                f"{node.op.name}.vjp returned {len(grads)} cotangents for {len(node.inputs)} inputs"
            for v, ct in zip(node.inputs, grads):
                if ct is None or v.node not in reach:
                    continue
                ct = _fit(b, node, ct, g.type_of(v))
                cotangents[v] = b.add(cotangents[v], ct) if v in cotangents else ct
    return cotangents


class _VjpCtx:
    """What `needs_ctx` VJP rules get: a way to differentiate a body graph."""

    vjp_graph = staticmethod(vjp_graph)


def _cotangent_arg(b: Builder, node: Node, cts: list[Value | None]) -> Value | tuple[Value, ...]:
    if len(node.types) == 1 and Trait.MULTI_OUTPUT not in node.op.traits:
        return cts[0]  # type: ignore[return-value]
    return tuple(ct if ct is not None else b.full(shape=t.shape, value=0.0, dtype=t.dtype)
                 for ct, t in zip(cts, node.types))


def _fit(b: Builder, node: Node, ct: Value, want: TensorType) -> Value:
    """Sum a cotangent in the broadcast shape back to the input's shape; check its type. A
    real input's complex cotangent keeps its real part (torch's rule for a real value that
    entered complex arithmetic)."""
    have = b.type_of(ct)
    if have.dtype.is_complex and not want.dtype.is_complex:
        ct = b.real(ct)
        have = b.type_of(ct)
    if have.shape != want.shape:
        ct = sum_to_shape(b, ct, want.shape)
        have = b.type_of(ct)
    assert have == want, f"{node.op.name}.vjp made a {have} cotangent for a {want} input"
    return ct


def gradient_sources(g: Graph, wrt: Sequence[str] | None) -> dict[str, Node]:
    """The params and inputs named in `wrt` (by default the trainable float params), by name."""
    by_name = {n.name: n for n in g.params + g.inputs}
    if wrt is None:
        return {n.name: n for n in g.params if n.attrs["trainable"]
                and n.types[0].dtype.is_inexact}  # type: ignore[misc]
    out = {}
    for name in wrt:
        if name not in by_name:
            raise DlgNameError(f"grad: no parameter or input named {name!r}")
        if not by_name[name].types[0].dtype.is_inexact:
            raise DlgTypeError(f"grad: {name!r} is {by_name[name].types[0]}; only float and "
                               f"complex values have gradients")
        out[name] = by_name[name]
    return out


def downstream(g: Graph, ids: set[int]) -> set[int]:
    """`ids` and every node that depends on one of them (insertion order is topological)."""
    reach = set(ids)
    for node in g:
        if any(v.node in reach for v in node.inputs):
            reach.add(node.id)
    return reach


def copy_forward(b: Builder, g: Graph, on_path: set[int]) -> dict[Value, Value]:
    """Copy `g`'s nodes into `b.graph`; nodes on the gradient path with a `save_for_vjp` rule
    are emitted in their saving form. Returns old value -> new value."""
    def saving_form(b: Builder, node: Node, inputs: tuple[Value, ...]) -> tuple[Value, ...] | None:
        if node.id in on_path and node.op.save_for_vjp is not None:
            return node.op.save_for_vjp(b, *inputs, **node.attrs)
        return None
    return copy_nodes(b, g, saving_form)
