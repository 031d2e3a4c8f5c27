"""A graph's reverse-mode derivative split into a forward graph and a backward graph, as
torch.compile's AOTAutograd splits its joint graph: `dlg.compile(module)` runs the first at the
module's call and the second when `loss.backward()` reaches it.

`vjp_split(graph, wrt)` builds the joint graph once (the forward copied in the saving form
autodiff uses, then one cotangent input per differentiable output and autodiff's reverse walk to
the `wrt` params and inputs), then cuts it where the gradient starts: every node made before the
cotangents is the forward's, every node after them the backward's. The forward values the
backward reads become extra forward outputs (`saved.<k>`) and backward inputs of the same name,
so what the forward computed (a dropout mask, batch statistics) is kept, never recomputed; the
backward reads the graph's own inputs and params directly and copies constants. The forward
keeps the graph's updates (batch-norm running statistics), so they happen once per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dlg.compiler.passes.autodiff import (
    GRAD_PREFIX,
    copy_forward,
    gradient_sources,
    backward,
    downstream,
)
from dlg.ir.builder import Builder
from dlg.ir.decompose import decompose
from dlg.ir.graph import Graph, Value
from dlg.ir.ops.opdef import Trait
from dlg.ir.ops.source import INPUT, PARAM

SAVED, COTANGENT = "saved.", "ct."  # dotted: no Python argument has such a name


@dataclass(frozen=True)
class VjpSplit:
    """`forward`: the graph's inputs and params -> its outputs, then `saved.<k>`; its updates.
    `backward`: every input of the graph, `saved.<k>`, and `ct.<i>` for each differentiable
    output i -> `grad.<name>` for each name of `wrt`, in order (zeros where none flows)."""

    forward: Graph
    backward: Graph
    n_saved: int
    differentiable: tuple[bool, ...]  # per output: float and reached from a `wrt` source


def vjp_split(graph: Graph, wrt: Sequence[str]) -> VjpSplit:
    forward = decompose(graph, keep=Trait.OWN_GRADIENT)
    sources = gradient_sources(forward, wrt)
    joint = Graph(forward.name, span=forward.span)
    b = Builder(joint, forward.span)
    ends = [v for _, v in forward.outputs]
    on_path = downstream(forward, {n.id for n in sources.values()}) & forward.ancestors(ends)
    mapping = copy_forward(b, forward, on_path)
    boundary = joint._next_id  # the backward's nodes are made from here on
    seeds: dict[Value, Value] = {}
    differentiable = []
    for i, v in enumerate(ends):
        t = forward.type_of(v)
        differentiable.append(t.dtype.is_float and v.node in on_path)
        if differentiable[-1]:
            ct = b.input(f"{COTANGENT}{i}", t)
            new = mapping[v]
            seeds[new] = b.add(seeds[new], ct) if new in seeds else ct
    new_sources = {name: mapping[node.out] for name, node in sources.items()}
    cotangents = backward(b, seeds, set(new_sources.values()))
    grads = []
    for name, v in new_sources.items():
        ct = cotangents.get(v)
        if ct is None:
            t = joint.type_of(v)
            with b.at(forward.span):
                ct = b.full(shape=t.shape, value=0.0, dtype=t.dtype)
        grads.append((GRAD_PREFIX + name, ct))

    back, saved = _backward_graph(joint, boundary, grads)
    fwd = Graph(forward.name, {i: n for i, n in joint.nodes.items() if i < boundary},
                [(name, mapping[v]) for name, v in forward.outputs], span=forward.span)
    fwd.outputs += [(f"{SAVED}{k}", v) for k, v in enumerate(saved)]
    fwd.updates = [(name, mapping[v]) for name, v in forward.updates]
    return VjpSplit(fwd, back, len(saved), tuple(differentiable))


def _backward_graph(joint: Graph, boundary: int, grads: list[tuple[str, Value]]
                    ) -> tuple[Graph, list[Value]]:
    """The joint graph's nodes from `boundary` on, reading the forward's values as inputs:
    the graph's inputs by name, params and constants copied, any other value saved."""
    out = Graph(f"{joint.name}.backward", span=joint.span)
    moved: dict[Value, Value] = {}
    saved: list[Value] = []
    for node in joint:  # every input, so each symbolic size has an input that carries it
        if node.id < boundary and node.op is INPUT:
            moved[node.out] = out.add_node(node.op, (), node.attrs, node.types, node.name,
                                           node.span).out

    def value(v: Value) -> Value:
        if v in moved:
            return moved[v]
        node = joint.node(v)
        if node.op is PARAM or (Trait.SOURCE in node.op.traits and not node.inputs
                                and Trait.RANDOM not in node.op.traits):
            moved[v] = out.add_node(node.op, (), node.attrs, node.types, node.name,
                                    node.span).out
        else:
            t = joint.type_of(v)
            moved[v] = Builder(out, node.span).input(f"{SAVED}{len(saved)}", t)
            saved.append(v)
        return moved[v]

    for node in joint:
        if node.id < boundary:
            continue
        new = out.add_node(node.op, tuple(value(v) for v in node.inputs), node.attrs,
                           node.types, node.name, node.span, node.backward)
        moved.update(zip(node.outs, new.outs))
    out.outputs = [(name, value(v)) for name, v in grads]
    return out, saved
