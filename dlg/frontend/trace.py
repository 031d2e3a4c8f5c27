"""`dlg.trace`: run a PyTorch-style module (or function) once on symbolic tensors and keep the
graph it builds, as a `dlg.Model` like the ones .dlg files give.

Python runs as usual while tracing: its control flow is evaluated once, for the example's
shapes (a `for` over layers unrolls, an `if` on a flag is decided). Shapes are symbolic where
declared dynamic (axis 0 of every input by default, named N), so `x.view(x.size(0), -1)` stays
valid for any batch size. Code that needs a tensor's *value* (`.item()`, `.numpy()`, `if x > 0`)
cannot be traced and is reported at its line. Nodes carry the Python file:line that made them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from dlg import foreign
from dlg.errors import DlgTypeError
from dlg.frontend.engine import Tracer, caller_span, tracing
from dlg.frontend.nn import Module
from dlg.frontend.nn.uninitialized import is_lazy
from dlg.frontend.tensor import Tensor, foreign_array
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph
from dlg.ir.shapes import Sym
from dlg.ir.train_spec import TrainSpec
from dlg.ir.types import TensorType
from dlg.grammar.unparse import graph_to_dlg
from dlg.runtime.model import Model


class TracedModel(Model):
    """A model made by `dlg.trace`; it can be written as .dlg source."""

    def to_dlg(self) -> str:
        """The model as .dlg source, which loads back to an equivalent graph (parameters start
        at zero: load the state_dict)."""
        return graph_to_dlg(self.graph)


def trace(fn: Module | Callable[..., Any] | Tensor, *example_inputs: Any,
          dynamic: Mapping[str, Mapping[int, str]] | None = None) -> Model | Tensor:
    """A `dlg.Model` of what `fn(*example_inputs)` computes. `dynamic` names the symbolic axes
    per input (default: the batch size N is axis 0 of the first input, and in every input the
    first axis of that size, as an RNN state's [layers, N, H]; an input without one is static).
    Given a tensor instead, torch.trace's meaning: the sum of its main diagonal (a program that
    called torch.trace(m) keeps working when torch becomes dlg)."""
    if isinstance(fn, Tensor):
        if example_inputs or dynamic is not None:
            raise DlgTypeError("trace(tensor) is the matrix trace and takes no other argument; "
                               "to trace a function, pass the function first", caller_span())
        return fn.trace()
    forward = fn.forward if isinstance(fn, Module) else fn
    return _trace(fn, fn, _input_names(forward, len(example_inputs)), example_inputs, dynamic)


def trace_flat(module: Module, fn: Callable[..., Any], names: list[str],
               leaves: list[Any], static: bool = False,
               dynamic: Mapping[str, Mapping[int, str]] | None = None) -> Model:
    """`fn(*leaves)` traced with `module`'s parameters and buffers as the graph's params, one
    input per leaf (a tensor or array) named by `names`: what `dlg.compile(module)` traces, the
    call's arguments flattened (frontend/compiled.py). `static`: every axis at its example's
    size (no symbolic batch axis); `dynamic` names each input's symbolic axes instead, as
    `dlg.trace`'s does (what `dlg.onnx.export` traces, from torch's dynamic_axes)."""
    return _trace(module, fn, names, leaves, dynamic, static)


def flatten_call(forward: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any],
                 leaves: list[Any], names: list[str]
                 ) -> Callable[[Sequence[Any]], tuple[list[Any], dict[str, Any]]]:
    """A call's tensors (and arrays) collected in `leaves`, nested tuples and lists flattened in
    order, each named in `names` as `trace` names inputs (the forward's parameter, `h_0`, `h_1`
    for a tuple's elements); returns what rebuilds the call's arguments from traced tensors in
    their places. Other values (flags, None, numbers) are constants of the trace, as torch's
    tracers keep them (what dlg.onnx.export and dlg.jit trace)."""
    params = _input_names(forward, len(args))

    def walk(value: Any, name: str) -> Callable[[Sequence[Any]], Any]:
        if isinstance(value, (Tensor, np.ndarray)) or foreign.is_foreign(value):
            k = len(leaves)
            leaves.append(foreign_array(value) if foreign.is_foreign(value) else value)
            names.append(name)
            return lambda xs: xs[k]
        if isinstance(value, (tuple, list)):
            parts = [walk(v, f"{name}_{i}") for i, v in enumerate(value)]
            return lambda xs: type(value)(p(xs) for p in parts)
        return lambda xs: value

    positional = [walk(a, name) for a, name in zip(args, params)]
    keywords = {k: walk(v, k) for k, v in kwargs.items()}
    return lambda xs: ([p(xs) for p in positional], {k: p(xs) for k, p in keywords.items()})


def trace_train(module: Module, loss_fn: Callable[..., Any], optimizer: Any, example_x: Any,
                example_y: Any) -> Model:
    """A model with a training step: `module` traced in eval mode for inference, and
    `loss_fn(module(x), y)` traced in training mode, with the optimizer's hyper-parameters, so
    `m.fit(x, y)` or `m.train_step(compiled=True)` trains it natively."""
    was_training = module.training
    module.eval()
    model = trace(module, example_x)
    module.train()
    step = _trace(module, lambda x, y: loss_fn(module(x), y), ["x", "y"],
                  (example_x, example_y), None)
    module.train(was_training)
    step.graph.outputs = [("loss", step.graph.outputs[0][1])]
    spec = TrainSpec(("y",), "loss", (), optimizer.spec)
    return Model(model.graph, dict(model.params) | dict(step.params),
                 {**model._trainable, **step._trainable}, train_spec=spec,
                 build_train_graph=lambda: step.graph, seed=None, layer_calls=model.layer_calls)


def _trace(module: Any, fn: Callable[..., Any], names: list[str], example_inputs: Any,
           dynamic: Mapping[str, Mapping[int, str]] | None, static: bool = False) -> Model:
    name = type(module).__name__ if isinstance(module, Module) else getattr(fn, "__name__",
                                                                             "traced")
    graph = Graph(name, span=caller_span())
    params, trainable, ids, tensors = _parameters(module)
    modules = ({id(m): n for n, m in module.named_modules() if n}
               if isinstance(module, Module) else {})
    tracer = Tracer(graph, ids, modules)
    batch = None if static else batch_size(example_inputs)

    def traced_input(arg: str, example: Any) -> Any:
        """The symbolic input for one argument; a tuple or list of tensors (an LSTM cell's
        (h, c)) becomes one input per element, named arg_0, arg_1, ..."""
        if isinstance(example, (tuple, list)):
            return type(example)(traced_input(f"{arg}_{k}", e) for k, e in enumerate(example))
        array = (example.numpy_view() if isinstance(example, Tensor) else
                 foreign_array(example) if foreign.is_foreign(example) else np.asarray(example))
        axes = (dynamic or {}).get(arg, batch_axes(array.shape, batch))
        shape = tuple(Sym.named(axes[a]) if a in axes else d for a, d in enumerate(array.shape))
        t = TensorType(DType.of(array), shape)
        return Tensor.traced(tracer.builder.input(arg, t), t)
    inputs = [traced_input(arg, example) for arg, example in zip(names, example_inputs)]
    for tensor in tensors:  # every parameter and buffer, in state_dict order, as in .dlg models
        tracer.value_of(tensor)
    kept = _tensor_attributes(module)
    try:
        with tracing(tracer):
            out = fn(*inputs)
    finally:
        _restore(kept)
    outs = _flatten(out)
    for i, o in enumerate(outs):
        if not isinstance(o, Tensor):
            raise DlgTypeError(f"{name} returned {type(o).__name__}, not a tensor; traced "
                               f"functions return tensors", graph.span)
        # a tensor no input reaches (zeros_like of a static shape, a parameter) is a constant
        graph.set_output("output" if len(outs) == 1 else f"output{i}", tracer.value_of(o))
    return TracedModel(graph, params, trainable, seed=None,  # params shared, not copied
                       layer_calls=tracer.layer_calls)


def batch_size(examples: Any) -> int | None:
    """The batch size N stands for: axis 0 of the first input with axes."""
    for example in _flatten(list(examples)):
        shape = np.shape(example.numpy_view() if isinstance(example, Tensor) else example)
        if shape:
            return int(shape[0])
    return None


def batch_axes(shape: tuple[int, ...], batch: int | None) -> dict[int, str]:
    """An input's default symbolic axis: the first of the batch's size (axis 0, or axis 1 of an
    RNN's [layers, N, H] state), none when no axis has it (a table of another size)."""
    return next(({a: "N"} for a, d in enumerate(shape) if d == batch), {})


def _tensor_attributes(module: Any) -> list[tuple[Module, dict[str, Tensor]]]:
    """Each submodule's plain tensor attributes, which a forward pre-hook may set during the
    trace (weight_norm's and prune's `weight`, recomputed before each forward)."""
    if not isinstance(module, Module):
        return []
    return [(m, {k: v for k, v in m.__dict__.items() if isinstance(v, Tensor)})
            for m in module.modules()]


def _restore(kept: list[tuple[Module, dict[str, Tensor]]]) -> None:
    """Traced tensors left in module attributes by a trace put back to what they were (so the
    module stays usable eagerly: `module.weight` after compiling a pruned model)."""
    for m, before in kept:
        for k, v in list(m.__dict__.items()):
            if isinstance(v, Tensor) and v.graph_value is not None:
                if k in before:
                    m.__dict__[k] = before[k]
                else:
                    del m.__dict__[k]


def _flatten(out: Any) -> list[Any]:
    """Outputs in order, nested tuples (an LSTM's (output, (h, c))) flattened."""
    if isinstance(out, (tuple, list)):
        return [o for item in out for o in _flatten(item)]
    return [out]


def _input_names(forward: Callable[..., Any], count: int) -> list[str]:
    try:
        sig = inspect.signature(forward)
    except (TypeError, ValueError):
        return [f"x{i}" for i in range(count)]
    names = [p.name for p in sig.parameters.values()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return names[:count] + [f"x{i}" for i in range(len(names), count)]


def _parameters(fn: Any) -> tuple[dict[str, np.ndarray], dict[str, bool],
                                  dict[int, tuple[str, bool]], list[Tensor]]:
    """A module's parameters and buffers in state_dict order: arrays, trainable flags (a
    parameter that does not require grad is not trained, as torch leaves it), ids. A tensor
    held under several names (one module in two places) is one parameter, under its first name
    (as torch's named_parameters gives it)."""
    if not isinstance(fn, Module):
        return {}, {}, {}, []
    buffers = {id(b) for _, b in fn.named_buffers()}
    params: dict[str, np.ndarray] = {}
    trainable: dict[str, bool] = {}
    ids: dict[int, tuple[str, bool]] = {}
    tensors: list[Tensor] = []
    named = (dict(fn.named_parameters(remove_duplicate=False))
             | dict(fn.named_buffers(remove_duplicate=False)))
    for name in fn.state_dict():
        t = named[name]
        if id(t) in ids or is_lazy(t):  # a lazy module's placeholder: made while traced
            continue
        learn = id(t) not in buffers and t.requires_grad  # requires_grad_(False): frozen
        params[name], trainable[name], ids[id(t)] = t.numpy_view(), learn, (name, learn)
        tensors.append(t)
    return params, trainable, ids, tensors
