"""The public entry points: `dlg.load`, `dlg.loads` and `dlg.compile`. The one module allowed to
import every part of dlg (grammar, frontend, runtime), to put them together for users."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dlg.errors import DlgImportError, DlgValueError
from dlg.frontend.lazy import LazyExecutable
from dlg.frontend.nn import Module
from dlg.frontend.tensor import Tensor
from dlg.frontend.trace import trace
from dlg.grammar.models import elaborate, has_train_section
from dlg.grammar.loader import Program, load_file, load_source
from dlg.runtime.executable import Executable
from dlg.runtime.model import Model
from dlg.runtime.pickled import convert, load_tree, save_tree
from dlg.runtime.weights import FORMATS as WEIGHT_FORMATS
from dlg.runtime.weights import TORCH_FORMATS, load_weights, save_weights


def load(path: str | Path, model: str | None = None, seed: int | None = 0
         ) -> Model | Executable:
    """Load a model from a .dlg file: parse, elaborate, infer shapes, initialise parameters.
    A .dlgx artifact (from `dlgc compile` or `exe.save`) loads as a ready `dlg.Executable`;
    a .safetensors/.npz/.pt/.pth file (from `dlg.save` or torch.save) as the state_dict (or,
    from .pt/.pth, the checkpoint) it holds, with dlg tensors where torch.load gives torch's.

    `model` picks one when the file defines several; `seed` makes initialisation reproducible
    (the same seed gives the same parameters; None draws fresh ones).
    """
    path = Path(path)
    if path.suffix == ".dlgx":
        return Executable.from_artifact(path)  # type: ignore[return-value]
    if path.suffix in TORCH_FORMATS:  # a state_dict or a checkpoint, as torch.load gives it
        return convert(load_tree(path), lambda a, _: Tensor(a))  # type: ignore[no-any-return]
    if path.suffix in WEIGHT_FORMATS:  # a state_dict, as torch.load gives one
        return {k: Tensor(v) for k, v in load_weights(path).items()}  # type: ignore[return-value]
    if path.suffix not in (".dlg", ""):
        raise DlgImportError(f"{path}: dlg.load reads .dlg files, .dlgx artifacts and "
                             f".safetensors/.npz/.pt/.pth state_dicts")
    return _model(load_file(path), model, seed)


def save(state: Any, path: str | Path) -> None:
    """Save a state_dict, or a checkpoint nesting several (dicts, lists and tuples of tensors,
    arrays, numbers and strings: what optimizers' and schedulers' state_dicts hold), like
    torch.save. .pt/.pth files take any such nest (dlg.runtime.pickled says how), .safetensors
    and .npz a flat state_dict; `dlg.load` reads either back."""
    path = Path(path)
    if path.suffix in TORCH_FORMATS:
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


def compile(model: Model | Module | Callable[..., Any] | str | Path,  # noqa: A001
            *example_inputs: Any, target: str = "cpu") -> Executable | LazyExecutable:
    """Compile a model, a .dlg file, or a dlg.nn module or tensor function (traced on
    `example_inputs`) to native code: `exe(x=...)` runs it in one call and `exe.train_step()`
    a whole training step. Parameters stay shared with the model. Without example inputs a
    module or function compiles at its first call, as torch.compile's (frontend/lazy.py).
    `target`: "cpu", "cuda-emulated" (the GPU's kernels run on the CPU, launch by launch) or
    "cuda" (an NVIDIA GPU through pycuda)."""
    traceable = isinstance(model, Module) or (
        callable(model) and not isinstance(model, (Model, Executable, str, Path)))
    if traceable and not example_inputs:
        return LazyExecutable(model, target)
    if traceable:
        model = trace(model, *example_inputs)
    elif not isinstance(model, Model):
        model = load(model)  # type: ignore[assignment]
    if not isinstance(model, Model):
        raise DlgValueError("dlg.compile: this is already compiled (a .dlgx artifact)")
    return Executable(model, target)
