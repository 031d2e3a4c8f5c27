"""`loss.backward()`: the recorded ops become an IR graph (leaves are its inputs), the autodiff
pass differentiates it and the interpreter runs the gradient graph: no second implementation of
any gradient.

A training loop records the same ops on the same types at every step, so the gradient graph is
kept per *tape signature* (each recorded op, its attributes and which earlier tensors it read;
each leaf's type and whether it wants a gradient), with an interpreter of its own (whose
expansion cache lives and dies with the graph). A step then only walks its tape and runs the
kept graph on the new values (flattened into an `interp.Program`).

An attribute that holds one call's data (a compiled module's call: its saved activations) would
make every step's signature new. Such an attribute is `Rebindable`: the signature holds its
`tape_key()` (what the gradient graph depends on), the kept graph a `template()` of it, and each
step `rebind`s the templates to its own calls' objects before the graph runs.
"""

from __future__ import annotations

import threading
import weakref
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from collections.abc import Callable, Collection, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dlg.compiler.passes.autodiff import grad as grad_graph
from dlg.errors import DlgValueError
from dlg.frontend import grad_hooks, versions
from dlg.frontend.engine import RESHAPES, VIEWS, Record, caller_span, current, rng
from dlg.frontend.profiler import record_function
from dlg.frontend.tiering import Tier, compilable
from dlg.ir.anomaly import is_anomaly_enabled
from dlg.ir.builder import Builder
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.opdef import Trait
from dlg.ir.rewrite import copy_graph
from dlg.runtime.interp import Interpreter, Program

if TYPE_CHECKING:
    from dlg.frontend.tensor import Tensor

KEPT = 32  # gradient graphs kept per thread (a loop with varying shapes makes one per shape)
Tape = list[tuple["Tensor", "Record | None"]]  # see `tape`
# (graph, its inputs: tensors or arrays) -> its outputs as recorded tensors: tensor.run_graph,
# passed in by the callers (tensors import this module)
Replay = Callable[[Graph, list[Any]], list["Tensor"]]
_state = threading.local()


class Rebindable(ABC):
    """An op attribute holding one call's data that a kept gradient graph can serve again."""

    @abstractmethod
    def tape_key(self) -> Hashable:
        """What the gradient graph depends on (not the call's arrays)."""

    @abstractmethod
    def template(self) -> Rebindable:
        """A copy for the kept graph to hold, rebound to each later call."""

    @abstractmethod
    def rebind(self, call: Any) -> None:
        """Take `call`'s data: a later call with the same `tape_key`."""


@dataclass(frozen=True)
class Plan:
    """A gradient graph and how it runs: flattened into a program where it can be, else by an
    interpreter of its own; both at eager's working precision. A flattened float32 graph the
    compiler lowers is compiled once its interpreted runs have cost about what the compile
    would (`tier`, frontend/tiering.py). `templates`: the
    graph's `Rebindable` attributes, in tape order."""

    graph: Graph
    program: Program | None
    interpreter: Interpreter
    templates: tuple[Rebindable, ...]
    tier: Tier | None

    @classmethod
    def of(cls, graph: Graph, templates: list[Rebindable], checked: bool = False) -> Plan:
        """`checked` (anomaly mode): through the interpreter, which checks every node."""
        program = None if checked else Program.of(graph, exact=False)
        tier = Tier(graph) if program is not None and compilable(graph, program) else None
        return cls(graph, program, Interpreter(exact=False), tuple(templates), tier)

    def rebind(self, calls: list[Rebindable]) -> None:
        for template, call in zip(self.templates, calls, strict=True):
            template.rebind(call)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The gradients by output name."""
        if self.program is None:
            self.interpreter.rng = rng()
            return self.interpreter.run(self.graph, feeds, {})[0]
        if self.tier is None:
            return self._interpret(self.program, feeds)
        native = self.tier.compiled()
        if native is not None:
            outs = native.run(tuple(feeds[name] for name in native.input_names), ())
            return dict(zip(native.output_names, outs))
        with self.tier.interpreting():
            return self._interpret(self.program, feeds)

    def _interpret(self, program: Program, feeds: dict[str, np.ndarray]
                   ) -> dict[str, np.ndarray]:
        values = program.run([feeds[node.name or ""] for node in self.graph.inputs])
        return {name: v for (name, _), v in zip(self.graph.outputs, values)}


def backward(root: Tensor, seed: np.ndarray | None, inputs: Sequence[Tensor] | None = None,
             replay: Replay | None = None) -> None:
    """Add d root / d leaf to `.grad` of every leaf that requires it (as torch accumulates), and
    of every tensor on the way that asked to `retain_grad`; with `inputs`, of those alone; with
    `replay` (create_graph), as recorded tensors (`gradients`). A profiler sees it as one
    `dlg::backward` range."""
    seed = check_root(root, seed, "backward()")
    if replay is not None:
        check_no_hooks("backward(create_graph=True)")
    with record_function("dlg::backward"):
        order = tape([root])
        if inputs is None:
            wanted = [t for t, r in order if (r is None and t.record is None and t.requires_grad)
                      or (r is not None and r is t.record and retains_grad(t))]
        else:
            wanted = requiring_grad("backward()", inputs)
        roots = grad_hooks.with_hooks([(root, seed)], order, gradients)
        for t, value in zip(wanted, gradients(roots, order, wanted, replay)):
            if value is not None:
                t.accumulate_grad(grad_hooks.run(t, value) if t.record is None and replay is None
                                  else value)
                if t.record is None:
                    grad_hooks.post_accumulate(t)


def check_no_hooks(what: str) -> None:
    """Gradient hooks see and return arrays, which would cut a recorded gradient's graph."""
    if grad_hooks.registered():
        raise DlgValueError(f"{what}: gradients of gradients through tensors with hooks "
                            "(register_hook) are not supported; remove the hooks",
                            caller_span())


def retain_grad(t: Tensor) -> None:
    """`t.grad` filled by backward even though `t` is not a leaf (torch's retain_grad)."""
    if not t.requires_grad:
        raise DlgValueError("can't retain_grad on a tensor that has requires_grad=False",
                            caller_span())
    if t.record is not None:
        key = id(t)
        _retained[key] = weakref.ref(t, lambda _: _retained.pop(key, None))


def retains_grad(t: Tensor) -> bool:
    ref = _retained.get(id(t))
    return ref is not None and ref() is t


_retained: dict[int, weakref.ref] = {}


def check_root(root: Tensor, seed: np.ndarray | None, what: str) -> np.ndarray | None:
    """The seed to start from: `seed`, or for a one-element root of any rank (torch's
    `torch.Tensor([0])` a loss is summed into) ones of its shape; None for a 0-d root."""
    if root.record is None and not root.requires_grad:
        raise DlgValueError(f"{what}: the tensor does not require grad and has no grad_fn "
                            "(was it computed under no_grad, or from tensors without "
                            "requires_grad=True?)", caller_span())
    if seed is None and root.tensor_type.dtype.is_complex:
        raise DlgValueError(f"{what}: grad can be implicitly created only for real scalar "
                            f"outputs; this one is {root.tensor_type} (pass the gradient, or "
                            f"take a real part or abs first)", caller_span())
    if seed is None and root.tensor_type.rank != 0:
        if root.numel() != 1:
            raise DlgValueError(f"{what}: grad can be implicitly created only for scalar "
                                f"outputs; this one is {root.tensor_type} (pass the gradient)",
                                caller_span())
        return np.ones(root.shape, root.tensor_type.dtype.np)
    return seed


def requiring_grad(what: str, inputs: Sequence[Tensor]) -> list[Tensor]:
    for t in inputs:
        if not t.requires_grad:
            raise DlgValueError(f"{what}: an input does not require grad", caller_span())
    return list(inputs)


def gradients(roots: list[tuple[Tensor, np.ndarray | None]], order: Tape,
              wanted: list[Tensor], replay: Replay | None = None) -> list[Any]:
    """d sum over roots of <root, seed> (the root itself without one) / d each wanted tensor
    (None where no root depends on it), `order` the roots' tape: its gradient graph, kept per
    signature. Arrays; with `replay` (create_graph), tensors whose ops are recorded
    (`_recorded`), so they can be differentiated again."""
    cut: set[int] = set()
    if replay is not None:
        order, cut = _cut_at_wanted(roots, order, wanted)

    def wanted_key(t: Tensor) -> int:
        return id(t) if id(t) in cut else key(t, t.record)
    wanted_ids = {wanted_key(t) for t in wanted}
    checked = is_anomaly_enabled()
    # recorded values are read in (`_fed`) but where the gradients must be functions of the
    # leaves (create_graph) or anomaly mode names each backward node's forward op
    signature, feeds, names, calls = _signature(order, roots, wanted_ids, cut,
                                                feed=replay is None and not checked)
    if checked:
        signature = None  # a graph with the records' spans, checked node by node, for this call
    plans: OrderedDict[Any, Plan] = _state.__dict__.setdefault("plans", OrderedDict())
    plan = plans.get(signature) if signature is not None else None
    if plan is None:
        templates: list[Rebindable] = []
        graph = _gradient_graph(order, roots, wanted_ids, list(names), cut, templates,
                                feeds.keys())
        plan = Plan.of(graph, templates, checked)
        if signature is not None:
            plans[signature] = plan
            if len(plans) > KEPT:
                plans.popitem(last=False)
    elif signature is not None:
        plans.move_to_end(signature)
    plan.rebind(calls)
    results = (_recorded(plan.graph, feeds, order, replay) if replay is not None
               else plan.run(feeds))
    found = {ident: results[f"grad.{name}"] for name, ident in names.items()}
    return [found.get(wanted_key(t)) for t in wanted]


def _recorded(graph: Graph, feeds: dict[str, np.ndarray], order: Tape, replay: Replay
              ) -> dict[str, Tensor]:
    """The gradient graph run op by op on tensors (`replay`: tensor.run_graph), its leaf inputs
    bound to the leaf tensors themselves: the gradients are recorded functions of the leaves
    (torch's create_graph=True), so a penalty on a gradient (WGAN-GP, a physics-informed loss)
    differentiates again. The leaves are named in tape order, as `_signature` names them."""
    leaves = iter(t for t, r in order if r is None)
    bound: dict[str, Any] = {f"t{n}": t for n, t in enumerate(leaves)}
    names = [node.name or "" for node in graph.inputs]
    outputs = replay(graph, [bound[name] if name in bound else feeds[name] for name in names])
    return {name: t for (name, _), t in zip(graph.outputs, outputs)}


def _signature(order: Tape, roots: list[tuple[Tensor, np.ndarray | None]],
               wanted: set[int], cut: Collection[int] = (), feed: bool = False
               ) -> tuple[Any, dict[str, np.ndarray], dict[str, int], list[Rebindable]]:
    """The tape's signature (None when an attribute is unhashable), the graph's feeds by input
    name (leaves, seeds, zeros for the wanted non-leaves and, with `feed`, the recorded values
    `_fed` finds), the input name of each wanted value on the tape (to its key), in the names
    `_gradient_graph` gives them, and the `Rebindable` attributes of the calls; `cut`: the
    tensors the tape was cut at (`_cut_at_wanted`)."""
    position: dict[int, int] = {}
    first_of_call: dict[int, int] = {}
    entries: list[Any] = []
    feeds: dict[str, np.ndarray] = {}
    names: dict[str, int] = {}
    calls: list[Rebindable] = []
    # id(attributes) -> their part of the signature and their Rebindables: the records of one
    # kept eager plan share its attributes (a loop's tape holds each many times), all alive here
    parts: dict[int, tuple[tuple[Any, ...], list[Rebindable]]] = {}
    leaves = 0
    for i, (t, r) in enumerate(order):
        k = key(t, r)
        position[k] = i
        if r is None and id(t) in cut:  # a leaf here: its readers name its record
            position[key(t, t.record)] = i
        if r is None:
            name = f"t{leaves}"
            leaves += 1
            feeds[name] = t.numpy_view()
            leaf = t.tensor_type  # by dtype and shape: a TensorType hashes in Python
            entries.append((leaf.dtype, leaf.shape, k in wanted))
        else:
            call = first_of_call.setdefault(r.call, i)
            part = parts.get(id(r.attrs))
            if part is None:
                part = parts[id(r.attrs)] = _attributes_part(r.attrs)
            attrs, rebindable = part
            if call == i:
                calls.extend(rebindable)
            fed = feed and _fed(t, r)
            if fed:
                feeds[f"v{i}"] = t.numpy_view()
            entries.append((r.op, attrs,
                            tuple([position[id(s) if s is not None else id(p)]
                                   for p, s in zip(r.inputs, r.sources)]),
                            r.index, call, k in wanted, fed))
            if k not in wanted:
                continue
            name = f"r{i}"
            feeds[name] = np.zeros(t.tensor_type.shape, t.tensor_type.dtype.np)
        if k in wanted:
            names[name] = k
    for n, (root, seed) in enumerate(roots):
        if seed is not None:
            feeds[f"seed{n}"] = np.asarray(seed, root.tensor_type.dtype.np)
    signature: Any = (tuple((position[key(r, r.record)], s is not None) for r, s in roots),
                      *entries)
    try:
        hash(signature)
    except TypeError:  # an array attribute: this tape's graph is built for it alone
        signature = None
    return signature, feeds, names, calls


def _attributes_part(attrs: dict[str, Any]) -> tuple[tuple[Any, ...], list[Rebindable]]:
    """A record's attributes as its tape signature holds them (a `Rebindable` by its
    `tape_key`), and its Rebindables."""
    rebindable = [v for v in attrs.values() if isinstance(v, Rebindable)]
    if not rebindable:
        return tuple(attrs.items()), rebindable
    return tuple((k, ("rebound", v.tape_key()) if isinstance(v, Rebindable) else v)
                 for k, v in attrs.items()), rebindable


def _gradient_graph(order: Tape, roots: list[tuple[Tensor, np.ndarray | None]],
                    wanted: set[int], wrt: list[str], cut: Collection[int],
                    templates: list[Rebindable], fed: Collection[str] = ()) -> Graph:
    """The recorded ops as a graph from the leaves to `loss` (the sum of the roots, or of their
    inner products with the seeds), differentiated with respect to the inputs named `wrt`: the
    wanted leaves, and for each wanted non-leaf a zero input added to it (its gradient is the
    non-leaf's). `Rebindable` attributes go in as templates, appended to `templates`. The
    values named in `fed` (`v<i>`, tape entry i) are inputs of the differentiated graph, read
    where the gradient needs them, instead of computed again from the leaves (`_read_fed`)."""
    g = Graph("backward")
    b = Builder(g)
    node_of: dict[int, Value] = {}
    emitted: dict[int, tuple[Value, ...]] = {}
    leaves = 0
    for i, (t, r) in enumerate(order):
        k = key(t, r)
        if r is None:
            node_of[k] = b.input(f"t{leaves}", t.tensor_type)
            if id(t) in cut:
                node_of[key(t, t.record)] = node_of[k]
            leaves += 1
            continue
        if r.call not in emitted:
            attrs = {k: v.template() if isinstance(v, Rebindable) else v
                     for k, v in r.attrs.items()}
            templates.extend(v for v in attrs.values() if isinstance(v, Rebindable))
            with b.at(r.span):
                out = b.emit(r.op, *(node_of[key(p, s)] for p, s in zip(r.inputs, r.sources)),
                             **attrs)
            emitted[r.call] = out if isinstance(out, tuple) else (out,)
        node_of[k] = emitted[r.call][r.index]
        if f"v{i}" in fed:
            g.set_output(f"{FED}v{i}", node_of[k])
        if k in wanted:
            node_of[k] = b.add(node_of[k], b.input(f"r{i}", t.tensor_type))
    loss = None
    for n, (root, seed) in enumerate(roots):
        out = node_of[key(root, root.record)]
        if seed is not None:
            given = b.input(f"seed{n}", root.tensor_type)
            if root.tensor_type.dtype.is_complex:  # torch's: <root, seed> = Re(sum root conj(seed))
                out = b.real(b.reduce_sum(b.mul(out, b.conj(given))))
            else:
                out = b.reduce_sum(b.mul(out, given))
        loss = out if loss is None else b.add(loss, out)
    g.set_output("loss", loss)
    return _read_fed(grad_graph(g, "loss", wrt=wrt))


FED = "fed."  # the forward graph's outputs naming the values `_read_fed` reads from inputs


def _fed(t: Tensor, r: Record) -> bool:
    """Whether the gradient graph may read r's output as t holds it: r is t's record, t's
    memory not written in place since r made it (`versions.written_after`: an in-place op's
    input reads the old value, which dlg computes again), and r's op makes one output and is
    no view or reshape (those cost nothing to make again, and a view's record replayed after
    its base changed is younger than the writes that changed it)."""
    return (r is t.record and t._value is not None and r.op not in VIEWS
            and r.op not in RESHAPES and Trait.MULTI_OUTPUT not in r.op.traits
            and not versions.written_after(t, r.call))


def _read_fed(g: Graph) -> Graph:
    """`g` with each value it outputs as `fed.v<i>` made by an input `v<i>` instead of its
    node: the forward ops no gradient reads through them drop out (Program and the compiler
    run only what the outputs need). A value autodiff made in a saving form (several outputs)
    or that is an input already is computed as before."""
    fed = {v: name.removeprefix(FED) for name, v in g.outputs if name.startswith(FED)}

    def read(b: Builder, node: Node, inputs: tuple[Value, ...]) -> Value | None:
        if len(node.outs) == 1 and node.inputs and node.out in fed:
            return b.input(fed[node.out], node.types[0])
        return None
    out = copy_graph(g, read)
    out.outputs = [(name, v) for name, v in out.outputs if not name.startswith(FED)]
    return out


def key(t: Tensor, r: Record | None) -> int:
    """A value on the tape: a recorded value is its record (a tensor changed in place holds
    several in turn), a leaf its tensor."""
    return id(r) if r is not None else id(t)


def tape(roots: list[Tensor], cut: Collection[int] = ()) -> Tape:
    """The values the roots were made from, each after its inputs, as (tensor, record) pairs:
    the record (None for a leaf) the value had when it was read; refused where an op read a
    value since changed in place and its gradient needs it (`versions.check`). Tensors whose
    ids are in `cut` are leaves here where their current value was read (`_cut_at_wanted`)."""
    order: Tape = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, Record | None, bool]] = []
    for root in reversed(roots):
        r = current(root)
        stack.append((root, None if id(root) in cut and r is root.record else r, False))
    while stack:
        t, r, done = stack.pop()
        if done:
            order.append((t, r))
            continue
        k = id(r) if r is not None else id(t)  # key(t, r), inline: a tape walk is all lookups
        if k in seen:
            continue
        seen.add(k)
        stack.append((t, r, True))
        if r is not None:
            for p, s in zip(reversed(r.inputs), reversed(r.sources)):
                if s is not None and s is p.record and id(p) in cut:
                    s = None
                if (id(s) if s is not None else id(p)) not in seen:
                    stack.append((p, s, False))
    versions.check(order)
    return order


def _cut_at_wanted(roots: list[tuple[Tensor, np.ndarray | None]], order: Tape,
                   wanted: list[Tensor]) -> tuple[Tape, set[int]]:
    """With create_graph, the tape cut at the wanted non-leaves, which become its leaves: the
    gradients are then recorded functions of those tensors themselves (d(y^3)/dy = 3y^2 in
    terms of y, where the whole tape recomputes y from the leaves and a second gradient with
    respect to y would find it unused). Not where a wanted tensor is computed from another:
    the cut would drop the path between them."""
    inner = [t for t in wanted if t.record is not None]
    if not inner:
        return order, set()
    ids = {id(t) for t in inner}
    wanted_keys = {key(t, t.record) for t in wanted}
    for t, r in tape(inner):
        if key(t, r) in wanted_keys and not (id(t) in ids and r is t.record):
            return order, set()
    return tape([root for root, _ in roots], ids), ids
