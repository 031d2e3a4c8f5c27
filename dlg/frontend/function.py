"""`dlg.autograd.Function`: torch.autograd.Function, an op whose gradient the user writes.

A subclass gives static `forward(ctx, *args)` (or `forward(*args)` with `setup_context(ctx,
inputs, output)`) and `backward(ctx, *grads)`, one gradient per argument (None for a non-tensor
one or one needing none); `Function.apply(*args)` runs it.

Eagerly, forward runs on concrete tensors with recording off and its outputs are recorded as
ONE `py_function` op (dlg/ir/ops/custom.py) whose VJP is another `py_function` calling
`backward` on concrete tensors when the gradient graph runs: the user's Python, as in torch.
Such a gradient graph holds this call's ctx, so a tape with a Function is differentiated anew
at each backward (it is not kept by signature). With create_graph, backward runs with recording
on, so its own ops are differentiated again (not under `once_differentiable`, whose results
refuse a second derivative).

Traced (`dlg.trace`), forward and backward are each traced into a body graph of one
`custom_vjp` node whose VJP is the traced backward, so the compiled gradient is the user's,
never the forward's own. A body sees only what it is given: a traced tensor forward reads
without it being an argument of `apply`, or backward reads without it being saved with
`ctx.save_for_backward`, is refused by name, as is backward code that needs a tensor's value.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.errors import DlgError, DlgShapeError, DlgTypeError, DlgValueError
from dlg.frontend import forward_ad
from dlg.frontend.autograd import Rebindable
from dlg.frontend.engine import (
    Tracer,
    caller_span,
    current_tracer,
    enable_grad,
    grad_enabled,
    no_grad,
    tracing,
)
from dlg.frontend.tensor import Tensor, apply as apply_op, call
from dlg.ir.builder import Builder
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.common import sum_to_shape
from dlg.ir.ops.custom import CUSTOM_VJP, PY_FUNCTION
from dlg.ir.ops.elementwise import CAST
from dlg.ir.types import TensorType


class FunctionCtx:
    """What a Function's forward and backward share (torch's ctx): the saved tensors, which
    inputs need a gradient, which outputs have none, and any attribute the user sets."""

    def __init__(self, needs_input_grad: tuple[bool, ...]):
        self.needs_input_grad = needs_input_grad
        self.materialize_grads = True
        self._saved: tuple[Tensor | None, ...] = ()
        self._non_differentiable: set[int] = set()

    def save_for_backward(self, *tensors: Tensor | None) -> None:
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise DlgTypeError(f"save_for_backward takes tensors (or None), not "
                                   f"{type(t).__name__}; keep other values as ctx attributes",
                                   caller_span())
        self._saved = tensors

    @property
    def saved_tensors(self) -> tuple[Tensor | None, ...]:
        return self._saved

    def mark_non_differentiable(self, *tensors: Tensor) -> None:
        """These outputs get no gradient (torch's: they do not require grad, and backward
        receives zeros for them)."""
        self._non_differentiable.update(id(t) for t in tensors)

    def set_materialize_grads(self, value: bool) -> None:
        """Accepted for torch's programs; dlg always passes zeros where no gradient flowed
        (what a backward written for None must handle too, as torch's default does)."""
        self.materialize_grads = bool(value)

    def mark_dirty(self, *tensors: Tensor) -> None:
        raise DlgValueError("mark_dirty: a Function changing its inputs in place is not "
                            "supported; return a new tensor instead", caller_span())


def once_differentiable(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a backward that is not itself differentiable (it runs with recording off):
    differentiating its result again (create_graph) is an error naming the Function."""
    @functools.wraps(fn)
    def backward(ctx: FunctionCtx, *grads: Any) -> Any:
        with no_grad():
            return fn(ctx, *grads)
    backward.once_differentiable = True  # type: ignore[attr-defined]
    return backward


class Function:
    """Subclass with static `forward` and `backward`; call `apply` (see the module docstring)."""

    @staticmethod
    def forward(ctx: Any, *args: Any) -> Any:
        raise DlgValueError("a Function subclass must define a static forward(ctx, *args)",
                            caller_span())

    @staticmethod
    def setup_context(ctx: FunctionCtx, inputs: tuple[Any, ...], output: Any) -> None:
        pass  # overridden: forward does not take ctx (torch's second style)

    @staticmethod
    def backward(ctx: FunctionCtx, *grads: Any) -> Any:
        raise DlgValueError("a Function subclass must define a static backward(ctx, *grads) "
                            "to be differentiated", caller_span())

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise DlgTypeError(f"{cls.__name__}.apply takes positional arguments only (as "
                               f"torch's), got {', '.join(kwargs)}", caller_span())
        tracer = current_tracer()
        if tracer is not None and any(isinstance(a, Tensor) and tracer.owns(a) for a in args):
            return _traced(cls, tracer, args)
        return _eager(cls, args)


def _forward(cls: type[Function], ctx: FunctionCtx, args: tuple[Any, ...]) -> Any:
    if cls.setup_context is not Function.setup_context:
        out = cls.forward(*args)
        cls.setup_context(ctx, args, out)
        return out
    return cls.forward(ctx, *args)


def _tensor_positions(cls: type[Function], out: Any) -> tuple[tuple[Any, ...], list[int]]:
    outs = out if isinstance(out, tuple) else (out,)
    positions = [i for i, o in enumerate(outs) if isinstance(o, Tensor)]
    if not positions:
        raise DlgTypeError(f"{cls.__name__}.forward returned no tensor", caller_span())
    return outs, positions


# ---- eager: the user's backward runs when the gradient graph does ------------------------------
def _eager(cls: type[Function], args: tuple[Any, ...]) -> Any:
    recording = grad_enabled()
    ctx = FunctionCtx(tuple(recording and isinstance(a, Tensor) and a.requires_grad
                            for a in args))
    with no_grad():
        out = _forward(cls, ctx, args)
    outs, positions = _tensor_positions(cls, out)
    if forward_ad._levels and getattr(cls, "jvp", None) is not None:  # forward-mode AD
        dual = forward_ad.function_jvp(cls, ctx, args, out)
        if dual is not None:
            return dual
    if not any(ctx.needs_input_grad):
        return out
    node = _Forward(cls, ctx, args, outs, positions)
    results = apply_op(PY_FUNCTION, *(a for a in args if isinstance(a, Tensor)), fn=node)
    made = list(outs)
    for i, r in zip(positions, results):
        made[i] = (Tensor.result(r.numpy_view(), r.tensor_type, None)
                   if id(outs[i]) in ctx._non_differentiable else r)
    # a saved output is the recorded one (backward's use of it differentiates again)
    recorded = {id(outs[i]): made[i] for i in positions}
    ctx._saved = tuple(recorded.get(id(t), t) for t in ctx._saved)
    return tuple(made) if isinstance(out, tuple) else made[0]


class _Forward(Rebindable):
    """The `fn` of an eager Function's py_function node: its outputs as forward made them, and
    a VJP that is a py_function calling backward. Per call: a kept gradient graph holds a
    template of it, rebound to each step's call (autograd.Rebindable)."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, cls: type[Function], ctx: FunctionCtx, args: tuple[Any, ...],
                 outs: tuple[Any, ...], positions: list[int]):
        self.cls, self.ctx, self.args, self.positions = cls, ctx, args, positions
        self.n_outputs = len(outs)
        self.arrays = [outs[i].numpy_view() for i in positions]
        self.types = [outs[i].tensor_type for i in positions]

    def __repr__(self) -> str:
        return f"{self.cls.__name__}.forward"

    def tape_key(self) -> tuple[Any, ...]:
        return (self.cls, tuple(self.types), tuple(self.positions), self.n_outputs,
                self.ctx.needs_input_grad,
                tuple(a.tensor_type if isinstance(a, Tensor) else type(a) for a in self.args))

    def template(self) -> _Forward:
        return copy.copy(self)

    def rebind(self, call: _Forward) -> None:
        self.ctx, self.args, self.arrays = call.ctx, call.args, call.arrays

    def infer(self, types: tuple[TensorType, ...]) -> list[TensorType]:
        return self.types

    def compute(self, arrays: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        return self.arrays

    def eager(self, inputs: tuple[Tensor, ...]) -> Any:
        """Run on tensors (a create_graph gradient graph replayed): recorded again on them."""
        return apply_op(PY_FUNCTION, *inputs, fn=self)

    def vjp(self, b: Builder, node: Node, g: tuple[Value, ...]) -> tuple[Value | None, ...]:
        grads = iter(b.emit(PY_FUNCTION, *g, fn=_Backward(self)))
        return tuple(next(grads) if b.type_of(v).dtype.is_float else None
                     for v in node.inputs)


class _Backward:
    """The `fn` of the py_function node a Function's VJP makes: calls the user's backward."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, forward: _Forward):
        self.forward = forward
        self.name = forward.cls.__name__

    def __repr__(self) -> str:
        return f"{self.name}.backward"

    def infer(self, types: tuple[TensorType, ...]) -> list[TensorType]:
        return [a.tensor_type for a in self.forward.args
                if isinstance(a, Tensor) and a.tensor_type.dtype.is_float]

    def compute(self, arrays: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        with no_grad():
            return [g.numpy_view() for g in self._call([Tensor.of(a) for a in arrays])]

    def eager(self, grads: tuple[Tensor, ...]) -> Any:
        """create_graph: backward's ops recorded, so they differentiate again; a
        once_differentiable backward is one node whose VJP refuses."""
        if getattr(self.forward.cls.backward, "once_differentiable", False):
            return apply_op(PY_FUNCTION, *grads, fn=self)
        with enable_grad():
            return tuple(self._call(list(grads)))

    def vjp(self, b: Builder, node: Node, g: tuple[Value, ...]) -> tuple[Value | None, ...]:
        raise DlgValueError(f"{self.name}.backward is once_differentiable: its gradient cannot "
                            "be differentiated again (create_graph through it)", node.span)

    def _call(self, grads: list[Tensor]) -> list[Tensor]:
        f = self.forward
        given: list[Tensor | None] = [None] * f.n_outputs
        for i, g in zip(f.positions, grads):
            given[i] = g
        result = f.cls.backward(f.ctx, *given)
        out = []
        for a, r in zip(f.args, _gradients(self.name, result, f.args)):
            if not (isinstance(a, Tensor) and a.tensor_type.dtype.is_float):
                continue
            if r is None:
                r = Tensor.of(np.zeros(a.tensor_type.shape, a.tensor_type.dtype.np))
            out.append(_fit(self.name, r, a.tensor_type))
        return out


def _gradients(name: str, result: Any, args: tuple[Any, ...]) -> list[Any]:
    """backward's result, one gradient per argument (torch's checks: the count, trailing
    Nones past it allowed, None for a non-tensor argument)."""
    grads = list(result) if isinstance(result, (tuple, list)) else [result]
    if len(grads) < len(args) or any(g is not None for g in grads[len(args):]):
        raise DlgValueError(f"{name}.backward returned an incorrect number of gradients "
                            f"(expected {len(args)}, got {len(grads)})", caller_span())
    for k, (a, g) in enumerate(zip(args, grads)):
        if g is not None and not isinstance(g, Tensor):
            raise DlgTypeError(f"{name}.backward returned {type(g).__name__} as gradient "
                               f"{k}; a gradient is a tensor or None", caller_span())
        if g is not None and not isinstance(a, Tensor):
            raise DlgValueError(f"{name}.backward returned a gradient different than None at "
                                f"position {k}, but the corresponding forward input was not a "
                                f"tensor", caller_span())
    return grads[:len(args)]


def _fit(name: str, g: Tensor, want: TensorType) -> Tensor:
    """A gradient in its input's shape and dtype: one of a shape the input broadcasts to is
    summed back (as torch's validate_outputs); any other shape is an error."""
    if g.tensor_type.shape != want.shape:
        _fit_check(name, g.tensor_type, want)
        lead = g.ndim - want.rank
        axes = tuple(range(lead)) + tuple(lead + k for k, d in enumerate(want.shape)
                                          if d == 1 and g.tensor_type.shape[lead + k] != 1)
        g = call("sum", g, axes, True).reshape(want.shape)
    return g if g.tensor_type.dtype == want.dtype else g.to(want.dtype)


# ---- traced: forward and backward become one custom_vjp node -----------------------------------
class _Body(Tracer):
    """The tracer of a traced Function's forward or backward body: a graph of its own whose node
    ids start past the enclosing graph's, so a tensor of the enclosing trace read inside (`hint`
    says how it should have come in) is told apart and refused by name."""

    def __init__(self, name: str, outer: Tracer, hint: str):
        graph = Graph(name, span=caller_span())
        graph._next_id = outer.graph._next_id  # past every value of the enclosing graphs
        super().__init__(graph, {})
        self.outer, self.start, self.hint = outer, graph._next_id, hint

    def owns(self, t: Tensor) -> bool:
        return super().owns(t) or self.outer.owns(t)

    def value_of(self, t: Tensor) -> Value:
        v = t.graph_value
        if v is not None and v.node < self.start or v is None and self.outer.owns(t) and not (
                super().owns(t)):
            raise DlgValueError(f"{self.graph.name} reads a traced tensor ({t.tensor_type}) that "
                                f"{self.hint}", caller_span())
        return super().value_of(t)


def _traced(cls: type[Function], tracer: Tracer, args: tuple[Any, ...]) -> Any:
    name = cls.__name__
    fwd = _Body(f"{name}.forward", tracer, "is not one of its arguments: pass it to apply")
    inputs, inner = [], []
    for k, a in enumerate(args):
        if isinstance(a, Tensor):
            inputs.append(tracer.value_of(a))
            a = Tensor.traced(fwd.builder.input(f"in{k}", a.tensor_type), a.tensor_type)
        inner.append(a)
    ctx = FunctionCtx(tuple(isinstance(a, Tensor) and a.dtype.is_float for a in args))
    with tracing(fwd):
        out = _in_body(fwd, lambda: _forward(cls, ctx, tuple(inner)))
        outs, positions = _tensor_positions(cls, out)
        saved = [t for t in ctx._saved if t is not None]
        for k, t in enumerate([outs[i] for i in positions] + saved):
            fwd.graph.set_output(f"out{k}", fwd.value_of(t))

    bwd = _Body(f"{name}.backward", fwd, "was not saved: save it with ctx.save_for_backward")
    b = bwd.builder
    kept = iter([Tensor.traced(b.input(f"saved{k}", t.tensor_type), t.tensor_type)
                 for k, t in enumerate(saved)])
    ctx._saved = tuple(None if t is None else next(kept) for t in ctx._saved)
    given: list[Tensor | None] = [None] * len(outs)
    with tracing(bwd):
        for k, i in enumerate(positions):
            given[i] = Tensor.traced(b.input(f"grad{k}", outs[i].tensor_type), outs[i].tensor_type)
            if id(outs[i]) in ctx._non_differentiable:
                given[i] = call("zeros_like", given[i])
        result = _in_body(bwd, lambda: cls.backward(ctx, *given))
        for k, (a, g) in enumerate(zip(args, _gradients(name, result, args))):
            if isinstance(a, Tensor):
                bwd.graph.set_output(f"d_in{k}", _traced_gradient(bwd, name, g, a.tensor_type))

    with tracer.builder.at(caller_span()):
        values = tracer.builder.emit(CUSTOM_VJP, *inputs, forward=fwd.graph, backward=bwd.graph,
                                     n_saved=len(saved))
    made = list(outs)
    for i, v in zip(positions, values):
        made[i] = Tensor.traced(v, outs[i].tensor_type)
    return tuple(made) if isinstance(out, tuple) else made[0]


def _in_body(body: _Body, run: Callable[[], Any]) -> Any:
    try:
        return run()
    except DlgError as e:
        raise e.with_span(caller_span()).with_note(
            f"while tracing {body.graph.name}: a traced Function's forward and backward are "
            "recorded as graphs (its backward is the gradient of its node)") from None


def _traced_gradient(body: _Body, name: str, g: Tensor | None, want: TensorType) -> Value:
    """The backward body's value for one input's gradient: zeros for None (and for an integer
    input), else the gradient summed back to the input's shape and cast to its dtype."""
    b = body.builder
    if g is None or not want.dtype.is_float:
        return b.full(shape=want.shape, value=0.0, dtype=want.dtype)
    v = body.value_of(g)
    if g.tensor_type.shape != want.shape:
        _fit_check(name, g.tensor_type, want)
        v = sum_to_shape(b, v, want.shape)
    return v if g.tensor_type.dtype == want.dtype else b.emit(CAST, v, dtype=want.dtype)


def _fit_check(name: str, have: TensorType, want: TensorType) -> None:
    """A gradient's shape must be one the input's broadcasts to (torch's is_expandable_to)."""
    lead = have.rank - want.rank
    if lead < 0 or any(w != 1 and w != h for w, h in zip(want.shape, have.shape[lead:])):
        raise DlgShapeError(f"{name}.backward returned an invalid gradient: got "
                            f"{list(have.shape)} but expected shape compatible with "
                            f"{list(want.shape)}", caller_span())
