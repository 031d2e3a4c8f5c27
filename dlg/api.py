"""The public entry points: `dlg.load` and `dlg.loads`. The one module allowed to import every
part of dlg (grammar, runtime), to put them together for users."""

from __future__ import annotations

from pathlib import Path

from dlg.errors import DlgImportError
from dlg.grammar.elaborate import elaborate, has_train_section
from dlg.grammar.loader import Program, load_file, load_source
from dlg.runtime.executable import Executable
from dlg.runtime.model import Model


def load(path: str | Path, model: str | None = None, seed: int | None = 0
         ) -> Model | Executable:
    """Load a model from a .dlg file: parse, elaborate, infer shapes, initialise parameters.
    A .dlgx artifact (from `dlgc compile` or `exe.save`) loads as a ready `dlg.Executable`.

    `model` picks one when the file defines several; `seed` makes initialisation reproducible
    (the same seed gives the same parameters; None draws fresh ones).
    """
    path = Path(path)
    if path.suffix == ".dlgx":
        return Executable.from_artifact(path)  # type: ignore[return-value]
    if path.suffix not in (".dlg", ""):
        raise DlgImportError(f"{path}: dlg.load reads .dlg files and .dlgx artifacts")
    return _model(load_file(path), model, seed)


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


def compile(model: Model | str | Path, target: str = "cpu") -> Executable:  # noqa: A001
    """Compile a model (or a .dlg file) to native code: `exe(x=...)` runs it in one call and
    `exe.train_step()` runs a whole training step in one call. Parameters stay shared."""
    if not isinstance(model, Model):
        model = load(model)
    return Executable(model, target)
