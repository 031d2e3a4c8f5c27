"""`loss.backward()`: the recorded ops become an IR graph (leaves are its inputs), the autodiff
pass differentiates it and the interpreter runs the gradient graph: no second implementation of
any gradient.

A training loop records the same ops on the same types at every step, so the gradient graph is
kept per *tape signature* (each recorded op, its attributes and which earlier tensors it read;
each leaf's type and whether it wants a gradient), with an interpreter of its own (whose
expansion cache lives and dies with the graph). A step then only walks its tape and runs the
kept graph on the new values (flattened into an `interp.Program`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dlg.compiler.passes.autodiff import grad
from dlg.errors import DlgValueError
from dlg.frontend.engine import caller_span, rng
from dlg.ir.anomaly import is_anomaly_enabled
from dlg.ir.builder import Builder
from dlg.ir.graph import Graph, Value
from dlg.runtime.interp import Interpreter, Program

if TYPE_CHECKING:
    from dlg.frontend.tensor import Tensor

KEPT = 32  # gradient graphs kept per thread (a loop with varying shapes makes one per shape)
_state = threading.local()


@dataclass(frozen=True)
class Plan:
    """A gradient graph and how it runs: flattened into a program where it can be, else by an
    interpreter of its own; both at eager's working precision."""

    graph: Graph
    program: Program | None
    interpreter: Interpreter

    @classmethod
    def of(cls, graph: Graph, checked: bool = False) -> Plan:
        """`checked` (anomaly mode): through the interpreter, which checks every node."""
        program = None if checked else Program.of(graph, exact=False)
        return cls(graph, program, Interpreter(exact=False))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The gradients by output name."""
        if self.program is None:
            self.interpreter.rng = rng()
            return self.interpreter.run(self.graph, feeds, {})[0]
        values = self.program.run([feeds[node.name or ""] for node in self.graph.inputs])
        return {name: v for (name, _), v in zip(self.graph.outputs, values)}


def backward(root: Tensor, seed: np.ndarray | None) -> None:
    """Add d root / d leaf to `.grad` of every leaf that requires it (as torch accumulates)."""
    if root.record is None and not root.requires_grad:
        raise DlgValueError("backward(): the tensor does not require grad and has no grad_fn "
                            "(was it computed under no_grad, or from tensors without "
                            "requires_grad=True?)", caller_span())
    if seed is None and root.type.rank != 0:
        raise DlgValueError(f"backward(): grad can be implicitly created only for scalar "
                            f"outputs; this one is {root.type} (pass gradient=...)",
                            caller_span())
    order = _topological(root)
    key, feeds, leaves = _signature(order, seed)
    checked = is_anomaly_enabled()
    if checked:
        key = None  # a graph with the records' spans, checked node by node, built for this call
    plans: OrderedDict[Any, Plan] = _state.__dict__.setdefault("plans", OrderedDict())
    plan = plans.get(key) if key is not None else None
    if plan is None:
        plan = Plan.of(_gradient_graph(order, seed, list(leaves)), checked)
        if key is not None:
            plans[key] = plan
            if len(plans) > KEPT:
                plans.popitem(last=False)
    elif key is not None:
        plans.move_to_end(key)
    if seed is not None:
        feeds["seed"] = np.asarray(seed, root.type.dtype.np)
    results = plan.run(feeds)
    for name, leaf in leaves.items():
        leaf.accumulate_grad(results[f"grad.{name}"])


def _signature(order: list[Tensor], seed: np.ndarray | None
               ) -> tuple[Any, dict[str, np.ndarray], dict[str, Tensor]]:
    """The tape's signature (None when an attribute is unhashable), the leaves' values by input
    name and the leaves that want a gradient, in the names `_gradient_graph` gives them."""
    position: dict[int, int] = {}
    first_of_call: dict[int, int] = {}
    entries: list[Any] = [seed is not None]
    feeds: dict[str, np.ndarray] = {}
    leaves: dict[str, Tensor] = {}
    for i, t in enumerate(order):
        position[id(t)] = i
        r = t.record
        if r is None:
            name = f"t{len(feeds)}"
            feeds[name] = t.numpy_view()
            if t.requires_grad:
                leaves[name] = t
            entries.append((t.type, t.requires_grad))
            continue
        call = first_of_call.setdefault(r.call, i)
        entries.append((r.op, tuple(r.attrs.items()), tuple(position[id(p)] for p in r.inputs),
                        r.index, call))
    key: Any = tuple(entries)
    try:
        hash(key)
    except TypeError:  # an array attribute: this tape's graph is built for it alone
        key = None
    return key, feeds, leaves


def _gradient_graph(order: list[Tensor], seed: np.ndarray | None, wrt: list[str]) -> Graph:
    """The recorded ops as a graph from the leaves to `loss` (the root, or its inner product
    with the seed), differentiated with respect to the leaves named `wrt`."""
    g = Graph("backward")
    b = Builder(g)
    node_of: dict[int, Value] = {}
    emitted: dict[int, tuple[Value, ...]] = {}
    leaves = 0
    for t in order:
        if t.record is None:
            node_of[id(t)] = b.input(f"t{leaves}", t.type)
            leaves += 1
            continue
        r = t.record
        if r.call not in emitted:
            with b.at(r.span):
                out = b.emit(r.op, *(node_of[id(p)] for p in r.inputs), **r.attrs)
            emitted[r.call] = out if isinstance(out, tuple) else (out,)
        node_of[id(t)] = emitted[r.call][r.index]
    root = order[-1]
    out = node_of[id(root)]
    if seed is not None:
        cotangent = b.input("seed", root.type)
        out = b.reduce_sum(b.mul(out, cotangent))
    g.set_output("loss", out)
    return grad(g, "loss", wrt=wrt)


def _topological(root: Tensor) -> list[Tensor]:
    """The tensors `root` was made from, each after its inputs; `root` last."""
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t.record is not None:
            stack.extend((p, False) for p in reversed(t.record.inputs) if id(p) not in seen)
    return order
