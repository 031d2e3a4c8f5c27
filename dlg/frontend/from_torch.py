"""`dlg.from_torch`: a PyTorch module as a `dlg.Model`, its weights under torch's names.

torch.fx's tracer records the module's forward as call_module, call_function and
call_method nodes. This file only maps each node to dlg's spelling of the same thing (a dlg.nn
module made with the torch module's options and weights, the dlg function or Tensor method of
the same name, Python's operators as they are) and lets `dlg.trace` run the mapped graph, so
every op keeps its one definition in dlg, and `x.relu()`, `torch.relu(x)`, `F.relu(x)` and
`nn.ReLU()` all end at the same dlg function. Nodes dlg cannot map are reported all at once.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import linecache
import operator
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.errors import DlgError, DlgImportError, DlgTypeError, DlgValueError, Span
from dlg.frontend import functional
from dlg.frontend import nn as dlg_nn
from dlg.frontend.nn import Module, Parameter
from dlg.frontend.tensor import Tensor
from dlg.frontend.torch_options import OPTIONS
from dlg.frontend.trace import trace
from dlg.ir.dtypes import DType
from dlg.runtime.model import Model
from dlg.runtime.pickled import torch_module

# torch constructor arguments that say where a module lives, not what it computes
_PLACEMENT = {"device", "dtype"}
# the options of the modules that take prelude.dlg's layer options as *args, **kwargs
_RECURRENT = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
              "bidirectional")
_CELL = ("input_size", "hidden_size", "bias")
_VARIADIC = {"RNN": _RECURRENT + ("nonlinearity",), "GRU": _RECURRENT,
             "LSTM": _RECURRENT + ("proj_size",), "RNNCell": _CELL + ("nonlinearity",),
             "GRUCell": _CELL, "LSTMCell": _CELL}


def from_torch(module: Any, example_input: Any) -> Model:
    """A `dlg.Model` computing what the torch module computes, with its parameters and buffers
    under the names of its state_dict. `example_input` (a tensor or a tuple of them) fixes the
    input dtypes and shapes; axis 0 is the symbolic batch size N in the inputs where it is as
    long as in the first, unless the module fixes it."""
    torch = torch_module()
    if not isinstance(module, torch.nn.Module):
        raise DlgValueError(f"dlg.from_torch takes a torch.nn.Module, not "
                            f"{type(module).__name__}")
    examples = example_input if isinstance(example_input, (tuple, list)) else (example_input,)
    arrays = [e.detach().cpu().numpy() if isinstance(e, torch.Tensor) else np.asarray(e)
              for e in examples]
    net = convert(module)
    names = list(inspect.signature(net.forward).parameters)
    batch = arrays[0].shape[:1] if arrays else ()
    # axis 0 is the batch N in the inputs whose axis 0 is as long as the first input's
    dynamic = {name: {0: "N"} if a.ndim and a.shape[:1] == batch else {}
               for name, a in zip(names, arrays)}
    try:
        return trace(net, *arrays, dynamic=dynamic)
    except DlgError as e:  # a batch size written into the module: trace it for these shapes only
        model = trace(net, *arrays, dynamic={name: {} for name in names})
        warnings.warn(f"dlg.from_torch: {type(module).__name__} does not trace with a symbolic "
                      f"batch size ({e.message}); the model takes the example's shapes only",
                      stacklevel=2)
        return model


def convert(module: Any) -> Module:
    """The torch module as an eager dlg module (same state_dict names, weights copied) whose
    forward runs the module's fx graph with dlg's functions; the base of `from_torch`. A torch.nn
    leaf itself (an LSTM, a BatchNorm1d: fx cannot trace inside it) is its dlg.nn module."""
    torch = torch_module()
    tracer = torch.fx.Tracer()
    tracer.record_stack_traces = True  # each node's line in the module's source, for errors
    if tracer.is_leaf_module(module, ""):
        refused: dict[str, str] = {}
        leaf = _leaf(module, "", refused)
        if leaf is not None:
            return leaf.train(module.training)
        if "" in refused:
            raise DlgImportError(f"cannot convert {type(module).__name__}: {refused['']}")
    try:
        graph = tracer.trace(module)
    except Exception as e:  # noqa: BLE001  (fx raises many kinds; all mean "cannot trace")
        raise DlgImportError(f"torch.fx cannot trace {type(module).__name__}: "
                             f"{type(e).__name__}: {e}") from None
    # a subclass of the torch class's name: the model, its graph and repr are named as in torch
    return type(type(module).__name__, (FxModule,), {})(module, graph)


class FxModule(Module):
    """A torch module's dlg counterpart: its submodules converted (leaves to dlg.nn modules,
    the rest to plain containers holding their own parameters), and a forward that interprets
    the module's torch.fx graph."""

    def __init__(self, module: Any, graph: Any):
        super().__init__()
        refused: dict[str, str] = {}
        _copy_tree(module, self, "", refused, {})
        self._fx_nodes = list(graph.nodes)
        self._fx_calls = _resolve(self, module, self._fx_nodes, refused)
        names = [n.target for n in self._fx_nodes if n.op == "placeholder"]

        def forward(*args: Any) -> Any:
            return self._interpret(*args)
        # dlg.trace names the model's inputs after forward's parameters: torch's own names
        forward.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
        self.forward = forward  # type: ignore[method-assign]

    def _interpret(self, *args: Any) -> Any:
        env: dict[Any, Any] = {}
        inputs = list(args)
        for node in self._fx_nodes[:-1]:  # an fx graph ends with its output node
            if node.op == "placeholder":
                if not inputs and not node.args:
                    raise DlgValueError(f"forward's argument {node.target!r} has no default "
                                        f"and no example input")
                env[node] = inputs.pop(0) if inputs else node.args[0]
            else:
                env[node] = self._call(node, env)
        return _load(self._fx_nodes[-1].args[0], env)

    def _call(self, node: Any, env: dict[Any, Any]) -> Any:
        where = f"torch.fx node {node.name!r} ({node.op} {_target_name(node.target)})"
        try:
            return self._fx_calls[node](*_load(node.args, env), **_load(node.kwargs, env))
        except DlgError as e:
            e.span = _source_span(node) or e.span  # the torch line, not from_torch's
            raise e.with_note(f"in {where}") from None
        except (TypeError, ValueError, AttributeError) as e:  # arguments dlg's namesake refuses
            raise DlgImportError(f"dlg cannot run {where}: {type(e).__name__}: {e}",
                                 _source_span(node)) from None


# ---- modules ---------------------------------------------------------------------------------
def _copy_tree(tmod: Any, into: Module, prefix: str, refused: dict[str, str],
               done: dict[int, Module]) -> None:
    """Mirror torch's module tree under `into`: each child converted once (a shared module
    stays shared), in torch's order, so the state_dict keys and their order are torch's."""
    for name, p in tmod.named_parameters(recurse=False):
        into.register_parameter(name, Parameter(_array(p), requires_grad=p.requires_grad))
    for name, b in tmod.named_buffers(recurse=False):
        if name in tmod._non_persistent_buffers_set:
            object.__setattr__(into, name, Tensor.of(_array(b)))  # not in the state_dict
        else:
            into.register_buffer(name, Tensor.of(_array(b)))
    for name, child in tmod.named_children():
        path = prefix + name
        if id(child) not in done:
            converted = _leaf(child, path, refused)
            if converted is None:
                converted = Module()
                _copy_tree(child, converted, path + ".", refused, done)
            object.__setattr__(converted, "training", child.training)
            done[id(child)] = converted
        into.add_module(name, done[id(child)])


def _leaf(tmod: Any, path: str, refused: dict[str, str]) -> Module | None:
    """The dlg.nn module of the torch.nn leaf module's class, with its options and weights;
    None for modules fx traces through (Sequential, the user's own) and for leaves dlg lacks
    (their reason kept in `refused`, reported if the graph calls them)."""
    torch = torch_module()
    containers = (torch.nn.ModuleList, torch.nn.ModuleDict, torch.nn.ParameterList,
                  torch.nn.ParameterDict)
    if isinstance(tmod, containers) or not torch.fx.Tracer().is_leaf_module(tmod, path):
        return None
    cls = type(tmod).__name__
    made = getattr(dlg_nn, cls, None)
    if made is None or not isinstance(made, type) or not issubclass(made, Module):
        refused[path] = f"dlg.nn has no {cls}"
        return None
    ours = _VARIADIC.get(cls) or inspect.signature(made.__init__).parameters
    theirs = inspect.signature(type(tmod).__init__).parameters
    for name, p in theirs.items():
        # `bias` is a parameter or None here; the state_dict check below covers it
        if (name not in ours and name not in _PLACEMENT and name != "bias"
                and not name.startswith("_") and hasattr(tmod, name)
                and p.default is not p.empty and not _is_default(getattr(tmod, name), p.default)):
            refused[path] = f"dlg.nn.{cls} has no option {name} (here {getattr(tmod, name)!r})"
            return None
    options: dict[str, Any] = {}
    try:
        options = (OPTIONS[cls](tmod, _part_converter(path)) if cls in OPTIONS
                   else {name: _option(tmod, name) for name in ours
                         if name == "bias" or (name != "self" and hasattr(tmod, name))})
        converted = made(**options)
        converted.load_state_dict(tmod.state_dict())
    except DlgError as e:
        refused[path] = f"dlg.nn.{cls}{tuple(options.values())}: {e.message}"
        return None
    modes = {name: m.training for name, m in tmod.named_modules()}
    for name, m in converted.named_modules():  # a module made fresh is training: its dropouts
        object.__setattr__(m, "training", modes.get(name, tmod.training))
    return converted


def _part_converter(path: str) -> Callable[[Any, str], Any]:
    """For `torch_options`: a torch submodule as its dlg module, a torch function (a
    Transformer layer's activation) as dlg's namesake."""
    def part(value: Any, name: str) -> Any:
        if isinstance(value, torch_module().nn.Module):
            return convert(value)
        fn = _function(value)
        if fn is None:
            raise DlgImportError(f"{path}.{name}: dlg has no function {_target_name(value)}")
        return fn
    return part


def _option(tmod: Any, name: str) -> Any:
    """A constructor option read back from the module; `bias` (a tensor, None, a flag or not
    kept at all, as MultiheadAttention's) is whether the module has bias parameters."""
    if name == "bias":
        return any("bias" in key for key, _ in tmod.named_parameters())
    return getattr(tmod, name)


def _array(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _attribute(net: FxModule, module: Any, target: str) -> Callable:
    """A get_attr node as a call giving its value: the dlg parameter or buffer of that name,
    else a constant fx kept on the torch module (`torch.tensor(...)` in forward), as a dlg
    tensor."""
    obj: Any = net
    try:
        for part in target.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        obj = module
        for part in target.split("."):
            obj = getattr(obj, part)
        obj = _value(obj)
    return lambda: obj


# ---- functions and methods -------------------------------------------------------------------
def _resolve(net: FxModule, module: Any, nodes: list[Any], refused: dict[str, str]
             ) -> dict[Any, Callable]:
    """The dlg callable of each call or get_attr node; every node dlg cannot map, in one
    DlgImportError."""
    calls: dict[Any, Callable] = {}
    missing: dict[str, list[Any]] = {}
    for node in nodes:
        if node.op == "get_attr":
            calls[node] = _attribute(net, module, node.target)
        elif node.op == "call_module":
            called = _submodule(net, node.target)
            if node.target in refused or type(called) is Module:
                why = refused.get(node.target, "a torch module dlg does not convert")
                missing.setdefault(f"module {node.target} ({why})", []).append(node)
            calls[node] = called
        elif node.op == "call_function":
            fn = _function(node.target)
            if fn is None:
                missing.setdefault(f"function {_target_name(node.target)}", []).append(node)
            else:
                calls[node] = fn
        elif node.op == "call_method":
            if not hasattr(Tensor, node.target):
                missing.setdefault(f"method Tensor.{node.target}", []).append(node)
            calls[node] = _method(node.target)
    if missing:
        lines = [f"{what} at node{'s' if len(at) > 1 else ''} "
                 + ", ".join(f"{n.name} ({_source_span(n) or 'no source'})" for n in at)
                 for what, at in missing.items()]
        raise DlgImportError(f"{len(missing)} unsupported torch op{'s' if len(missing) > 1 else ''}"
                             f": " + "; ".join(lines))
    return calls


def _submodule(net: Module, path: str) -> Module:
    for part in path.split("."):
        net = net._modules[part]
    return net


def _function(target: Any) -> Callable | None:
    """The dlg function for a torch function: Python's operators and builtins as they are
    (dlg tensors implement them), torch.nn.functional.X as dlg.nn.functional.X, torch.X as
    dlg.X (dlg's namesakes have torch's meaning, checked against torch's OpInfo samples)."""
    name = getattr(target, "__name__", None)
    for namespace in (operator, builtins):
        if name is not None and getattr(namespace, name, None) is target:
            return target
    for alias in _torch_names().get(id(target), ()):  # F.logsigmoid is torch's log_sigmoid
        if hasattr(functional, alias):
            return _with_dlg_values(getattr(functional, alias), _defaults(target))
    return None


@functools.cache
def _torch_names() -> dict[int, list[str]]:
    """Every name torch.nn.functional and torch give each of their functions (aliases too)."""
    torch = torch_module()
    names: dict[int, list[str]] = {}
    for namespace in (torch.nn.functional, torch):
        for name, value in vars(namespace).items():
            if callable(value) and not isinstance(value, type) and not name.startswith("_"):
                names.setdefault(id(value), []).append(name)
    return names


def _method(name: str) -> Callable:
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, name)(*args, **kwargs)
    return _with_dlg_values(call, {})


def _defaults(fn: Callable) -> dict[str, Any]:
    """A torch function's keyword defaults, where Python can read them (not for C builtins)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters if p.default is not p.empty}


def _with_dlg_values(fn: Callable, defaults: dict[str, Any]) -> Callable:
    """fn with torch dtypes, devices and tensors among its arguments given as dlg's. Keywords
    at torch's own default are left out (fx records F.softmax's `_stacklevel=3`, F.silu's
    `inplace=False`, the losses' legacy `size_average=None`), so dlg's defaults apply."""
    def call(*args: Any, **kwargs: Any) -> Any:
        return fn(*[_value(a) for a in args],
                  **{k: _value(v) for k, v in kwargs.items()
                     if not (k in defaults and _is_default(v, defaults[k]))})
    return call


def _is_default(value: Any, default: Any) -> bool:
    return value is default or (type(value) is type(default)
                                and isinstance(value, (bool, int, float, str))
                                and value == default)


def _value(v: Any) -> Any:
    torch = torch_module()
    if isinstance(v, torch.dtype):
        name = str(v).removeprefix("torch.")
        dtypes = {d.torch_name: d for d in DType}
        if name not in dtypes:
            raise DlgTypeError(f"dlg has no dtype {v} (it has "
                               f"{', '.join(sorted(dtypes))})")
        return dtypes[name]
    if isinstance(v, torch.device):
        return str(v)
    if isinstance(v, torch.Tensor):
        return Tensor.of(_array(v))
    if type(v) in (tuple, list):  # not a named tuple: those are dlg's results already
        return type(v)(_value(x) for x in v)
    return v


def _load(arg: Any, env: dict[Any, Any]) -> Any:
    """fx arguments with each node replaced by its value."""
    if isinstance(arg, tuple):
        return tuple(_load(a, env) for a in arg)
    if isinstance(arg, list):
        return [_load(a, env) for a in arg]
    if isinstance(arg, dict):
        return {k: _load(v, env) for k, v in arg.items()}
    if isinstance(arg, slice):  # x[:, :k] with k computed from a size
        return slice(_load(arg.start, env), _load(arg.stop, env), _load(arg.step, env))
    return env[arg] if isinstance(arg, torch_module().fx.Node) else arg


def _source_span(node: Any) -> Span | None:
    """The line of the module's Python source that made the node (fx records the stack)."""
    found = re.match(r'File "([^"]+)", line (\d+)', node.stack_trace or "")
    if found is None:
        return None
    file, line = found[1], int(found[2])
    lines = linecache.getlines(file)
    text = lines[line - 1].rstrip() if 0 < line <= len(lines) else ""
    start = len(text) - len(text.lstrip()) + 1
    return Span(file, line, start, line, len(text) + 1, "".join(lines) or None)


def _target_name(target: Any) -> str:
    if isinstance(target, str):
        return target
    module = getattr(target, "__module__", None) or "torch"
    return f"{module}.{getattr(target, '__name__', repr(target))}"
