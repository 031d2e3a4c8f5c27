"""`dlg.jit`: torch.jit's entry points, for programs that trace, script, save and load modules.

dlg has no TorchScript. What each spelling gives instead:

- `trace(module, example_inputs)` is a `ScriptModule` whose calls run dlg's compiled code (the
  module through `dlg.compile`, frontend/compiled.py), traced now on the examples so a forward
  that cannot be traced fails here, as torch's does. Where torch's would reuse its one trace and
  be silently wrong (another non-batch size, a train/eval switch, a different flag), dlg traces
  again; the batch axis is symbolic. Outputs are dlg tensors, differentiable as the module's.
- `script(module)` is a `ScriptModule` running the module's Python forward eagerly: TorchScript
  compiles that same Python, value-dependent `if`s and loops included, so the eager run is what
  it computes. A function (`@torch.jit.script def f(x): ...`) is returned as it is.
- `save(m, f)` writes a .dlgx artifact (graph, weights, compiled code; nothing pickled) of `m`
  traced on its example inputs (trace's, or a scripted module's first call), the batch axis
  symbolic; `load(f)` gives a `LoadedModule` running it, without the module's Python class, as
  torch.jit.load needs none. A loaded module runs inference: its outputs carry no gradient.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np

from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend.compiled import OptimizedModule
from dlg.frontend.engine import current_tracer, no_grad
from dlg.frontend.nn import Module
from dlg.frontend.tensor import Tensor
from dlg.frontend.trace import flatten_call, trace_flat
from dlg.runtime.executable import Executable

F = TypeVar("F", bound=Callable[..., Any])


class _Function(Module):
    """A plain function as a module without parameters, so functions trace as modules do."""

    def __init__(self, fn: Callable[..., Any]):
        super().__init__()
        object.__setattr__(self, "fn", fn)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


class ScriptModule(Module):
    """torch.jit.ScriptModule: the type of what `trace` and `script` return, and the base of
    TorchScript's older API (`class M(torch.jit.ScriptModule)` with `@torch.jit.script_method`
    methods, as RWKV-4 writes its blocks): such a subclass is a Module running its Python
    methods, which is what TorchScript compiles them to."""

    _example: tuple[tuple[Any, ...], dict[str, Any]] | None = None  # what `save` traces on

    def save(self, f: str | Path | IO[bytes]) -> None:
        """torch's ScriptModule.save: `dlg.jit.save(self, f)`."""
        save(self, f)


def script_method(fn: F) -> F:
    """torch.jit.script_method: the method unchanged (its Python is what TorchScript
    compiles)."""
    return fn


class _Wrapped(ScriptModule):
    """What `trace` and `script` return (see the module docstring): the original module's
    parameters, buffers and submodules under the same names (its state_dict's keys), other
    attributes and methods read from it; calls run compiled code (`trace`) or the Python
    forward (`script`)."""

    def __init__(self, original: Module, compiled: bool,
                 example: tuple[tuple[Any, ...], dict[str, Any]] | None = None):
        super().__init__()
        for table in ("_parameters", "_buffers", "_modules", "_non_persistent"):
            object.__setattr__(self, table, getattr(original, table))  # shared, not copied
        object.__setattr__(self, "_original", original)
        object.__setattr__(self, "_run", OptimizedModule(original) if compiled else original)
        object.__setattr__(self, "_example", example)
        for name in _overridden(type(original)):  # the user's `double` or `train`, not Module's
            object.__setattr__(self, name, getattr(original, name))

    @property  # type: ignore[override]
    def training(self) -> bool:
        return self._original.training

    @training.setter
    def training(self, value: bool) -> None:
        if "_original" in self.__dict__:
            object.__setattr__(self._original, "training", value)

    def __getattr__(self, name: str) -> Any:
        original = self.__dict__.get("_original")
        if original is None:
            raise AttributeError(f"ScriptModule has no attribute {name!r}")
        return getattr(original, name)

    def __len__(self) -> int:  # a traced Sequential or ModuleList indexes as the original
        return len(self._original)

    def __getitem__(self, index: Any) -> Any:
        return self._original[index]

    def __iter__(self) -> Any:
        return iter(self._original)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if current_tracer() is not None:  # inside a module dlg traces: its ops join the trace
            return self._original(*args, **kwargs)
        if self._example is None:  # a scripted module's first call: what save traces on
            object.__setattr__(self, "_example", (args, kwargs))
        return self._run(*args, **kwargs)


def _array(x: Any) -> np.ndarray:
    return x.numpy_view() if isinstance(x, Tensor) else np.asarray(x)


def _overridden(cls: type) -> set[str]:
    """Methods the user's classes (those above dlg's in the MRO) define that ScriptModule
    would otherwise answer with Module's own."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("dlg.") or klass is object:
            break
        names |= {n for n, v in vars(klass).items() if callable(v) and hasattr(_Wrapped, n)
                  and not n.startswith("__") and n not in ("forward", "save")}
    return names


class LoadedModule(Module):
    """What `load` returns: a module running a saved .dlgx artifact on dlg tensors (or arrays),
    in the argument and output structure of the module it was traced from. Its state_dict is
    the artifact's weights (loading one writes them in place); it runs inference only."""

    def __init__(self, exe: Executable):
        super().__init__()
        object.__setattr__(self, "exe", exe)
        object.__setattr__(self, "paths", [_path(name) for name in exe.native.output_names])

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        leaves: list[Any] = []
        flatten_call(lambda *a: None, args, {}, leaves, [])
        named: list[Any] = []
        names: list[str] = []  # keyword arguments by name, as the trace named them
        flatten_call(lambda *a: None, (), kwargs, named, names)
        outs = self.exe(*map(_array, leaves), **dict(zip(names, map(_array, named))))
        outs = outs if isinstance(outs, tuple) else (outs,)
        return _nest(self.paths, [Tensor.of(np.asarray(o)) for o in outs])

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Tensor]:  # type: ignore[override]
        return {k: Tensor.of(v) for k, v in self.exe.params.items()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> Any:
        params = self.exe.params
        unknown = [k for k in state if k not in params]
        missing = [k for k in params if k not in state]
        if strict and (unknown or missing):
            raise DlgValueError(f"state_dict does not match the loaded module: missing keys "
                                f"{missing}, unexpected keys {unknown}")
        for k, v in state.items():
            if k in params:
                np.copyto(params[k], v.numpy_view() if isinstance(v, Tensor) else np.asarray(v))
        return None


def trace(func: Module | Callable[..., Any], example_inputs: Any = None, optimize: Any = None,
          check_trace: bool = True, check_inputs: Any = None, check_tolerance: float = 1e-5,
          strict: bool = True, example_kwarg_inputs: Mapping[str, Any] | None = None,
          **unused: Any) -> ScriptModule:
    """torch.jit.trace: `func` (a module or function) as a ScriptModule running compiled code,
    traced now on `example_inputs` (one tensor or a tuple of arguments). torch's checking
    options change nothing: dlg traces again wherever a call differs from the trace."""
    refused = [k for k in unused if not k.startswith("_")]  # torch's private ones pass
    if refused:
        raise DlgTypeError(f"dlg.jit.trace got unexpected keyword argument(s) "
                           f"{', '.join(refused)}")
    if example_inputs is None and example_kwarg_inputs is None:
        raise DlgTypeError("dlg.jit.trace needs example_inputs (a tensor or a tuple of them)")
    args = example_inputs if isinstance(example_inputs, tuple) else (
        () if example_inputs is None else (example_inputs,))
    kwargs = dict(example_kwarg_inputs or {})
    module = func if isinstance(func, Module) else _Function(func)
    if isinstance(module, ScriptModule):
        module = module._original
    if isinstance(module, OptimizedModule):  # dlg.compile(module): trace what it compiles
        module = module._orig_mod
    traced = _Wrapped(module, compiled=True, example=(args, kwargs))
    with no_grad():
        traced(*args, **kwargs)  # traced and compiled now: untraceable code fails here
    return traced


def script(obj: F, optimize: Any = None, _frames_up: int = 0, _rcb: Any = None,
           example_inputs: Any = None) -> F:
    """torch.jit.script: a module as a ScriptModule running its Python forward (see the module
    docstring); a function or class as it is (TorchScript computes what Python does)."""
    if isinstance(obj, ScriptModule):
        return obj
    if isinstance(obj, Module):
        return _Wrapped(obj, compiled=False)  # type: ignore[return-value]
    return obj


def save(m: Any, f: str | Path | IO[bytes], _extra_files: Any = None) -> None:
    """torch.jit.save: `m` (from `trace` or `script`) traced on its example inputs and
    compiled, written as a .dlgx artifact to a path or binary file."""
    if not isinstance(m, ScriptModule):
        raise DlgTypeError(f"dlg.jit.save takes what dlg.jit.trace or dlg.jit.script returns, "
                           f"got {type(m).__name__} (use dlg.save for a state_dict)")
    model, _ = _traced(m)
    exe = Executable(model)
    if hasattr(f, "write"):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "module.dlgx"
            exe.save(path)
            f.write(path.read_bytes())  # type: ignore[union-attr]
    else:
        exe.save(f)  # type: ignore[arg-type]


def load(f: str | Path | IO[bytes], map_location: Any = None,
         _extra_files: Any = None) -> LoadedModule:
    """torch.jit.load: what `save` wrote, as a LoadedModule (`map_location` changes nothing:
    dlg's tensors are on the CPU)."""
    if hasattr(f, "read"):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "module.dlgx"
            path.write_bytes(f.read())  # type: ignore[union-attr]
            return LoadedModule(Executable.from_artifact(path))
    return LoadedModule(Executable.from_artifact(f))  # type: ignore[arg-type]


def _traced(m: ScriptModule) -> tuple[Any, Any]:
    """`m`'s original traced on its example inputs (the batch axis symbolic), its outputs
    named by their place in the returned structure (`output`, or `output_1_0` for [1][0]) so
    a loaded module returns the same nesting."""
    if m._example is None:
        raise DlgValueError("this scripted module has not been called yet, so dlg has no "
                            "inputs to trace it on: call it once, or use "
                            "dlg.jit.trace(module, example_inputs)")
    args, kwargs = m._example
    leaves: list[Any] = []
    names: list[str] = []
    original = m.__dict__.get("_original", m)  # a ScriptModule subclass is its own original
    rebuild = flatten_call(original.forward, args, kwargs, leaves, names)
    structure: list[Any] = []

    def call(*xs: Any) -> Any:
        positional, keywords = rebuild(xs)
        out = original(*positional, **keywords)
        structure.append(out)
        return out
    model = trace_flat(original, call, names, leaves)
    paths = _paths(structure[-1], ())
    graph = model.graph
    graph.outputs = [("output" if p == () else "output_" + "_".join(map(str, p)), v)
                     for p, (_, v) in zip(paths, graph.outputs)]
    return model, structure[-1]


def _paths(out: Any, at: tuple[int, ...]) -> list[tuple[int, ...]]:
    if isinstance(out, (tuple, list)):
        return [p for i, o in enumerate(out) for p in _paths(o, (*at, i))]
    if not isinstance(out, Tensor):
        raise DlgTypeError(f"dlg.jit.save: the module returned a {type(out).__name__}; a saved "
                           f"module returns tensors, in tuples and lists (as torch.jit.trace's)")
    return [at]


def _path(name: str) -> tuple[int, ...]:
    return tuple(int(i) for i in name.split("_")[1:]) if name.startswith("output_") else ()


def _nest(paths: list[tuple[int, ...]], values: list[Tensor]) -> Any:
    """Outputs put back into nested tuples by their paths."""
    if paths == [()]:
        return values[0]
    groups: dict[int, tuple[list[tuple[int, ...]], list[Tensor]]] = {}
    for p, v in zip(paths, values):
        sub, vals = groups.setdefault(p[0], ([], []))
        sub.append(p[1:])
        vals.append(v)
    return tuple(_nest(*groups[i]) for i in sorted(groups))


def ignore(drop: Any = False, **kwargs: Any) -> Any:
    """torch.jit.ignore, as `@ignore` or `@ignore(drop=True)`: the function unchanged (dlg
    runs Python, so nothing needs leaving out of a script)."""
    return drop if callable(drop) else (lambda fn: fn)


def unused(fn: F) -> F:
    """torch.jit.unused: the function unchanged."""
    return fn


def export(fn: F) -> F:
    """torch.jit.export: the method unchanged (every method of a dlg module is callable)."""
    return fn


def is_scripting() -> bool:
    """False: dlg never runs code as TorchScript (so `if not torch.jit.is_scripting()` paths
    run, as in eager torch)."""
    return False


def is_tracing() -> bool:
    """Whether dlg's tracer is recording this code (dlg.trace, dlg.compile, dlg.jit.trace)."""
    return current_tracer() is not None


def annotate(the_type: Any, the_value: Any) -> Any:
    """torch.jit.annotate: the value itself (a type hint for TorchScript)."""
    return the_value


def freeze(mod: ScriptModule, preserved_attrs: Any = None, optimize_numerics: bool = True
           ) -> ScriptModule:
    """torch.jit.freeze: the module itself (dlg's compiled code already reads the weights at
    each call)."""
    return mod


def optimize_for_inference(mod: ScriptModule, other_methods: Any = None) -> ScriptModule:
    """torch.jit.optimize_for_inference: the module itself (compiled code is dlg's best)."""
    return mod

