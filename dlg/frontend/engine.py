"""The eager engine: every eager op runs through the op registry, and backward through the
autodiff pass — no second implementation of any op or gradient.

`apply(op, inputs, attrs)` checks attributes and shapes with the op's own rules, computes the
value with its NumPy reference (composites through their decomposition, as the interpreter
runs them), and, when gradients are wanted, remembers how the result was made; `autograd`
turns those records into the gradient graph. What it derived from a call's key is kept
(`Planned`), so the same call again (`planned`) skips straight to the run and the records.
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from dlg.errors import DlgError, DlgValueError, Span
from dlg.ir.anomaly import check_op, is_anomaly_enabled
from dlg.ir.builder import Builder
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph, LayerCall, Value
from dlg.ir.ops.custom import STOP_GRADIENT
from dlg.ir.ops.opdef import OpDef, Trait
from dlg.ir.ops.linalg import DIAGONAL, diagonal_view
from dlg.ir.ops.shape import (
    FLATTEN,
    INDEX,
    RESHAPE,
    SLICE,
    SPLIT,
    SQUEEZE,
    TRANSPOSE,
    UNSQUEEZE,
    index_view,
    slice_index,
    sliced,
    split_views,
)
from dlg.ir.shapes import Sym
from dlg.ir.types import TensorType
from dlg.frontend import replay
from dlg.frontend.tiering import TieredOp
from dlg.runtime.interp import Interpreter, Program, takes_exact
from dlg.runtime.quiet import ignore_warnings, restore_warnings

if TYPE_CHECKING:
    from dlg.frontend.tensor import Tensor

class _State(threading.local):
    """Per-thread eager state; the class attributes are each thread's defaults, so reading one
    is an attribute lookup (a `getattr` with a default that misses costs an exception inside,
    ~0.6 us, and every op reads two)."""

    grad = True  # record ops (torch.is_grad_enabled)
    inference = False  # inside an inference_mode (torch.is_inference_mode_enabled)
    program_grad: bool | None = None  # the mode a forward dlg.compile traces sees (its caller's)
    program_grad_read = False  # whether that forward asked for it
    tracer: Tracer | None = None  # the dlg.trace call recording, if any
    interpreter: Interpreter | None = None  # composites' persistent interpreter
    timing = False  # inside a profiled op: the ops it dispatches are part of its time


_state = _State()
_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the dlg package


def grad_enabled() -> bool:
    """Whether ops record how they were made (torch.is_grad_enabled), per thread."""
    return _state.grad


def is_grad_enabled() -> bool:
    """torch.is_grad_enabled as the user's program sees it: while dlg.compile traces a forward
    (recording on: one graph serves both modes), its caller's mode (off inside the forward's own
    no_grad), noted as asked for, so the compiled module keeps a trace per mode (d2l's batch
    norm from scratch branches on it)."""
    program = _state.program_grad
    if program is None:
        return _state.grad
    _state.program_grad_read = True
    return program and _state.grad


class program_grad_mode:  # noqa: N801  (a context manager, as the grad modes)
    """While dlg.compile traces a forward: is_grad_enabled() answers `mode`; `read` says,
    after, whether the forward asked."""

    def __init__(self, mode: bool):
        self.mode, self.read = mode, False
        self.prev: tuple[bool | None, bool] = (None, False)

    def __enter__(self) -> program_grad_mode:
        self.prev = (_state.program_grad, _state.program_grad_read)
        _state.program_grad, _state.program_grad_read = self.mode, False
        return self

    def __exit__(self, *exc: object) -> None:
        self.read = _state.program_grad_read
        _state.program_grad, _state.program_grad_read = self.prev


class _GradMode:
    """Recording on or off within a `with` block, restored after it; as PyTorch's grad modes,
    an instance also decorates a function (each call runs in the mode)."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.prev = True

    def __enter__(self) -> None:
        self.prev = grad_enabled()
        _state.grad = self.mode

    def __exit__(self, *exc: object) -> None:
        _state.grad = self.prev

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        mode = self.mode

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with _GradMode(mode):
                return fn(*args, **kwargs)
        return run


class _Switch(_GradMode):
    """A mode without arguments: `with m():`, `@m()` or a bare `@m`."""

    MODE: bool

    def __new__(cls, fn: Callable[..., Any] | None = None) -> Any:
        return super().__new__(cls) if fn is None else _GradMode(cls.MODE)(fn)

    def __init__(self, fn: Callable[..., Any] | None = None):
        super().__init__(self.MODE)


class no_grad(_Switch):  # noqa: N801  (PyTorch's spellings, here and below)
    """No op records how it was made."""

    MODE = False


class enable_grad(_Switch):  # noqa: N801
    """Recording on again inside a no_grad block."""

    MODE = True


class inference_mode(_GradMode):  # noqa: N801
    """torch.inference_mode: no_grad when `mode` (eager dlg has no cheaper mode to offer), and
    is_inference_mode_enabled() says so; `@inference_mode` bare or called decorates."""

    def __new__(cls, mode: Any = True) -> Any:
        if isinstance(mode, bool):
            return super().__new__(cls)
        return cls()(mode)  # @inference_mode on a function, as torch's

    def __init__(self, mode: bool = True):
        super().__init__(not mode)
        self.inference, self.prev_inference = bool(mode), False

    def __enter__(self) -> None:
        super().__enter__()
        self.prev_inference, _state.inference = _state.inference, self.inference

    def __exit__(self, *exc: object) -> None:
        _state.inference = self.prev_inference
        super().__exit__(*exc)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        mode = self.inference

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with inference_mode(mode):
                return fn(*args, **kwargs)
        return run


def is_inference_mode_enabled() -> bool:
    """Whether an inference_mode block is running (torch.is_inference_mode_enabled)."""
    return _state.inference


class set_grad_enabled(_GradMode):  # noqa: N801
    """Switches recording at once, as a call; as a `with` block or decorator, only within it
    (the switch made by the call is undone when the block ends or the decoration is made)."""

    def __init__(self, mode: bool):
        super().__init__(mode)
        self.prev = grad_enabled()
        _state.grad = self.mode

    def __enter__(self) -> None:
        pass  # switched already, by __init__

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        _state.grad = self.prev
        return super().__call__(fn)


def rng() -> np.random.Generator:
    if not hasattr(_state, "rng"):  # unseeded: from fresh entropy, the seed kept (initial_seed)
        manual_seed(int(np.random.SeedSequence().entropy) % 2 ** 63)
    return _state.rng


def manual_seed(seed: int) -> None:
    """Seed dlg's eager random numbers (initialisers, randn, dropout)."""
    _state.rng = np.random.default_rng(seed)
    _state.seed = int(seed)


def initial_seed() -> int:
    """The seed of dlg's eager random numbers (the last manual_seed, or the one drawn from
    fresh entropy), as torch.initial_seed."""
    rng()
    return _state.seed


@contextmanager
def drawing_from(generator: np.random.Generator | None) -> Iterator[None]:
    """Eager random draws inside come from `generator` (a `generator=` argument, such as a
    `dlg.Generator`); None: from dlg's own."""
    if generator is None:
        yield
        return
    if not isinstance(generator, np.random.Generator):
        raise DlgValueError(f"generator must be a dlg.Generator, not "
                            f"{type(generator).__name__}", caller_span())
    saved = rng()
    _state.rng = generator
    try:
        yield
    finally:
        _state.rng = saved


def caller_span() -> Span | None:
    """The user's line that called into dlg (the first frame outside the package)."""
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_HERE):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return None
    line = frame.f_lineno
    return Span(frame.f_code.co_filename, line, 1, line, 1)


@dataclass(eq=False, slots=True)
class Record:
    """How a tensor was made: output `index` of `op` on `inputs` with `attrs`. `sources` are the
    inputs' records when it was made (None for a leaf): an input changed in place since has a
    new record, but this op read the old value, so backward follows `sources`, never the
    inputs' current records. Never changed once made (not frozen: a frozen dataclass's
    __init__ cost 0.84 us of every recorded op, a plain one's 0.21); compared by identity."""

    op: OpDef
    attrs: dict[str, Any]
    inputs: tuple[Tensor, ...]
    sources: tuple[Record | None, ...]
    index: int
    call: int  # one id per op call, shared by the outputs of multi-output ops
    span: Span | None = None  # the user's line, recorded in anomaly mode (named by backward)


_calls = itertools.count(1)  # op-call ids (the outputs of one call share one)


class TraceHazard(DlgValueError):
    """Python code asked for a tensor's value while tracing."""

    def __init__(self) -> None:
        super().__init__("this code needs a tensor's value (item(), numpy(), float(), `if` on a "
                         "tensor, ...) but dlg.trace records operations on symbolic tensors: "
                         "control flow must not depend on data; compute it with tensor ops "
                         "(where, max, ...) or outside the traced function", caller_span())


class Tracer:
    """The graph a `dlg.trace` call is recording, and how eager tensors enter it: a module's
    parameters and buffers as named params, other tensors as constants."""

    def __init__(self, graph: Graph, names: dict[int, tuple[str, bool]],
                 modules: dict[int, str] | None = None):
        self.graph = graph
        self.builder = Builder(graph)
        self.names = names  # id(tensor) -> (parameter name, trainable)
        self.modules = modules or {}  # id(module) -> its name in the traced module
        self.values: dict[int, Value] = {}
        self.constants: list[Tensor] = []  # kept alive: a freed tensor's id may come back
        self.rebound: set[int] = set()  # eager tensors an in-place op gave a graph value
        # id(view) -> (view, base, op, checked attrs, output index, base's value when taken)
        self.views: dict[int, tuple[Tensor, Tensor, OpDef, dict[str, Any], int, Value]] = {}
        self.layer_calls: list[LayerCall] = []
        self.cuts: dict[Value, Value] = {}  # value -> itself without gradient (stop_gradient)
        self.params: dict[int, Value] = {}  # id(parameter) -> its param node's value
        # id(alias) -> (alias, base): `base.data` taken in the trace, which writes reach
        self.aliases: dict[int, tuple[Tensor, Tensor]] = {}

    def update(self, buffer: Tensor, value: Tensor, what: str = "a running statistic") -> None:
        """Record a module buffer's next value (batch-norm running statistics) as a graph
        update. Any other tensor is refused: a traced model is a function of its inputs and
        its parameters, so an input (or a captured tensor) has no storage the model writes
        back to, and dropping the update would make the trace differ from the eager code."""
        if id(buffer) not in self.names:
            node = self.graph.node(buffer.graph_value) if buffer.graph_value is not None else None
            whose = (f"the traced function's input '{node.name}'"
                     if node is not None and node.op.name == "input" else
                     "not a buffer of the traced module")
            raise DlgValueError(f"{what} is updated in place, but it is {whose}: a traced "
                                f"model updates only its module's buffers; register it as a "
                                f"buffer of a Module (as nn.BatchNorm does) or pass None",
                                caller_span())
        name, _ = self.names[id(buffer)]
        self.value_of(buffer)  # the buffer is a param node of the graph
        self.graph.updates.append((name, self.value_of(value)))

    def called(self, module: Any, out: Any) -> None:
        """Note a submodule call (for the model summary)."""
        name = self.modules.get(id(module))
        outs = out if isinstance(out, tuple) else (out,)
        if name and all(getattr(o, "graph_value", None) is not None for o in outs):
            self.layer_calls.append(LayerCall(name, type(module).__name__,
                                              tuple(o.tensor_type for o in outs)))


    def dim_value(self, d: Sym) -> Value:
        """A symbolic size used as a number (`x * x.shape[0]`): an i64 scalar of the graph,
        each symbol the size of the input axis it names (numel over that axis)."""
        b = self.builder
        total: Value | None = None
        with b.at(caller_span()):
            for monomial, coefficient in d.terms:
                term = b.constant(np.array(coefficient), DType.i64)
                for name in monomial:
                    term = b.mul(term, self._symbol(name))
                total = term if total is None else b.add(total, term)
        assert total is not None  # a Sym has a term
        return total

    def _symbol(self, name: str) -> Value:
        for node in self.graph.inputs:
            for axis, dim in enumerate(node.types[0].shape):
                if dim == Sym.named(name):
                    return self.builder.numel(node.out, axes=(axis,), dtype=DType.i64)
        raise DlgValueError(f"the size {name} is no input's axis", caller_span())

    def owns(self, t: Tensor) -> bool:
        """Whether ops on t are traced: a graph value, a module's parameter or buffer, or an
        eager tensor an in-place op gave a graph value."""
        return t.graph_value is not None or id(t) in self.names or id(t) in self.rebound

    def viewed(self, views: Sequence[Tensor], base: Tensor, op: OpDef,
               attrs: dict[str, Any]) -> None:
        """Note traced views of `base` (an `engine.VIEWS` op), so that an in-place op on one
        rebinds the base too, and a view of a base changed since is taken again."""
        checked, value = check_attrs(op, attrs), self.value_of(base)
        for i, v in enumerate(views):
            self.views[id(v)] = (v, base, op, checked, i, value)

    def rebind(self, t: Tensor, value: Value) -> None:
        """t holds `value` from here on (an in-place op: earlier readers keep the old value);
        a module's parameter or buffer gets it as the graph's update too."""
        if t.graph_value is not None:
            t.graph_value = value
            return
        if id(t) in self.names:
            name, trainable = self.names[id(t)]
            self.value_of(t)  # its param node exists
            self.graph.updates = [u for u in self.graph.updates if u[0] != name]
            self.graph.updates.append((name, value))
            if trainable and value is not self.params[id(t)]:
                value = self._still_the_leaf(self.params[id(t)], value)
        else:
            self.constants.append(t)
            self.rebound.add(id(t))
        self.values[id(t)] = value

    def value_of(self, t: Tensor) -> Value:
        if t.graph_value is not None:
            view = self.views.get(id(t)) if self.views else None
            if view is not None and view[0] is t and self.value_of(view[1]) is not view[5]:
                self._retake(view)
            return t.graph_value
        if id(t) not in self.values:
            if id(t) in self.names:
                name, trainable = self.names[id(t)]
                self.values[id(t)] = self.builder.param(name, t.tensor_type, trainable=trainable)
                self.params[id(t)] = self.values[id(t)]
            else:
                self.constants.append(t)
                self.values[id(t)] = self.builder.constant(t.numpy_view(), t.tensor_type.dtype)
        return self.values[id(t)]

    def _still_the_leaf(self, param: Value, value: Value) -> Value:
        """A trainable parameter written in place (under no_grad, or through `.data`: torch
        refuses other writes to a leaf) as later ops read it: the new value, with the gradient
        going to the parameter itself, param + stop_gradient(value - param), as torch's
        autograd differentiates the leaf whatever was written into it."""
        with self.builder.at(caller_span()):
            return self.builder.add(param, self.cut(self.builder.sub(value, param)))

    def alias(self, alias: Tensor, base: Tensor) -> None:
        """`alias` is `base.data` taken in the trace: an in-place op on it writes base."""
        self.aliases[id(alias)] = (alias, base)

    def read(self, t: Tensor) -> Value:
        """t's value as an op reads it: with gradients off (no_grad), cut from the gradient path
        by a `stop_gradient`, as torch records nothing there (one cut per value; what an op
        computed from cut values needs none)."""
        v = self.value_of(t)
        return v if _state.grad else self.cut(v)

    def cut(self, v: Value) -> Value:
        """v without gradient: a `stop_gradient` of it (torch's detach), made once."""
        if v not in self.cuts:
            op = self.graph.node(v).op
            if not self.graph.type_of(v).dtype.is_inexact or (
                    Trait.SOURCE in op.traits and Trait.ARGUMENT not in op.traits):
                return v  # no gradient to stop: an integer, a constant
            with self.builder.at(caller_span()):
                self.cuts[v] = self.builder.emit(STOP_GRADIENT, v)
            self.cuts[self.cuts[v]] = self.cuts[v]
        return self.cuts[v]

    def _retake(self, view: tuple[Tensor, Tensor, OpDef, dict[str, Any], int, Value]) -> None:
        t, base, op, attrs, index, _ = view
        value = self.value_of(base)
        with self.builder.at(caller_span()):
            out = self.builder.emit(op, value, **attrs)
        t.graph_value = (out if isinstance(out, tuple) else (out,))[index]
        self.views[id(t)] = (t, base, op, attrs, index, value)


def current_tracer() -> Tracer | None:
    return _state.tracer


@contextmanager
def tracing(tracer: Tracer) -> Iterator[Tracer]:
    saved = _state.tracer
    _state.tracer = tracer
    try:
        yield tracer
    finally:
        _state.tracer = saved


def _symbolic(attrs: dict[str, Any]) -> bool:
    return any(isinstance(d, Sym) for v in attrs.values() if isinstance(v, tuple) for d in v)


def _trace(op: OpDef, inputs: Sequence[Tensor], attrs: dict[str, Any]) -> list[Output]:
    tracer: Tracer | None = _state.tracer
    if tracer is None:
        raise DlgValueError("a traced tensor was used outside its dlg.trace call",
                            caller_span())
    b = tracer.builder
    with b.at(caller_span()):
        out = b.emit(op, *(tracer.read(t) for t in inputs), **attrs)
    outs = out if isinstance(out, tuple) else (out,)
    if not _state.grad:  # computed from cut values: no gradient flows into them either
        tracer.cuts.update((v, v) for v in outs)
    return [(v, tracer.graph.type_of(v), None) for v in outs]


Output = tuple[Any, TensorType, "Record | None"]  # (array, or graph value when tracing; ...)


OpTimer = Callable[[OpDef, Sequence["Tensor"], int, int], None]
_op_timer: OpTimer | None = None  # set while dlg.profiler records (frontend/profiler.py)


def set_op_timer(timer: OpTimer | None) -> None:
    """Send each op dispatch's (op, inputs, start ns, end ns) to `timer` (the profiler's), or
    stop (None). No timer costs `apply` one check."""
    global _op_timer
    _op_timer = timer


def _timed(op: OpDef, inputs: Sequence[Tensor], attrs: dict[str, Any]) -> list[Output]:
    """`apply` timed; the ops it dispatches inside (a composite's) are part of its time."""
    timer = _op_timer
    _state.timing = True
    start = time.perf_counter_ns()
    try:
        return apply(op, inputs, attrs)
    finally:
        end = time.perf_counter_ns()
        _state.timing = False
        if timer is not None:
            timer(op, inputs, start, end)


def apply(op: OpDef, inputs: Sequence[Tensor], attrs: dict[str, Any]) -> list[Output]:
    """Run `op` eagerly: (value, type, record) per output (a graph value instead of data while
    tracing); the call's Planned is kept for `planned`."""
    if _op_timer is not None and not _state.timing:  # a profiler is recording
        return _timed(op, inputs, attrs)
    tracer = _state.tracer
    if tracer is not None and (any(tracer.owns(t) for t in inputs) or _symbolic(attrs)):
        # a parameter's op too (folding it would freeze it), and a constant's expand to N
        return _trace(op, inputs, attrs)
    from_types = tuple([t.tensor_type for t in inputs])
    arrays = [t.numpy_view() for t in inputs]
    try:
        checked = check_attrs(op, attrs) if attrs or op.attrs else {}
        types, run = plan(op, from_types, checked)
        values = run(arrays)
    except DlgError as e:
        raise e.with_span(caller_span()) from None
    found = Planned(op, checked, types, run)
    _keep(op, inputs, attrs, found)
    span = None
    if is_anomaly_enabled():
        span = caller_span()
        check_op(op.name, arrays, values, types, span)
    return found.made(values, inputs, span)


class Planned:
    """What `apply` derives from a call's key (the op, its inputs' dtypes and shapes, its
    attributes with their classes): checked attributes, output types, the run, whether outputs
    record. Kept per key (`planned`), so that a loop's repeated op is a dict lookup, its run,
    and its records: the general path's checks and plan keys cost more than a small op."""

    __slots__ = ("op", "checked", "types", "run", "records", "single")

    def __init__(self, op: OpDef, checked: dict[str, Any], types: tuple[TensorType, ...],
                 run: Run):
        self.op, self.checked, self.types, self.run = op, checked, types, run
        # per output: recorded when inputs require grad (random draws never are)
        self.records = tuple(Trait.RANDOM not in op.traits and t.dtype.is_inexact
                             for t in types)
        self.single = len(types) == 1 and Trait.MULTI_OUTPUT not in op.traits

    def one(self, inputs: Sequence[Tensor]) -> tuple[np.ndarray, Record | None]:
        """Run a `single` op on `inputs` (of the key's types): its value and record."""
        value = self.run([t.numpy_view() for t in inputs])[0]
        if value.__class__ is not np.ndarray:
            value = np.asarray(value)
        if self.records[0] and _state.grad and _any_requires_grad(inputs):
            return value, self._record(inputs, next(_calls), None, 0)
        return value, None

    def outputs(self, inputs: Sequence[Tensor]) -> list[Output]:
        """Run on `inputs` (of the key's types): (value, type, record) per output."""
        return self.made(self.run([t.numpy_view() for t in inputs]), inputs, None)

    def made(self, values: Sequence[Any], inputs: Sequence[Tensor], span: Span | None
             ) -> list[Output]:
        """The outputs of the run that gave `values`, recorded where gradients are wanted."""
        arrays = [v if v.__class__ is np.ndarray else np.asarray(v) for v in values]
        if not (_state.grad and True in self.records and _any_requires_grad(inputs)):
            return list(zip(arrays, self.types, itertools.repeat(None)))
        call = next(_calls)
        return [(v, t, self._record(inputs, call, span, i) if recorded else None)
                for i, (v, t, recorded) in enumerate(zip(arrays, self.types, self.records))]

    def _record(self, inputs: Sequence[Tensor], call: int, span: Span | None, index: int
                ) -> Record:
        return Record(self.op, self.checked, tuple(inputs), tuple([current(t) for t in inputs]),
                      index, call, span)


PLANNED_KEPT = 4096  # calls whose Planned is kept
_planned: dict[Any, Planned] = {}


def _call_key(op: OpDef, inputs: Sequence[Tensor], attrs: dict[str, Any]) -> Any:
    """A call's key: the inputs' dtypes and shapes (not TensorTypes, whose hash is Python's),
    the attributes with their classes (1, 1.0 and True are equal keys)."""
    n = len(inputs)
    if n == 1:
        a = inputs[0].tensor_type
        key: tuple[Any, ...] = (op, a.dtype, a.shape)
    elif n == 2:
        a, b = inputs[0].tensor_type, inputs[1].tensor_type
        key = (op, a.dtype, a.shape, b.dtype, b.shape)
    else:
        types = [t.tensor_type for t in inputs]
        key = (op, n, *[t.dtype for t in types], *[t.shape for t in types])
    return (*key, *[(k, v.__class__, v) for k, v in attrs.items()]) if attrs else key


def planned(op: OpDef, inputs: Sequence[Tensor], attrs: dict[str, Any]) -> Planned | None:
    """The kept Planned of this call, if any and `planning()`."""
    if not planning():
        return None
    try:
        return _planned.get(_call_key(op, inputs, attrs))
    except TypeError:  # an unhashable attribute (an array)
        return None


def planning() -> bool:
    """Whether ops may run as kept (`Planned`): not while a profiler records (it times each
    op), in anomaly mode (it checks each op) or while tracing (ops may become graph nodes)."""
    return _op_timer is None and _state.tracer is None and not is_anomaly_enabled()


def _keep(op: OpDef, inputs: Sequence[Tensor], attrs: dict[str, Any], found: Planned) -> None:
    try:
        key = _call_key(op, inputs, attrs)
        hash(key)
    except TypeError:
        return
    if len(_planned) >= PLANNED_KEPT:
        _planned.clear()
    _planned[key] = found


def forget_plans() -> None:
    """Drop every kept plan, the replay recordings' too (a test that changes how plans are
    made: tiering's thresholds)."""
    _plans.clear()
    _planned.clear()
    replay.forget()


def _any_requires_grad(inputs: Sequence[Tensor]) -> bool:
    for t in inputs:
        if t._requires_grad:
            return True
    return False


def current(t: Tensor) -> Record | None:
    """t's record, first made again on its base's record where t is a view whose base has been
    changed in place since the view was taken, or whose base is such a view (torch's view
    replay): t's value already shows the change, through NumPy."""
    r = t.record
    if r is not None and (r.op in VIEWS or r.op in RESHAPES):
        base = r.inputs[0]
        source = current(base)
        if r.sources[0] is not source and view_base(t) is not None:
            t.record = r = Record(r.op, r.attrs, (base,), (source,), r.index, next(_calls),
                                  r.span)
    return r


# Ops whose eager value is a NumPy view of their input, as torch's are views: an in-place op
# on `x[0]`, `x[:, 1:]`, `x.t()`, `x.unbind(0)[1]` or `x.diagonal()` writes into x, and they see
# x's in-place changes (the interpreter's references copy: its buffers are its own)
VIEWS: dict[OpDef, Callable[..., tuple[np.ndarray, ...]]] = {
    SLICE: lambda x, **attrs: (sliced(x, **attrs),),
    TRANSPOSE: lambda x, perm: (np.transpose(x, perm),), SPLIT: split_views,
    INDEX: lambda x, **attrs: (index_view(x, **attrs),),
    DIAGONAL: lambda x, **attrs: (diagonal_view(x, **attrs),)}

# Ops whose eager value is a NumPy view of their input where NumPy can make one (a contiguous
# input), as torch's view and reshape are views
RESHAPES = frozenset({RESHAPE, SQUEEZE, UNSQUEEZE, FLATTEN})


def view_base(t: Tensor) -> Tensor | None:
    """The tensor whose memory t's recorded value is a view of, if any."""
    r = t.record
    if r is None or not (r.op in VIEWS or r.op in RESHAPES):
        return None
    base = r.inputs[0]
    if r.op in RESHAPES and not np.may_share_memory(t.numpy_view(), base.numpy_view()):
        return None  # NumPy copied
    return base


CHECKED_KEPT = 4096  # (op, attributes) whose checked attributes are kept
_checked: dict[Any, dict[str, Any]] = {}


def check_attrs(op: OpDef, attrs: dict[str, Any]) -> dict[str, Any]:
    """`op.check_attrs` once per (op, attributes, their classes): a loop passes the same
    attributes at every step, and checking them (kinds, ranges, normalised tuples) cost more
    than a small op. Unhashable attributes (an array) are checked each time, and so is a call
    whose answer is an error."""
    try:
        key: Any = (op, *((k, v.__class__, v) for k, v in attrs.items()))
        found = _checked.get(key)
    except TypeError:
        return op.check_attrs(attrs)
    if found is None:
        found = op.check_attrs(attrs)
        if len(_checked) >= CHECKED_KEPT:
            _checked.clear()
        _checked[key] = found
    return found


Run = Callable[[list[np.ndarray]], tuple[np.ndarray, ...]]
PLANS_KEPT = 4096  # (op, input types, attributes) whose plans are kept
_plans: dict[Any, tuple[tuple[TensorType, ...], Run]] = {}


def plan(op: OpDef, types: tuple[TensorType, ...], checked: dict[str, Any]
         ) -> tuple[tuple[TensorType, ...], Run]:
    """How eager runs `op` on inputs of these types: its output types and a function of the
    input arrays giving its values, made once per (op, input types, checked attributes), as a
    loop asks the same question at every step. Checked attributes are normalised by kind (ints,
    floats, bools, tuples of ints), so equal keys mean equal questions; an unhashable one (an
    array) is planned each time, and so is a question whose answer is an error."""
    try:
        key: Any = (op, types, *checked.values())
        found = _plans.get(key)
    except TypeError:
        return _plan(op, types, checked, keep=False)
    if found is None:
        found = _plan(op, types, checked, keep=True)
        if len(_plans) >= PLANS_KEPT:
            _plans.clear()
        _plans[key] = found
    return found


def _plan(op: OpDef, types: tuple[TensorType, ...], checked: dict[str, Any], keep: bool
          ) -> tuple[tuple[TensorType, ...], Run]:
    out = op.infer(*types, **checked)
    out_types = out if isinstance(out, tuple) else (out,)
    view = VIEWS.get(op)
    if op is SLICE:  # a view whose NumPy index follows from the plan's shape: made once
        index = slice_index(types[0].shape, **checked)
        return out_types, lambda arrays: (arrays[0][index],)
    if view is not None:
        return out_types, lambda arrays: view(arrays[0], **checked)
    if op in RESHAPES and op.ref is not None:  # moves no numbers: no warnings to turn off
        reshaped = functools.partial(op.ref, **checked)
        return out_types, lambda arrays: (reshaped(arrays[0]),)
    if op.ref is not None:
        run = _reference(op, checked)
    else:
        composite = _composite(op, checked, types, keep)
        run = composite.interpret if composite.program is None else composite.program.run
    if keep and _tiers(op, types):
        run = TieredOp(functools.partial(_one_node_graph, op, checked, types), run)
    return out_types, run


def _tiers(op: OpDef, types: tuple[TensorType, ...]) -> bool:
    """Whether eager may move a plan of `op` to compiled code (`TieredOp`, which checks that
    the graph lowers once the plan is hot): float32 inputs (float64 keeps NumPy's exact
    rounding), not views and reshapes (they share the input's memory), random draws (dlg's
    generator) or Python."""
    return (all(t.dtype is DType.f32 or not t.dtype.is_inexact for t in types)
            and not (op in RESHAPES or op.needs_ctx or Trait.RANDOM in op.traits
                     or Trait.PYTHON in op.traits))


def _reference(op: OpDef, attrs: dict[str, Any]) -> Run:
    """op's reference with its attributes bound: products in the inputs' dtype (`exact=False`),
    log(0) and 0/0 inf and nan, silently, as torch's; random ops draw from dlg's generator."""
    bound = {**attrs, **({"exact": False} if takes_exact(op) else {})}
    ref = functools.partial(op.ref, **bound) if bound else op.ref
    needs_ctx = op.needs_ctx

    def run(arrays: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        token = ignore_warnings()
        try:
            out = ref(*arrays, ctx=_Ctx()) if needs_ctx else ref(*arrays)
        finally:
            restore_warnings(token)
        return out if out.__class__ is tuple else (out,)
    return run


class _Ctx:
    """What `needs_ctx` references get in eager mode: the shared random generator, and a way to
    run a scan's body graph (with an interpreter kept for the one op call: its expansion cache
    is keyed by node identity)."""

    env: dict[str, int] = {}

    @property
    def rng(self) -> np.random.Generator:
        return rng()

    @cached_property
    def interpreter(self) -> Interpreter:
        return _interpreter()

    def run(self, graph: Graph, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.interpreter.run_positional(graph, args)


@dataclass(frozen=True)
class Composite:
    """A one-node graph of a composite op and the program eager runs it with (None where one
    cannot be made: the graph then goes through the interpreter, `interpret`); `kept` graphs
    live as long as the process, so the persistent interpreter may cache their expansion."""

    graph: Graph
    program: Program | None
    kept: bool

    def interpret(self, arrays: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        interp = _interpreter(persistent=self.kept)
        results, _ = interp.run(self.graph, {f"in{i}": a for i, a in enumerate(arrays)}, {})
        return tuple(results[f"out{i}"] for i in range(len(self.graph.outputs)))


_composites: dict[Any, Composite] = {}


def _composite(op: OpDef, attrs: dict[str, Any], types: tuple[TensorType, ...], keep: bool
               ) -> Composite:
    """The composite op's graph and program, kept per (op, attributes, input types) where
    `keep` (hashable attributes), so an eager loop expands each composite once."""
    key = (op, types, *attrs.values())  # checked attributes, in the schema's order
    if keep and key in _composites:
        return _composites[key]
    g = _one_node_graph(op, attrs, types)
    if not keep:
        return Composite(g, None, False)
    _composites[key] = Composite(g, Program.of(g, exact=False), True)
    return _composites[key]


def _one_node_graph(op: OpDef, attrs: dict[str, Any], types: tuple[TensorType, ...]) -> Graph:
    """op on inputs in0, in1, ... of these types, its outputs out0, out1, ..."""
    g = Graph(op.name)
    b = Builder(g)
    ins = [b.input(f"in{i}", t) for i, t in enumerate(types)]
    outs = b.emit(op, *ins, **attrs)
    for i, v in enumerate(outs if isinstance(outs, tuple) else (outs,)):
        g.set_output(f"out{i}", v)
    return g


def _interpreter(persistent: bool = False) -> Interpreter:
    """An interpreter drawing from dlg's RNG, with eager's working precision (products in the
    inputs' dtype, `Interpreter(exact=False)`). The persistent one (per thread) keeps its
    expansion cache, which is keyed by node identity: only graphs that live as long as it
    (the kept composite graphs) may run on it."""
    interp: Interpreter | None = _state.interpreter if persistent else None
    if interp is None:
        interp = Interpreter(exact=False)
        if persistent:
            _state.interpreter = interp
    interp.rng = rng()
    return interp
