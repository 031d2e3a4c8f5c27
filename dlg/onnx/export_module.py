"""`dlg.onnx.export(module, args, f, ...)` in torch.onnx.export's spelling: the module is traced
with dlg's tracer on `args` (frontend/trace.py) into a `dlg.Model`, which `export.py` writes.

Inputs are the tensors in `args`, nested tuples and lists flattened in order (an LSTM's
`(x, (h0, c0))` is three inputs); other arguments (flags, None) are constants of the trace, as
torch's tracer keeps them. Names: `input_names`/`output_names` in that flat order, the rest
named as `dlg.trace` names them (the forward's parameter names, `h_0`/`h_1` for a tuple's
elements; `output`, or `output0`, `output1`...). As torch's, every axis is static unless
`dynamic_axes` names it; a named axis becomes a symbolic dim of that name (`{"x": {0: "batch"}}`
gives dlg's `batch` and ONNX's `dim_param: "batch"`), so one file runs every batch size.
"""

from __future__ import annotations

import enum
import inspect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend.compiled import OptimizedModule
from dlg.frontend.nn import Module
from dlg.frontend.tensor import Tensor
from dlg.frontend.trace import flatten_call, trace_flat
from dlg.runtime.model import Model

DynamicAxes = Mapping[str, Mapping[int, str] | Sequence[int]]


class TrainingMode(enum.IntEnum):
    """torch.onnx.TrainingMode: the mode the module is traced in (EVAL by default, as torch's;
    PRESERVE keeps the module's own; TRAINING traces train mode)."""

    EVAL = 0
    PRESERVE = 1
    TRAINING = 2


def training_mode(value: Any) -> TrainingMode:
    """dlg's or torch's TrainingMode (or its name or number) as dlg's."""
    name = getattr(value, "name", value)
    if isinstance(name, str) and name.upper() in TrainingMode.__members__:
        return TrainingMode[name.upper()]
    if isinstance(value, int) and value in iter(TrainingMode):
        return TrainingMode(value)
    raise DlgValueError(f"dlg.onnx.export: training={value!r} is not a TrainingMode "
                        f"(EVAL, PRESERVE or TRAINING)")


def trace_module(module: Module, args: Any, kwargs: Mapping[str, Any] | None,
                 input_names: Sequence[str] | None, output_names: Sequence[str] | None,
                 dynamic_axes: DynamicAxes | None, training: Any,
                 dynamic_shapes: Any = None) -> Model:
    """`module(*args, **kwargs)` traced for export (see the module docstring), in the mode
    `training` asks, the module's own mode restored afterwards."""
    if isinstance(module, OptimizedModule):  # dlg.compile(module): export what it compiles
        module = module._orig_mod
    args, kwargs = _split_args(args, kwargs)
    if not args and not kwargs:
        raise DlgTypeError(f"dlg.onnx.export traces the {type(module).__name__} module on "
                           f"example arguments, as torch.onnx.export does: "
                           f"dlg.onnx.export(module, (x,), 'model.onnx')")
    forward = module.forward
    leaves: list[Any] = []
    names: list[str] = []
    rebuild = flatten_call(forward, args, kwargs, leaves, names)
    defaults, names = names, _rename(names, input_names, "input_names", "inputs")
    if dynamic_shapes is not None:
        if dynamic_axes is not None:
            raise DlgValueError("dlg.onnx.export: give dynamic_axes or dynamic_shapes, not both")
        axes = _from_dynamic_shapes(forward, args, kwargs, dynamic_shapes)
        dynamic_axes = {new: axes[old] for old, new in zip(defaults, names) if old in axes}
    dynamic = _dynamic(names, leaves, output_names, dynamic_axes)
    mode = training_mode(training)
    was_training = [(m, m.training) for m in module.modules()]
    if mode is not TrainingMode.PRESERVE:
        module.train(mode is TrainingMode.TRAINING)

    def call(*xs: Any) -> Any:
        positional, keywords = rebuild(xs)
        return module(*positional, **keywords)
    try:
        model = trace_flat(module, call, names, leaves, dynamic=dynamic)
    finally:
        for m, flag in was_training:
            m.training = flag
    graph = model.graph
    outs = _rename([n for n, _ in graph.outputs], output_names, "output_names", "outputs")
    graph.outputs = [(n, v) for n, (_, v) in zip(outs, graph.outputs)]
    return model


def _from_dynamic_shapes(forward: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any],
                         spec: Any) -> dict[str, dict[int, str]]:
    """torch.export's dynamic_shapes (by argument name, or a tuple in argument order; per
    tensor {axis: Dim or name} or a tuple per axis; nested as the arguments nest) as
    {flattened input name: {axis: dim name}}. `Dim("batch")` and "batch" name the dim;
    Dim.AUTO and Dim.DYNAMIC take the name of a named dim of their size, else s0, s1... by size
    (equal sizes one symbol, as torch's solver would find them equal: an LSTM state's batch
    axis meets the input's); Dim.STATIC and None keep the axis static."""
    params = [p.name for p in inspect.signature(forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    params += [f"x{i}" for i in range(len(params), len(args))]
    values = dict(zip(params, args)) | dict(kwargs)
    if isinstance(spec, (tuple, list)):
        spec = dict(zip(params[:len(args)] + list(kwargs), spec))
    unknown = sorted(set(spec) - set(values)) if isinstance(spec, Mapping) else spec
    if unknown:
        raise DlgValueError(f"dlg.onnx.export: dynamic_shapes names {unknown!r}, not arguments "
                            f"of the call ({', '.join(values)})")
    out: dict[str, dict[int, str]] = {}

    def walk(value: Any, dims: Any, name: str) -> None:
        if dims is None:
            return
        if isinstance(value, (tuple, list)):
            for i, (v, d) in enumerate(zip(value, dims)):
                walk(v, d, f"{name}_{i}")
            return
        items = dims.items() if isinstance(dims, Mapping) else enumerate(dims)
        shape = np.shape(value.numpy_view() if isinstance(value, Tensor) else value)
        named = {}
        for axis, dim in items:
            if isinstance(dim, str) or hasattr(dim, "__name__"):
                named[int(axis)] = dim if isinstance(dim, str) else dim.__name__
                by_size.setdefault(shape[int(axis)], named[int(axis)])
            elif dim is not None and "STATIC" not in repr(dim):  # AUTO, DYNAMIC
                pending.append((named, int(axis), shape[int(axis)]))
        out[name] = named
    by_size: dict[int, str] = {}
    pending: list[tuple[dict[int, str], int, int]] = []
    for name, dims in spec.items():
        walk(values[name], dims, name)
    autos = 0
    for named, axis, size in pending:  # an AUTO dim the size of a named one is that one
        if size not in by_size:
            by_size[size], autos = f"s{autos}", autos + 1
        named[axis] = by_size[size]
    return out


def output_dim_names(output_names: Sequence[str], dynamic_axes: DynamicAxes | None
                     ) -> dict[str, dict[int, str]]:
    """The dim names `dynamic_axes` gives outputs' axes (written as their `dim_param`)."""
    return {name: _axes(name, dynamic_axes[name]) for name in output_names
            if dynamic_axes and name in dynamic_axes}


def _split_args(args: Any, kwargs: Mapping[str, Any] | None) -> tuple[tuple[Any, ...],
                                                                          dict[str, Any]]:
    """torch's forms: one tensor, a tuple of arguments, a tuple ending in a dict of keyword
    arguments, plus `kwargs=`."""
    if not isinstance(args, tuple):
        args = (args,)
    extra: dict[str, Any] = {}
    if args and isinstance(args[-1], dict):
        args, extra = args[:-1], dict(args[-1])
    return args, extra | dict(kwargs or {})


def _rename(defaults: list[str], given: Sequence[str] | None, what: str, of: str) -> list[str]:
    if given is None:
        return defaults
    if isinstance(given, str) or len(given) > len(defaults):
        raise DlgValueError(f"dlg.onnx.export: {what} names {len(given)} values but the model "
                            f"has {len(defaults)} {of} ({', '.join(defaults)})")
    names = list(given) + defaults[len(given):]
    if len(set(names)) < len(names):
        raise DlgValueError(f"dlg.onnx.export: {what} repeats a name: {', '.join(names)}")
    return names


def _axes(name: str, axes: Mapping[int, str] | Sequence[int]) -> dict[int, str]:
    """torch's two forms: {axis: dim name}, or a list of axes named `<name>_dynamic_axes_<k>`."""
    if isinstance(axes, Mapping):
        return {int(a): str(d) for a, d in axes.items()}
    return {int(a): f"{name}_dynamic_axes_{k + 1}" for k, a in enumerate(axes)}


def _dynamic(names: list[str], leaves: list[Any], output_names: Sequence[str] | None,
             dynamic_axes: DynamicAxes | None) -> dict[str, dict[int, str]]:
    """Each input's symbolic axes (none unless `dynamic_axes` names them, as torch's). Axes
    given as a list (torch names each after its input) are one symbol where their sizes are
    equal, so the batch axes of two inputs still meet; dict forms keep the given names."""
    dynamic_axes = dynamic_axes or {}
    unknown = [k for k in dynamic_axes if k not in names and k not in (output_names or ())]
    if unknown:  # torch warns and goes on, the axes static
        warnings.warn(f"dlg.onnx.export: dynamic_axes names {', '.join(map(repr, unknown))}, "
                      f"which is no input or output (inputs: {', '.join(names)}); those axes "
                      f"stay static", UserWarning, stacklevel=4)
    out: dict[str, dict[int, str]] = {}
    by_size: dict[int, str] = {}
    for name, leaf in zip(names, leaves):
        shape = np.shape(leaf.numpy_view() if isinstance(leaf, Tensor) else leaf)
        axes = _axes(name, dynamic_axes.get(name, {}))
        for a in axes:
            if not -len(shape) <= a < len(shape):
                raise DlgValueError(f"dlg.onnx.export: dynamic_axes[{name!r}] names axis {a}, "
                                    f"but {name} has shape {list(shape)}")
        if not isinstance(dynamic_axes.get(name, {}), Mapping):
            axes = {a: by_size.setdefault(shape[a], d) for a, d in axes.items()}
        out[name] = {a % len(shape): d for a, d in axes.items()}
    return out


def refuse_module_options(**options: Any) -> None:
    """A dlg.Model keeps its own names and dims: torch's tracing options apply to modules."""
    given = [k for k, v in options.items() if v not in (None, (), {})]
    if given:
        raise DlgTypeError(f"dlg.onnx.export: {', '.join(given)} apply when exporting a dlg.nn "
                           f"Module (traced on args); a dlg.Model or Executable keeps the names "
                           f"and symbolic dims its graph has")
