"""The public entry points: `dlg.load`, `dlg.loads` and `dlg.compile`. The one module allowed to
import every part of dlg (grammar, frontend, runtime), to put them together for users."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from dlg import serialization
from dlg.errors import DlgImportError, DlgValueError
from dlg.frontend.compiled import OptimizedModule
from dlg.frontend.lazy import LazyExecutable
from dlg.frontend.nn import Module, Parameter
from dlg.frontend.tensor import Tensor
from dlg.frontend.trace import trace
from dlg.grammar.models import elaborate, has_train_section
from dlg.grammar.loader import Program, load_file, load_source
from dlg.ir.dtypes import DType
from dlg.ir.types import TensorType
from dlg.runtime.executable import TARGETS, Executable
from dlg.runtime.model import Model
from dlg.runtime.pickled import (PickledObjects, convert, is_pickled, load_allowed, load_object,
                                 load_tree, save_object, save_tree)
from dlg.runtime.weights import load_weights, save_weights


def load(f: str | Path | IO[bytes], model: str | None = None, seed: int | None = 0, *,
         map_location: Any = None, weights_only: bool | None = None, mmap: bool | None = None
         ) -> Model | Executable:
    """Load a model from a .dlg file: parse, elaborate, infer shapes, initialise parameters.
    A .dlgx artifact (from `dlgc compile` or `exe.save`) loads as a ready `dlg.Executable`;
    a .safetensors/.npz file as the state_dict it holds, and what torch.save wrote (a .pt,
    .pth, .tar, .ckpt... file, or an open binary file such as an `io.BytesIO`) as the
    state_dict or checkpoint it holds, with dlg tensors where torch.load gives torch's.

    `model` picks one when the file defines several; `seed` makes initialisation reproducible
    (the same seed gives the same parameters; None draws fresh ones). torch.load's
    `map_location` and `mmap` are accepted and change nothing: tensors load on the CPU. Only
    tensors and containers of them are unpickled, unless `weights_only=False` (torch's) asks
    for a whole module saved with `dlg.save(model, path)`: then the file's pickle runs as
    it is, as torch.load's does, so pass it only for files you trust.
    """
    if weights_only is False and (hasattr(f, "read") or Path(f).suffix not in (  # type: ignore
            ".dlg", ".dlgx", *FLAT_FORMATS)):
        return _tree_or_object(f)  # type: ignore[arg-type]
    if hasattr(f, "read"):
        return _weights_only(f)  # type: ignore[arg-type]
    path = Path(f)  # type: ignore[arg-type]
    if path.suffix == ".dlgx":
        return Executable.from_artifact(path)  # type: ignore[return-value]
    if path.suffix in FLAT_FORMATS:  # a state_dict, as torch.load gives one
        return {k: Tensor.of(v) for k, v in load_weights(path).items()}  # type: ignore[return-value]
    if path.suffix == ".dlg" or (not path.suffix and not is_pickled(path)):
        return _model(load_file(path), model, seed)
    if path.suffix not in (".pt", ".pth") and path.exists() and not is_pickled(path):
        raise DlgImportError(f"{path}: dlg.load reads .dlg files, .dlgx artifacts, "
                             f".safetensors/.npz state_dicts and what torch.save wrote")
    return _weights_only(path)  # torch.save's file, whatever its name


def _weights_only(source: Path | IO[bytes]) -> Any:
    """A state_dict or checkpoint; a whole module too where dlg.serialization's safe globals
    list every class it names (dlg's tensors, parameters and dtypes always allowed then)."""
    start = source.tell() if hasattr(source, "tell") else None
    try:
        return _tensors(load_tree(source))
    except PickledObjects:
        allowed = serialization.get_safe_globals()
        if not allowed:
            raise
        if start is not None:
            source.seek(start)  # type: ignore[union-attr]
        return load_allowed(source, [*_DLG_STATE, *allowed])


# what a pickled dlg module holds besides its own classes (torch allows its own likewise)
_DLG_STATE = [Tensor, Parameter, DType, TensorType, OrderedDict, set, np.ndarray, np.dtype,
              getattr(np, "_core", np.core).multiarray._reconstruct,
              *{type(np.dtype(d)) for d in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "?",
                                            "c8", "c16")}]


def _tensors(tree: Any) -> Any:
    return convert(tree, lambda a, _: Tensor.of(a))


def _tree_or_object(f: str | Path | IO[bytes]) -> Any:
    """torch.load(weights_only=False): a state_dict or checkpoint as always; a file holding
    other objects (a whole module) unpickled as it is."""
    source = f if hasattr(f, "read") else Path(f)  # type: ignore[arg-type]
    start = source.tell() if hasattr(source, "tell") else None  # type: ignore[union-attr]
    try:
        return _tensors(load_tree(source))  # type: ignore[arg-type]
    except PickledObjects:
        if start is not None:
            source.seek(start)  # type: ignore[union-attr]
        return load_object(source)  # type: ignore[arg-type]


def save(state: Any, f: str | Path | IO[bytes]) -> None:
    """Save a state_dict, or a checkpoint nesting several (dicts, lists and tuples of tensors,
    arrays, numbers and strings: what optimizers' and schedulers' state_dicts hold), like
    torch.save: to any file name (.pt, .pth, .tar, .ckpt...) or an open binary file, in
    torch.save's format (dlg.runtime.pickled says how); .safetensors and .npz files take a
    flat state_dict. `dlg.load` reads either back. A whole module (`torch.save(model, path)`)
    is pickled as it is; `dlg.load(path, weights_only=False)` reads it back."""
    if isinstance(state, Module) and (hasattr(f, "write") or Path(f).suffix not in  # type: ignore
                                      FLAT_FORMATS):
        save_object(f if hasattr(f, "write") else Path(f), state)  # type: ignore[arg-type]
        return
    if hasattr(f, "write"):
        save_tree(f, convert(state, lambda v, _: _as_array(v, contiguous=True)))  # type: ignore
        return
    path = Path(f)  # type: ignore[arg-type]
    if path.suffix not in FLAT_FORMATS:
        save_tree(path, convert(state, lambda v, _: _as_array(v, contiguous=True)))
        return
    if not isinstance(state, Mapping):
        raise DlgValueError("dlg.save stores a state_dict (a mapping of names to tensors); use "
                            "exe.save(path) for compiled models")
    for k, v in state.items():
        if _as_array(v) is None:
            raise DlgValueError(f"{path}: {path.suffix} files hold a flat state_dict (names to "
                                f"tensors), but {k!r} is a {type(v).__name__}; save "
                                f"checkpoints that nest state_dicts as .pt or .pth")
    save_weights(path, {k: _as_array(v) for k, v in state.items()})


FLAT_FORMATS = (".safetensors", ".npz")  # the rest is torch.save's


def _as_array(value: Any, contiguous: bool = False) -> np.ndarray | None:
    """A tensor's, array's or number's values (a C-ordered copy if `contiguous`); None for
    anything else (a nested dict)."""
    if isinstance(value, (bool, int, float, np.generic)) or hasattr(value, "__array__"):
        return np.array(value, order="C") if contiguous else np.asarray(value)
    return None


def loads(source: str, model: str | None = None, seed: int | None = 0,
          file: str = "<string>") -> Model:
    """Like `load`, from .dlg source text."""
    return _model(load_source(source, file), model, seed)


def _model(program: Program, model: str | None, seed: int | None) -> Model:
    result = elaborate(program, model, training=False, seed=seed)
    train_result = None
    if has_train_section(program, result.graph.name):
        train_result = elaborate(program, result.graph.name, training=True, seed=seed)
    name = result.graph.name
    return Model(result.graph, result.params, result.trainable,
                 train_spec=train_result.train if train_result else None,
                 build_train_graph=(lambda: train_result.graph) if train_result else None,
                 build_eval_graph=(lambda: elaborate(program, name, training=False, seed=seed,
                                                     train_section=True).graph)
                 if train_result else None,
                 seed=seed, layer_calls=result.layer_calls)


TORCH_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile(model: Model | Module | Callable[..., Any] | str | Path,  # noqa: A001
            *example_inputs: Any, target: str = "cpu", mode: str | None = None,
            fullgraph: bool = False, dynamic: bool | None = None, backend: Any = "inductor",
            options: Mapping[str, Any] | None = None, disable: bool = False
            ) -> Any:
    """Compile a model, a .dlg file, or a dlg.nn module or tensor function (traced on
    `example_inputs`) to native code: `exe(x=...)` runs it in one call and `exe.train_step()`
    a whole training step. Parameters stay shared with the model.

    Without example inputs, as torch.compile is called: a module becomes an `OptimizedModule`
    (frontend/compiled.py), a module itself whose calls compile at first use per signature and
    return dlg tensors shaped as the module's outputs, differentiable by `loss.backward()`
    through a compiled gradient; a function compiles at its first call and returns arrays
    (frontend/lazy.py).
    `target`: "cpu", "cuda-emulated" (the GPU's kernels run on the CPU, launch by launch) or
    "cuda" (an NVIDIA GPU through pycuda). torch.compile's options are accepted so its calls
    run unchanged: `disable=True` returns `model` itself, as torch's; `mode` is checked against
    torch's modes, and it, `fullgraph`, `dynamic`, `backend` and `options` change nothing (dlg
    compiles whole graphs, the batch axis symbolic, with its one compiler)."""
    if mode is not None and mode not in TORCH_MODES:
        raise DlgValueError(f"dlg.compile: unknown mode {mode!r} (torch.compile's modes: "
                            f"{', '.join(TORCH_MODES)})")
    if disable:
        return model
    traceable = isinstance(model, Module) or (
        callable(model) and not isinstance(model, (Model, Executable, str, Path)))
    if isinstance(model, Module) and not example_inputs:
        if target not in TARGETS:
            raise DlgValueError(f"unknown target {target!r} (targets: {', '.join(TARGETS)})")
        return OptimizedModule(model, target)
    if traceable and not example_inputs:
        return LazyExecutable(model, target)
    if traceable:
        model = trace(model, *example_inputs)
    elif not isinstance(model, Model):
        model = load(model)  # type: ignore[assignment]
    if not isinstance(model, Model):
        raise DlgValueError("dlg.compile: this is already compiled (a .dlgx artifact)")
    return Executable(model, target)


def _compile_in_place(self: Module, **options: Any) -> None:
    """torch's nn.Module.compile(**torch.compile's options): the module's calls run through
    dlg.compile(module) from now on, in place, its state_dict keeping its names."""
    compiled = compile(self, **options)
    object.__setattr__(self, "_compiled_call", None if compiled is self else compiled)


Module.compile = _compile_in_place  # type: ignore[attr-defined]
