"""`dlg.compile(module)`: torch.compile's `OptimizedModule`, a module wrapping the original
(`_orig_mod`, its parameters and state_dict under that prefix, other attributes forwarded) whose
call runs compiled code and returns dlg tensors shaped as the eager module's outputs (nested
tuples, lists, dicts, dataclasses, None and other Python values where the module returns them;
arguments nest the same ways). What a forward puts in a list, dict or dataclass it was given (a
KV cache) is returned by the compiled code too and written back into the caller's containers
after each call; a tensor stored in another object is refused (compiled, it would not be). So
are the tensors it sets as its modules' plain attributes (d2l's attention weights kept for
plotting), and one it sets over a tensor already there (a from-scratch batch norm's moving
averages, computed from the old ones) is read as an input of each call too (the first trace,
finding it, is redone).

The module is traced at its first call on that call's arguments (tensors and arrays are the
graph's inputs, the batch axis symbolic; other arguments are constants of the trace) and again
when a call differs in what a trace fixed: the argument structure, a constant, a dtype, a size
other than the batch axis, or any submodule's train/eval mode (or the grad mode, where the
forward asks torch.is_grad_enabled()). Where the symbolic batch axis is a shape error (a
square [N, N] adjacency), the call is traced at its own shapes instead, as torch.compile
specialises, and again at each new batch size. Parameters and buffers are read
at each call, so an optimizer's in-place updates (or `load_state_dict`) need no recompile, and
train-mode batch-norm statistics are written back by the compiled code as eagerly.

Under grad mode, when a parameter or an input requires grad, the call is ONE `py_function` node
on the eager tape: its value the compiled forward's outputs (`compiler/passes/split_vjp.py`: the
forward also returns the values its gradient needs), its VJP a `py_function` running the
compiled backward graph on them and the cotangents, so `loss.backward()` fills the parameters'
`.grad` (and an input's) as eager dlg would and optimizers work unchanged. Under `no_grad` only
the plain compiled forward runs. The compiled gradient is not itself differentiable
(create_graph through it is refused, as torch.compile's AOTAutograd refuses double backward).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.compiler.passes.split_vjp import COTANGENT, SAVED, VjpSplit, vjp_split
from dlg.compiler.pipeline import CompileOptions
from dlg import foreign
from dlg.errors import DlgError, DlgShapeError, DlgTypeError, DlgValueError
from dlg.frontend.autograd import Rebindable
from dlg.frontend.engine import (
    caller_span,
    current_tracer,
    enable_grad,
    grad_enabled,
    program_grad_mode,
)
from dlg.frontend.nn import Module
from dlg.frontend.nn.uninitialized import is_lazy
from dlg.frontend.tensor import Tensor, apply as apply_op
from dlg.frontend.trace import batch_axes, batch_size, trace_flat
from dlg.ir.builder import Builder
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.custom import PY_FUNCTION
from dlg.ir.types import TensorType
from dlg.runtime.cuda_device import DeviceGraph
from dlg.runtime.model import Model
from dlg.runtime.native import NativeGraph

Native = NativeGraph | DeviceGraph


class OptimizedModule(Module):
    """What `dlg.compile(module)` returns (see the module docstring)."""

    _opt_mod_attributes = frozenset({"_orig_mod", "compiled", "target", "forward", "state"})

    def __init__(self, mod: Module, target: str = "cpu"):
        super().__init__()
        self._modules["_orig_mod"] = mod
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "compiled", {})  # trace signature -> _Entry
        # (submodule path, name) of the plain tensor attributes its forward sets anew from
        # their old values (d2l's batch norm from scratch keeps its moving averages so): read
        # as inputs at each call and written back after it
        object.__setattr__(self, "state", ())

    @property  # type: ignore[override]
    def training(self) -> bool:
        return self._orig_mod.training

    @training.setter
    def training(self, value: bool) -> None:
        mod = self.__dict__.get("_modules", {}).get("_orig_mod")
        if mod is not None:  # Module.__init__'s default is the original's business
            object.__setattr__(mod, "training", value)

    def __getattr__(self, name: str) -> Any:
        modules = self.__dict__.get("_modules")
        if modules is None or "_orig_mod" not in modules:
            raise AttributeError(f"OptimizedModule has no attribute {name!r}")
        if name == "_orig_mod":
            return modules["_orig_mod"]
        return getattr(modules["_orig_mod"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(type(self), name) or name in self._opt_mod_attributes:
            super().__setattr__(name, value)
        else:
            setattr(self._orig_mod, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._orig_mod, name)

    def __len__(self) -> int:
        return len(self._orig_mod)

    def __getstate__(self) -> dict[str, Any]:
        """Copied or pickled without its compiled code (the copy compiles at its first call),
        so `copy.deepcopy(model)` (an EMA or AveragedModel of it) works as torch's."""
        return {**self.__dict__, "compiled": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._orig_mod)) | set(super().__dir__()))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if current_tracer() is not None:  # inside a module dlg traces: its ops join that trace
            return self._orig_mod(*args, **kwargs)
        leaves: list[Any] = []
        spec = _flatten((args, kwargs), leaves)
        for obj in _statics(spec):
            if _holds(obj, lambda t: True):
                raise DlgTypeError(
                    f"{type(self._orig_mod).__name__} was given a {type(obj).__name__} holding "
                    f"tensors in its attributes; compiled code would keep reading the first "
                    f"call's tensors as constants. Pass them as arguments, or in a list, dict or "
                    f"dataclass, which each call reads", caller_span())
        module = self._orig_mod
        held = _held(module, self.state)
        arrays = [x.numpy_view() if isinstance(x, Tensor) else np.asarray(x)
                  for x in leaves + held]
        batch = batch_size(arrays[:len(leaves)])
        modes = tuple(m.training for m in module.modules())
        key = ((spec, self.state), tuple(
            (a.dtype.str, _without(a.shape, batch_axes(a.shape, batch)) if i < len(leaves)
             else a.shape) for i, a in enumerate(arrays)), modes)
        static = ((spec, self.state), tuple((a.dtype.str, a.shape) for a in arrays), modes)
        entry = self._entry(key)
        if entry is _STATIC:
            entry = self._entry(static)
        if entry is None:
            entry = self._trace(key, static, spec, leaves + held)
            if entry.new_state:  # attributes it sets anew: their old values are inputs too
                for k in (key, static):
                    self.compiled.pop(k, None)
                object.__setattr__(self, "state", self.state + entry.new_state)
                return self.forward(*args, **kwargs)
        leaves = leaves + held
        named = _named_tensors(module)
        wrt = _wanted(entry.model.graph, named, leaves) if grad_enabled() else ()
        if not wrt:
            native = entry.plain()
            outs = native.run(tuple(arrays), _param_values(native, named))
            tensors = [Tensor.result(a, _type(a), None) for a in outs]
        else:
            tensors = _recorded(entry, wrt, arrays, named, leaves)
        if entry.writes is not None:  # what the forward put in its list/dict arguments
            written, sources = entry.writes
            made = iter(tensors[entry.n_out:])
            _write_back((args, kwargs), _unflatten(written, iter(
                [leaves[i] if i is not None else next(made) for i in sources])))
        if entry.attributes:  # what it set its modules' attributes to, as eagerly
            subs = dict(module.named_modules())
            made = iter(tensors[len(tensors) - sum(_count(a[2]) for a in entry.attributes):])
            for path, name, value in entry.attributes:
                subs[path].__dict__[name] = _unflatten(value, made)
        return _unflatten(entry.out_spec, iter(tensors[:entry.n_out]))


    def _entry(self, key: Any) -> Any:
        """The trace kept for `key`: of the caller's grad mode where the forward asked for it
        (such a key keeps one trace per mode)."""
        entry = self.compiled.get(key)
        return entry.get(grad_enabled()) if isinstance(entry, dict) else entry

    def _keep(self, key: Any, entry: _Entry) -> _Entry:
        if entry.grad_mode is None:
            self.compiled[key] = entry
        else:
            kept = self.compiled.get(key)
            self.compiled[key] = {**(kept if isinstance(kept, dict) else {}),
                                  entry.grad_mode: entry}
        return entry

    def _trace(self, key: Any, static: Any, spec: Any, leaves: list[Any]) -> _Entry:
        state = self.state
        """The call traced with its batch axis symbolic; where that is a shape error (a square
        [N, N] adjacency has N on an axis the batch axis rule leaves static), at the call's own
        shapes, as torch.compile specialises, and so at each new batch size after."""
        if key != static and self.compiled.get(key) is not _STATIC:
            try:
                return self._keep(key, _Entry.trace(self._orig_mod, spec, leaves, self.target,
                                                    state=state))
            except DlgShapeError:
                self.compiled[key] = _STATIC
        return self._keep(static, _Entry.trace(self._orig_mod, spec, leaves, self.target,
                                               static=True, state=state))


_STATIC = object()  # a signature whose batch axis does not trace symbolically


class _Entry:
    """One trace: its model, how its outputs nest, its compiled graphs (made when first run)."""

    def __init__(self, model: Model, out_spec: Any, target: str, writes: Any = None,
                 grad_mode: bool | None = None, attributes: tuple[Any, ...] = (),
                 new_state: tuple[Any, ...] = ()):
        self.model, self.out_spec, self.target = model, out_spec, target
        # the module attributes the forward set, returned last by the graph and written back;
        # those it set from old values it did not read as inputs (the trace is then redone)
        self.attributes, self.new_state = attributes, new_state
        self.grad_mode = grad_mode  # the caller's grad mode, where the forward asked for it
        self.n_out = _count(out_spec)
        # what the forward leaves in its list, dict and dataclass arguments: the arguments'
        # structure after the call and, per tensor there, the input it is (its index) or None
        # for a new one, which the graph returns after the forward's own outputs
        self.writes = writes
        self._plain: Native | None = None
        self.splits: dict[tuple[str, ...], tuple[VjpSplit, Native, Native]] = {}

    @classmethod
    def trace(cls, module: Module, spec: Any, leaves: list[Any], target: str,
              static: bool = False, state: tuple[Any, ...] = ()) -> _Entry:
        out_spec: list[Any] = []
        writes: list[Any] = []
        attributes: list[Any] = []
        n_call = len(leaves) - len(state)

        def flat_forward(*xs: Any) -> tuple[Any, ...]:
            xs, held = xs[:n_call], xs[n_call:]
            subs = dict(module.named_modules())
            for (path, name), x in zip(state, held):
                subs[path].__dict__[name] = x
            seen = _plain_tensors(subs)
            args, kwargs = _unflatten(spec, iter(xs))
            outs: list[Any] = []
            out_spec.append(_flatten(module(*args, **kwargs), outs))
            if not outs:
                raise DlgTypeError(f"{type(module).__name__} returned no tensor; a compiled "
                                   f"module returns at least one", caller_span())
            after: list[Any] = []
            written = _flatten((args, kwargs), after)
            inputs = {id(x): i for i, x in enumerate(xs)}
            if _holds_traced(_statics(written), set(inputs)):
                raise DlgValueError(
                    f"{type(module).__name__}.forward stored a tensor in an object it was given "
                    f"(such as a KV cache object); compiled, the forward runs without Python, "
                    f"so the object would not change: return the new values, keep them in a "
                    f"list or dict argument, or call the module uncompiled", caller_span())
            set_anew = [(at, v) for at, v in _attribute_values(subs).items()
                        if _holds_traced(v, set()) and v is not seen.get(at)]
            new_state.extend(at for at, v in set_anew
                             if isinstance(v, Tensor) and at in seen and at not in state)
            attribute_outs: list[Any] = []
            attributes.append(tuple((*at, _flatten(v, attribute_outs)) for at, v in set_anew))
            if written == spec and all(a is x for a, x in zip(after, xs)):
                writes.append(None)
                return tuple(outs) + tuple(attribute_outs)
            # a list or dict argument written into (a KV cache): its new tensors are outputs too
            writes.append((written, tuple(inputs.get(id(a)) for a in after)))
            return (tuple(outs) + tuple(a for a in after if id(a) not in inputs)
                    + tuple(attribute_outs))
        new_state: list[Any] = []
        before = _identities(module)
        program = program_grad_mode(grad_enabled())
        try:
            # one graph for both modes (each call chooses to record or not), unless the forward
            # asks which mode it runs in
            with enable_grad(), program:
                names = _names(module, spec) + [".".join(("self", *filter(None, at)))
                                                 for at in state]
                model = trace_flat(module, flat_forward, names, leaves, static,
                                   {name: {} for name in names[n_call:]})
        except DlgError:
            if _identities(module) == before:
                raise
            model = None
        if _identities(module) != before or model is None:
            # lazy modules made their parameters and buffers while traced, where they were
            # constants (and a batch norm's statistics not its own): again, now they are
            return cls.trace(module, spec, leaves, target, static, state)
        return cls(model, out_spec[0], target, writes[0],
                   program.mode if program.read else None, attributes[0], tuple(new_state))

    def plain(self) -> Native:
        if self._plain is None:
            self._plain = _native(self.model.graph, self.target)
        return self._plain

    def split(self, wrt: tuple[str, ...]) -> tuple[VjpSplit, Native, Native]:
        if wrt not in self.splits:
            s = vjp_split(self.model.graph, wrt)
            self.splits[wrt] = (s, _native(s.forward, self.target),
                                _native(s.backward, self.target))
        return self.splits[wrt]


def _plain_tensors(subs: dict[str, Module]) -> dict[tuple[str, str], Tensor]:
    """The plain tensor attributes (not parameters or buffers) of the modules, by (path,
    name)."""
    return {(path, name): t for path, m in subs.items() for name, t in m.__dict__.items()
            if isinstance(t, Tensor)}


_MODULE_TABLES = frozenset(vars(Module()))  # a module's own: parameters, buffers, hooks...


def _attribute_values(subs: dict[str, Module]) -> dict[tuple[str, str], Any]:
    """The modules' plain tensor attributes and the lists, tuples and dicts among their other
    attributes (which may hold tensors: d2l's decoder keeps its attention weights so)."""
    return {(path, name): v for path, m in subs.items() for name, v in m.__dict__.items()
            if isinstance(v, (Tensor, list, tuple, dict)) and name not in _MODULE_TABLES}


def _held(module: Module, state: tuple[Any, ...]) -> list[Tensor]:
    """The tensors in the module's state attributes now, without their gradient records (a
    compiled call reads their values)."""
    if not state:
        return []
    subs = dict(module.named_modules())
    held = []
    for path, name in state:
        t = subs[path].__dict__.get(name) if path in subs else None
        if not isinstance(t, Tensor):
            raise DlgValueError(f"the compiled module's tensor attribute {name!r} is gone from "
                                f"{type(subs.get(path, module)).__name__}", caller_span())
        held.append(t.detach())
    return held


def _identities(module: Module) -> set[tuple[int, bool]]:
    """The module's parameters and buffers, each as its id and whether it is a lazy module's
    placeholder (filled in place by the module's first call)."""
    return {(id(t), is_lazy(t)) for t in _named_tensors(module).values()}


def _recorded(entry: _Entry, wrt: tuple[str, ...], arrays: list[np.ndarray],
              named: dict[str, Tensor], leaves: list[Any]) -> list[Tensor]:
    """The compiled forward, recorded on the tape as one py_function node over the tensors that
    want a gradient (its outputs that no such tensor reaches, or of integers, want none)."""
    split, forward, back = entry.split(wrt)
    outs = forward.run(tuple(arrays), _param_values(forward, named))
    n_out = len(outs) - split.n_saved
    graph = entry.model.graph
    inputs = dict(zip((n.name for n in graph.inputs), arrays))
    by_input = dict(zip((n.name for n in graph.inputs), leaves))
    sources = [named[w] if w in named else by_input[w] for w in wrt]
    call = _CompiledCall(graph.name, split, back, list(outs[:n_out]), list(outs[n_out:]),
                         inputs, named, sources)
    results = apply_op(PY_FUNCTION, *sources, fn=call)
    return [r if keep else Tensor.result(r.numpy_view(), r.tensor_type, None)
            for r, keep in zip(results, split.differentiable)]


class _CompiledCall(Rebindable):
    """The `fn` of a compiled call's py_function node: the outputs its forward made, and a VJP
    that runs the compiled backward. Per call: a kept gradient graph holds a template of it,
    rebound to each step's call (autograd.Rebindable)."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, name: str, split: VjpSplit, backward: Native, outs: list[np.ndarray],
                 saved: list[np.ndarray], inputs: dict[str, np.ndarray],
                 named: dict[str, Tensor], sources: list[Tensor]):
        self.name, self.split, self.backward = name, split, backward
        self.outs, self.saved, self.inputs, self.named = outs, saved, inputs, named
        self.sources = sources  # the tensors wanting a gradient: the node's inputs

    def __repr__(self) -> str:
        return f"compiled {self.name}"

    def tape_key(self) -> tuple[Any, ...]:
        # split and backward stay alive while a template holds them; the outputs' shapes are
        # the call's batch size, which the gradient graph's later nodes are built for
        return id(self.split), id(self.backward), tuple(a.shape for a in self.outs)

    def template(self) -> _CompiledCall:
        return copy.copy(self)

    def rebind(self, call: _CompiledCall) -> None:
        self.outs, self.saved, self.inputs = call.outs, call.saved, call.inputs
        self.named, self.sources = call.named, call.sources

    def infer(self, types: tuple[TensorType, ...]) -> list[TensorType]:
        return [_type(a) for a in self.outs]

    def compute(self, arrays: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        return self.outs

    def eager(self, inputs: tuple[Tensor, ...]) -> Any:
        return apply_op(PY_FUNCTION, *inputs, fn=self)

    def vjp(self, b: Builder, node: Node, g: tuple[Value, ...]) -> tuple[Value | None, ...]:
        return tuple(b.emit(PY_FUNCTION, *g, fn=_CompiledGradient(self)))

    def gradients(self, cotangents: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        feeds = dict(self.inputs)
        feeds.update((f"{SAVED}{k}", a) for k, a in enumerate(self.saved))
        feeds.update((f"{COTANGENT}{i}", np.asarray(ct, dtype=self.outs[i].dtype))
                     for i, ct in enumerate(cotangents) if self.split.differentiable[i])
        native = self.backward
        args = tuple(feeds[name] for name in native.input_names)
        return list(native.run(args, _param_values(native, self.named)))


class _CompiledGradient:
    """The `fn` of the py_function node a compiled call's VJP makes: the compiled backward."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, call: _CompiledCall):
        self.call = call

    def __repr__(self) -> str:
        return f"compiled {self.call.name} backward"

    def infer(self, types: tuple[TensorType, ...]) -> list[TensorType]:
        return [t.tensor_type for t in self.call.sources]

    def compute(self, arrays: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        return self.call.gradients(arrays[:len(self.call.outs)])

    def eager(self, grads: tuple[Tensor, ...]) -> Any:
        """create_graph: one node again, over the cotangents and the tensors the gradients
        are functions of (so they require grad, as torch's), whose VJP refuses."""
        return apply_op(PY_FUNCTION, *grads, *self.call.sources, fn=self)

    def vjp(self, b: Builder, node: Node, g: tuple[Value, ...]) -> tuple[Value | None, ...]:
        raise DlgValueError(f"the gradient of compiled {self.call.name} cannot be "
                            f"differentiated again (a double backward, which torch.compile "
                            f"refuses too); call the module itself, not dlg.compile's", node.span)


# ---- arguments and outputs as (structure, leaves) -----------------------------------------------
_TENSOR = "<tensor>"  # a leaf's place in a structure


class _Static:
    """A non-tensor value of an argument or output (None, a number, a flag): part of the trace,
    compared by type and value (by identity when unhashable)."""

    __slots__ = ("value", "key")

    def __init__(self, value: Any):
        self.value = value
        try:
            hash(value)
            self.key: Any = (type(value), value)
        except TypeError:
            self.key = (type(value), id(value))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Static) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


def _flatten(value: Any, leaves: list[Any]) -> Any:
    """value's structure (hashable), its tensors and arrays appended to `leaves` in order."""
    if isinstance(value, (Tensor, np.ndarray)):
        leaves.append(value)
        return _TENSOR
    if foreign.is_foreign(value):  # a torch tensor in a dict argument: a dlg tensor
        leaves.append(Tensor.of(value))
        return _TENSOR
    if isinstance(value, (tuple, list)):
        return ("seq", type(value), tuple(_flatten(v, leaves) for v in value))
    if isinstance(value, dict):
        return ("dict", type(value), tuple(value),
                tuple(_flatten(v, leaves) for v in value.values()))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # a model output class
        names = tuple(f.name for f in dataclasses.fields(value))
        return ("dataclass", type(value), names,
                tuple(_flatten(getattr(value, n), leaves) for n in names))
    return _Static(value)


def _statics(spec: Any) -> list[Any]:
    """The plain Python values (objects) in an arguments' structure."""
    if isinstance(spec, _Static):
        return [spec.value]
    if spec is _TENSOR:
        return []
    return [v for s in spec[-1] for v in _statics(s)]


def _write_back(old: Any, new: Any) -> None:
    """The lists, dicts and dataclasses of `old` (the caller's arguments) given `new`'s contents
    in place, element by element where both nest alike, so the caller's containers (a KV
    cache's lists) see what the forward put in them."""
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (o, n) in enumerate(zip(old, new)):
            if _nests(o, n):
                _write_back(o, n)
            elif o is not n:
                old[i] = n
    elif isinstance(old, list) and isinstance(new, list):
        old[:] = new
    elif isinstance(old, dict) and isinstance(new, dict):
        for k in [k for k in old if k not in new]:
            del old[k]
        for k, n in new.items():
            if k in old and _nests(old[k], n):
                _write_back(old[k], n)
            elif k not in old or old[k] is not n:
                old[k] = n
    elif isinstance(old, tuple) and isinstance(new, tuple) and len(old) == len(new):
        for o, n in zip(old, new):
            if _nests(o, n):
                _write_back(o, n)
    elif dataclasses.is_dataclass(old) and type(old) is type(new):
        for f in dataclasses.fields(old):
            o, n = getattr(old, f.name), getattr(new, f.name)
            if _nests(o, n):
                _write_back(o, n)
            elif o is not n:
                object.__setattr__(old, f.name, n)


def _nests(old: Any, new: Any) -> bool:
    return isinstance(old, (list, dict, tuple)) and type(old) is type(new) or (
        dataclasses.is_dataclass(old) and not isinstance(old, type) and type(old) is type(new))


def _holds_traced(value: Any, inputs: set[int]) -> bool:
    """Whether an argument holds a traced tensor other than the inputs: the forward stored one
    there (a cache object's update), which compiled code would never do."""
    return _holds(value, lambda t: t.graph_value is not None and id(t) not in inputs)


def _holds(value: Any, found: Callable[[Tensor], bool], depth: int = 4) -> bool:
    """Whether a value (its lists, dicts and objects' attributes, `depth` deep, modules aside)
    holds a tensor that is `found`."""
    if isinstance(value, Tensor):
        return found(value)
    if depth == 0 or isinstance(value, (Module, str, bytes, np.ndarray)):
        return False
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, (list, tuple, set)):
        items = value
    else:
        items = getattr(value, "__dict__", {}).values()
    return any(_holds(v, found, depth - 1) for v in items)


def _unflatten(spec: Any, leaves: Any) -> Any:
    if spec is _TENSOR:
        return next(leaves)
    if isinstance(spec, _Static):
        return spec.value
    if spec[0] == "dict":
        return spec[1](zip(spec[2], [_unflatten(s, leaves) for s in spec[3]]))
    if spec[0] == "dataclass":  # its fields set as they were, __init__ not run again
        made = object.__new__(spec[1])
        for name, s in zip(spec[2], spec[3]):
            object.__setattr__(made, name, _unflatten(s, leaves))
        return made
    items = [_unflatten(s, leaves) for s in spec[2]]
    return spec[1](*items) if hasattr(spec[1], "_fields") else spec[1](items)


def _names(module: Module, spec: Any) -> list[str]:
    """Graph input names: the forward's parameter names (a keyword argument's own), `_k`
    appended per element of a nested argument."""
    try:
        params = [p.name for p in inspect.signature(module.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    args, kwargs = spec[2][0][2], spec[2][1]
    named = [(params[i] if i < len(params) else f"x{i}", s) for i, s in enumerate(args)]
    named += list(zip(kwargs[2], kwargs[3]))
    out: list[str] = []
    for name, s in named:
        if s is _TENSOR:
            out.append(name)
        elif not isinstance(s, _Static):
            out += [f"{name}_{k}" for k in range(_count(s))]
    return out


def _count(spec: Any) -> int:
    if spec is _TENSOR:
        return 1
    if isinstance(spec, _Static):
        return 0
    return sum(_count(s) for s in spec[-1])


# ---- running ----------------------------------------------------------------------------------
def _native(graph: Graph, target: str) -> Native:
    options = CompileOptions(target="cpu" if target == "cuda" else target)
    return (DeviceGraph(graph, options=options) if target == "cuda"
            else NativeGraph(graph, options=options))


def _named_tensors(module: Module) -> dict[str, Tensor]:
    """The module's parameters and buffers by every name, as they are now."""
    return (dict(module.named_parameters(remove_duplicate=False))
            | dict(module.named_buffers(remove_duplicate=False)))


def _param_values(native: Native, named: dict[str, Tensor]) -> tuple[np.ndarray, ...]:
    try:
        return tuple(named[name].numpy_view() for name in native.param_names)
    except KeyError as e:
        raise DlgValueError(f"the compiled module's parameter or buffer {e.args[0]!r} is gone "
                            f"from the module", caller_span()) from None


def _wanted(graph: Graph, named: dict[str, Tensor], leaves: list[Any]) -> tuple[str, ...]:
    """The params and inputs whose gradient a recorded call computes: floats requiring grad
    now (a parameter frozen or unfrozen since the trace too)."""
    params = [n.name for n in graph.params if n.name in named
              and named[n.name].requires_grad and named[n.name].dtype.is_float]
    inputs = [n.name for n, x in zip(graph.inputs, leaves) if isinstance(x, Tensor)
              and x.requires_grad and x.dtype.is_float]
    return tuple(params + inputs)  # type: ignore[arg-type]


def _type(a: np.ndarray) -> TensorType:
    return TensorType(DType.of(a), a.shape)


def _without(shape: tuple[int, ...], axes: dict[int, str]) -> tuple[int | None, ...]:
    return tuple(None if a in axes else d for a, d in enumerate(shape))
