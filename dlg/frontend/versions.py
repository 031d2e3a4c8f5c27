"""Which tensors were written in place after an op read them: torch's version counter, as
write times.

Every in-place write stamps the memory it changes (the NumPy array owning it, so a write through
a view stamps its base and every other view) with the next op-call id (`engine._calls`), which
orders it against the records. At backward, `check` looks at the tape: a record older than a
write to one of its inputs (or to its output) is stale. A recorded input is harmless to dlg,
whose gradient graph recomputes the forward from the leaves, but torch refuses it where the op
saved that value for its backward, so dlg does too: the values each op's VJP rule reads are found
by running the rule once (`saved`). A leaf is different: dlg reads its value at backward, so a
leaf written after an op read it is always an error (the gradient would be of the new value).
"""

from __future__ import annotations

import weakref
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from dlg.compiler.passes.autodiff import backward as vjp_walk
from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.ir.builder import Builder
from dlg.ir.decompose import decompose
from dlg.ir.graph import Graph, Value
from dlg.ir.ops.opdef import OpDef, Trait
from dlg.ir.types import TensorType

if TYPE_CHECKING:
    from dlg.frontend.engine import Record
    from dlg.frontend.tensor import Tensor

# id(owning array) -> (a weak reference to it, the call id of its last in-place write)
_writes: dict[int, tuple[weakref.ref, int]] = {}
_latest = 0  # the last write's call id: records made after it need no check


def _owner(a: np.ndarray) -> np.ndarray:
    """The array owning a's memory (NumPy collapses view chains; as_strided adds one object)."""
    while True:
        base = a.base
        if isinstance(base, np.ndarray):
            a = base
        elif base is not None and isinstance(getattr(base, "base", None), np.ndarray):
            a = base.base
        else:
            return a


def written(t: Tensor) -> None:
    """Note an in-place write to t's memory, now (before the op computing the new value is
    recorded: that op reads the old value, legitimately)."""
    global _latest
    owner = _owner(t.numpy_view())
    key = id(owner)
    entry = _writes.get(key)
    _latest = next(engine._calls)
    if entry is not None and entry[0]() is owner:
        _writes[key] = (entry[0], _latest)
    else:
        _writes[key] = (weakref.ref(owner, lambda _: _writes.pop(key, None)), _latest)


def kept(t: Tensor) -> Tensor:
    """Mark t, a recorded tensor's old value as an in-place op reads it: torch keeps its own
    copy of what such an op saves, so later writes to the tensor do not touch that input (they
    still are writes to the value t holds, as the output of the op that made it)."""
    key = id(t)
    _kept[key] = weakref.ref(t, lambda _: _kept.pop(key, None))
    return t


_kept: dict[int, weakref.ref] = {}
_dead = weakref.ref(engine)  # stands for no entry (a module, never a tensor)


def written_after(t: Tensor, call: int) -> bool:
    """Whether t's memory (any array sharing its owner) was written in place after op call
    `call` (torch's version counter, per owning array)."""
    if t._value is None:
        return False
    owner = _owner(t._value)
    entry = _writes.get(id(owner))
    return entry is not None and entry[0]() is owner and entry[1] > call


def check(order: list[tuple[Tensor, Record | None]]) -> None:
    """Refuse a tape one of whose ops read a value written in place since (see the module
    docstring)."""
    for t, r in order:
        if r is None or r.call > _latest:
            continue
        wants = tuple(s is not None or (p.record is None and p.requires_grad)
                      for p, s in zip(r.inputs, r.sources))
        reads: tuple[frozenset[int], bool] | None = None
        for i, (p, s) in enumerate(zip(r.inputs, r.sources)):
            if not written_after(p, r.call) or _kept.get(id(p), _dead)() is p:
                continue
            if s is None:
                _refuse(r, f"input {i} ({p.tensor_type}) of {r.op.name}, a tensor dlg reads again "
                        f"at backward, was changed in place after {r.op.name} read it")
            reads = reads or saved(r.op, r.attrs, tuple(q.tensor_type for q in r.inputs), wants)
            if i in reads[0]:
                _refuse(r, f"input {i} ({p.tensor_type}) of {r.op.name}, which its gradient needs, "
                        f"was changed in place after {r.op.name} read it")
        if written_after(t, r.call):
            reads = reads or saved(r.op, r.attrs, tuple(q.tensor_type for q in r.inputs), wants)
            if reads[1]:
                _refuse(r, f"output {r.index} ({t.tensor_type}) of {r.op.name}, which its gradient "
                        f"needs, was changed in place since")


def _refuse(r: Record, what: str) -> None:
    where = f" ({r.op.name} recorded at {r.span.file}:{r.span.line})" if r.span else ""
    raise DlgValueError(f"one of the variables needed for gradient computation has been "
                        f"modified by an inplace operation: {what}{where}; compute the new "
                        f"value out of place (or change a clone())", engine.caller_span())


def saved(op: OpDef, attrs: dict[str, Any], types: tuple[TensorType, ...],
          wants: tuple[bool, ...]) -> tuple[frozenset[int], bool]:
    """Which inputs (positions) and whether the outputs of `op` its VJP reads, when the inputs
    flagged in `wants` want gradients: the rule run once on a graph of the op alone (its
    decomposition for a composite). A value reached from an input through view ops counts as
    that input (linear's transposed weight); other intermediates of a composite are the
    composite's own. Kept per question; where the rule cannot run, everything counts as read."""
    try:
        return _saved(op, tuple(sorted(attrs.items())), types, wants)
    except TypeError:  # an unhashable attribute
        return _probe(op, attrs, types, wants)


@lru_cache(maxsize=256)
def _saved(op: OpDef, attrs: tuple[tuple[str, Any], ...], types: tuple[TensorType, ...],
           wants: tuple[bool, ...]) -> tuple[frozenset[int], bool]:
    return _probe(op, dict(attrs), types, wants)


def _probe(op: OpDef, attrs: dict[str, Any], types: tuple[TensorType, ...],
           wants: tuple[bool, ...]) -> tuple[frozenset[int], bool]:
    everything = (frozenset(range(len(types))), True)
    try:
        g = Graph(f"{op.name}.saved")
        b = Builder(g)
        ins = [b.input(f"in{i}", t) for i, t in enumerate(types)]
        out = b.emit(op, *ins, **attrs)
        for k, v in enumerate(out if isinstance(out, tuple) else (out,)):
            g.set_output(f"out{k}", v)
        forward = decompose(g)
        b = Builder(forward)
        before = set(forward.nodes)
        inputs = {node.id: i for i, node in enumerate(forward.inputs)}
        outputs = {v for _, v in forward.outputs}
        sources = {node.out for node in forward.inputs if wants[inputs[node.id]]
                   and node.types[0].dtype.is_inexact}
        seeds = {v: b.input(f"ct{k}", forward.type_of(v)) for k, (_, v) in
                 enumerate(forward.outputs) if forward.type_of(v).dtype.is_inexact}
        cotangents = vjp_walk(b, seeds, sources)
        ends = [cotangents[v] for v in sources if v in cotangents]
        used: set[Value] = set()
        for node_id in forward.ancestors(ends) - before:
            used.update(v for v in forward.nodes[node_id].inputs if v.node in before)
    except Exception:  # noqa: BLE001 (a rule that cannot run alone: assume the worst)
        return everything
    read: set[int] = set()
    for v in used:
        node = forward.node(v)
        while node.id not in inputs and v not in outputs and Trait.VIEW in node.op.traits:
            v = node.inputs[0]
            node = forward.node(v)
        if node.id in inputs:
            read.add(inputs[node.id])
    return frozenset(read), any(v in outputs for v in used)
