"""Eager calls of a user-facing function replayed from a recording of its ops.

dlg.functions are written against a `Front` that may be symbolic (the .dlg elaborator, the
tracer), so which ops they emit, and with which attributes, follows from their arguments' types
and static values alone, never from tensor data. The first eager call with a given `key` (the
function, each tensor argument's type, every other argument's class and value; an index's
slices by their bounds) records the ops it emits (`recording`); later calls with that key emit
the same ops on their own tensors (`replay`), skipping argument binding, checks and the
function's Python: most of a small op's time (a loop's `x.sum(1)`: 19.8 -> 9.7 us, `x.view(-1)`
13.1 -> 7.9). A call is recorded only where every op reads the arguments' tensors or earlier
ops' outputs and the result is one of those (a function that lifts a number into a tensor, or
returns a number, runs as before). The eager front decides how a step runs (`Step.planned`: its
kept plan, once it has one), and sends the ops its `emit` does more for (dropout's fresh mask,
the class-index check of cross entropy) through `emit` at every replay.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterator

import numpy as np

from dlg.ir.dtypes import DType
from dlg.ir.ops.opdef import OpDef

KEPT = 4096  # recordings kept (a loop over many shapes makes one per shape)
STATIC = frozenset({int, float, bool, str, type(None), DType, np.float32, np.float64, np.int64,
                    np.int32, np.bool_})  # classes whose values key a call as they are
Ref = tuple[str, Any, int]  # ("arg", position or keyword, element or -1) or ("out", step, output)
Emit = Callable[..., Any]


class _Unkeyed(Exception):
    """An argument that cannot key a call (an array, a slice, a tensor being traced)."""


@dataclass(eq=False, slots=True)
class Step:
    op: OpDef
    inputs: tuple[Ref, ...]
    attrs: dict[str, Any]
    planned: Any = None  # the eager front's kept run of this op on these types, once it has one


@dataclass(frozen=True)
class Recording:
    steps: tuple[Step, ...]
    result: Ref | tuple[Ref, ...]

    @cached_property
    def positions(self) -> tuple[tuple[int, int], ...] | None:
        """Where a one-step recording reads its inputs, (argument, element or -1), if all are
        positional arguments or their elements and its result is the step's (first) output
        (x.sum(1), F.log_softmax(x, 1), cat((x, h), 1): most calls), so that `replay` picks
        them without walking refs; None for other recordings."""
        if len(self.steps) != 1 or self.result != ("out", 0, 0):
            return None
        refs = self.steps[0].inputs
        if not all(kind == "arg" and where.__class__ is int for kind, where, _ in refs):
            return None
        return tuple((where, j) for _, where, j in refs)


_recordings: dict[Hashable, Recording] = {}
_state = threading.local()
TENSOR: type = object  # dlg.Tensor, set by frontend/tensor.py


def key(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable | None:
    """What a call's ops follow from, or None when an argument cannot say (see `_part`)."""
    try:
        return (name, tuple(map(_part, args)),
                tuple([(k, _part(v)) for k, v in kwargs.items()]) if kwargs else ())
    except _Unkeyed:
        return None


def _part(value: Any) -> Any:
    cls = value.__class__
    if cls in STATIC:
        return cls, value  # 1, 1.0 and True hash alike; functions tell them apart
    if isinstance(value, TENSOR):
        if value.graph_value is not None:
            raise _Unkeyed
        t = value.tensor_type
        return TENSOR, t.dtype, t.shape  # a TensorType's own hash is Python's
    if cls is tuple or cls is list:
        return cls, tuple(map(_part, value))
    if cls is slice:  # an index item (x[:, :k]); Python 3.11's slices do not hash
        start, stop, step = value.start, value.stop, value.step
        if start.__class__ in STATIC and stop.__class__ in STATIC and step.__class__ in STATIC:
            return cls, start.__class__, start, stop.__class__, stop, step.__class__, step
        raise _Unkeyed
    if value is Ellipsis:
        return cls, None
    raise _Unkeyed


def forget() -> None:
    """Drop every recording (and so the plans their steps keep)."""
    _recordings.clear()


def found(call_key: Hashable | None) -> Recording | None:
    return None if call_key is None else _recordings.get(call_key)


@contextmanager
def recording(call_key: Hashable | None, args: tuple[Any, ...], kwargs: dict[str, Any]
              ) -> Iterator[list[Any]]:
    """Record the ops emitted inside the block; `done(result)` on the yielded list keeps the
    recording under `call_key` where the call qualifies."""
    if call_key is None or getattr(_state, "emits", None) is not None:
        yield []  # nothing to key, or inside another recording: its caller records
        return
    emits: list[tuple[OpDef, tuple[Any, ...], dict[str, Any], Any]] = []
    _state.emits = emits
    box: list[Any] = []
    try:
        yield box
    finally:
        _state.emits = None
    if box:
        made = _made(emits, args, kwargs, box[0])
        if made is not None:
            if len(_recordings) >= KEPT:
                _recordings.clear()
            _recordings[call_key] = made


def emitting() -> list[Any] | None:
    """The list the current recording collects emits in, if one is recording; cleared while an
    emit runs, so the ops an emit makes inside itself are not recorded again."""
    return getattr(_state, "emits", None)


@contextmanager
def inside_emit() -> Iterator[None]:
    saved, _state.emits = _state.emits, None
    try:
        yield
    finally:
        _state.emits = saved


def _made(emits: list[Any], args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
          ) -> Recording | None:
    refs: dict[int, Ref] = {}
    given = 0
    for position, value in [*enumerate(args), *kwargs.items()]:
        if isinstance(value, TENSOR):
            refs[id(value)] = ("arg", position, -1)
            given += 1
        elif isinstance(value, (tuple, list)):
            for j, item in enumerate(value):
                if isinstance(item, TENSOR):
                    refs[id(item)] = ("arg", position, j)
                    given += 1
    if len(refs) < given:
        return None  # a tensor given twice (cat([x, x])): a replay on two tensors must not alias
    steps = []
    for k, (op, inputs, attrs, out) in enumerate(emits):
        if any(id(t) not in refs for t in inputs):
            return None  # a lifted number or another made tensor: not a function of the args
        try:
            hash(tuple(attrs.items()))
        except TypeError:
            return None  # a list or an array the caller may change before a replay reads it
        steps.append(Step(op, tuple(refs[id(t)] for t in inputs), attrs))
        for j, t in enumerate(out if isinstance(out, tuple) else (out,)):
            refs.setdefault(id(t), ("out", k, j))
    if result.__class__ is tuple:
        if not all(id(t) in refs for t in result):
            return None
        return Recording(tuple(steps), tuple(refs[id(t)] for t in result))
    if id(result) not in refs or not isinstance(result, TENSOR):
        return None
    return Recording(tuple(steps), refs[id(result)])


def replay(made: Recording, emit: Callable[[Step, tuple[Any, ...]], Any], args: tuple[Any, ...],
           kwargs: dict[str, Any]) -> Any:
    """The recorded ops emitted again (`emit(step, its inputs)`) on this call's tensors; its
    result."""
    positions = made.positions
    if positions is not None:
        out = emit(made.steps[0], tuple([args[i] if j < 0 else args[i][j] for i, j in positions]))
        return out[0] if out.__class__ is tuple else out
    outs: list[tuple[Any, ...]] = []

    def value(ref: Ref) -> Any:
        kind, where, j = ref
        if kind == "out":
            return outs[where][j]
        given = kwargs[where] if where.__class__ is str else args[where]
        return given if j < 0 else given[j]
    for step in made.steps:
        out = emit(step, tuple(map(value, step.inputs)))
        outs.append(out if out.__class__ is tuple else (out,))
    result = made.result
    if result[0].__class__ is tuple:
        return tuple(map(value, result))  # type: ignore[arg-type]
    return value(result)  # type: ignore[arg-type]
