"""Programs and models: a scope per module (its definitions and imports, over the prelude and
the builtins), `elaborate` (one model of a program to an IR graph with its parameters) and the
train section's record (`TrainSpec`)."""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgNameError, DlgSyntaxError, DlgTypeError, Span
from dlg.grammar import ast
from dlg.grammar.builtins import BUILTINS
from dlg.grammar.elaborate import Elaborated, Elaborator, LayerInstance
from dlg.grammar.loader import Program, prelude
from dlg.grammar.values import Function, LayerClass, Scope, describe, suggest
from dlg.ir.train_spec import (
    OPTIMIZER_DEFAULTS,
    SCHEDULE_DEFAULTS,
    HyperSpec,
    OptimizerSpec,
    ScheduleSpec,
    TrainSpec,
)


def module_scopes(program: Program, training: bool) -> tuple[dict[str, Scope], dict[str, Any]]:
    """A scope per module (its own definitions plus those of the modules it imports), and every
    model and train section by name. The root scope holds the builtins and `training`."""
    base = prelude_scope(training)
    scopes: dict[str, Scope] = {}
    found: dict[str, Any] = {}
    for module in program.modules:
        scope = Scope(base)
        for dep in program.imports.get(module.file, ()):
            scope.names.update(scopes[dep.file].names)
        _define(module, scope, found)
        scopes[module.file] = scope
    return scopes, found


def prelude_scope(training: bool) -> Scope:
    """The prelude's layers and defs over the builtins and `training`: what every module sees."""
    scope = Scope(Scope(None, {**BUILTINS, "training": training}))
    _define(prelude(), scope, {})
    return scope


def _define(module: ast.Module, scope: Scope, found: dict[str, Any]) -> None:
    own: set[str] = set()
    for item in module.items:
        if isinstance(item, ast.Import):
            continue
        key = f"train {item.name}" if isinstance(item, ast.TrainDef) else item.name
        if key in own:
            raise DlgNameError(f"duplicate definition of {item.name!r} in {module.file}", item.span)
        own.add(key)
        if isinstance(item, ast.LayerDef):
            scope[item.name] = LayerClass(item, scope)
        elif isinstance(item, ast.FuncDef):
            scope[item.name] = Function(item, scope)
        elif isinstance(item, ast.ModelDef):
            found[item.name] = (item, scope)
        elif isinstance(item, ast.TrainDef):
            found[key] = item


def has_train_section(program: Program, model: str) -> bool:
    return any(isinstance(i, ast.TrainDef) and i.name == model
               for m in program.modules for i in m.items)


def model_names(program: Program) -> list[str]:
    return [i.name for i in program.main.items if isinstance(i, ast.ModelDef)]


def elaborate(program: Program, model: str | None = None, training: bool = False,
              seed: int | None = 0, train_section: bool | None = None) -> Elaborated:
    """Build the IR graph and initial parameters of one model of `program`.

    With `training=True` the graph is built in training mode (dropout on, batch statistics).
    With `train_section` (default: the same as `training`) the model's train section adds its
    label inputs, loss and metrics as outputs; `training=False, train_section=True` gives the
    graph that `evaluate` runs (inference mode, with loss and metrics).
    """
    train_section = training if train_section is None else train_section
    _scopes, found = module_scopes(program, training)
    names = model_names(program)
    for key, item in found.items():
        if key.startswith("train ") and item.name not in found:
            raise DlgNameError(f"train section for unknown model {item.name!r}"
                               f"{suggest(item.name, names)}", item.span)
    if model is None:
        if len(names) != 1:
            second = next((i.span for i in program.main.items
                           if isinstance(i, ast.ModelDef) and i.name == names[-1]), None)
            raise DlgNameError(f"{program.main.file} defines no model" if not names else
                               f"{program.main.file} defines several models "
                               f"({', '.join(names)}); choose one (dlg.load(path, model=...) "
                               f"or dlgc --model)", second if names else None)
        model = names[0]
    if model not in found or not isinstance(found[model], tuple):
        raise DlgNameError(f"no model named {model!r}{suggest(model, names)}")
    node, module_scope = found[model]
    E = Elaborator(model, training, seed)
    scope = Scope(module_scope)
    cls = LayerClass(ast.LayerDef(node.name, (), node.body, span=node.span), module_scope)
    E.instances.append(LayerInstance(cls, "", scope))
    E.graph.span = node.span
    E.exec_block(node.body, scope, "model")
    if not E.graph.outputs:
        raise DlgSyntaxError(f"model {model} has no outputs; add `output name = ...`", node.span)
    train = found.get(f"train {model}")
    spec = _elaborate_train(E, train, scope) if (train_section and train is not None) else None
    return Elaborated(E.graph, E.params, E.trainable, spec, E.layer_calls)


def _elaborate_train(E: Elaborator, train: ast.TrainDef, scope: Scope) -> TrainSpec:
    n_inputs = len(E.graph.inputs)
    n_outputs = len(E.graph.outputs)
    _check_train_calls(train.body, scope)
    E.exec_block(train.body, scope, "train")
    if "loss" not in scope.names:
        raise DlgSyntaxError(f"train {train.name} needs `loss = ...`", train.span)
    loss_span = _assigned_at(train.body, "loss", train.span)
    loss = E.check_scalar(scope.names["loss"], "the loss", loss_span)
    if not loss.type.dtype.is_float:
        raise DlgTypeError(f"the loss must be a float scalar, got {loss.type}", loss_span)
    E.add_output("loss", loss, loss_span)
    optimizer = scope.names.get("optimizer")
    if optimizer is not None and not isinstance(optimizer, OptimizerSpec):
        raise DlgTypeError(f"optimizer must be {_calls(OPTIMIZER_DEFAULTS)}, "
                           f"got {_describe(optimizer)}",
                           _assigned_at(train.body, "optimizer", train.span))
    schedule = scope.names.get("schedule")
    if schedule is not None and not isinstance(schedule, ScheduleSpec):
        raise DlgTypeError(f"schedule must be {_calls(SCHEDULE_DEFAULTS)}, "
                           f"got {_describe(schedule)}",
                           _assigned_at(train.body, "schedule", train.span))
    labels = tuple(n.name for n in E.graph.inputs[n_inputs:])
    metrics = tuple(name for name, _ in E.graph.outputs[n_outputs:] if name != "loss")
    return TrainSpec(labels, "loss", metrics, optimizer, train.span, schedule)


_TRAIN_CALLS = {"optimizer": OPTIMIZER_DEFAULTS, "schedule": SCHEDULE_DEFAULTS}


def _check_train_calls(stmts: tuple[ast.Stmt, ...], scope: Scope) -> None:
    """`optimizer = X(...)` or `schedule = X(...)` with an X dlg does not know: named with the
    ones it does (a plain unknown name would not say which exist; OneCycleLR is eager-only)."""
    for s in stmts:
        if not (isinstance(s, ast.Assign) and len(s.targets) == 1 and s.targets[0] in _TRAIN_CALLS
                and isinstance(s.value, ast.Call) and isinstance(s.value.func, ast.Name)):
            continue
        name, table = s.value.func.id, _TRAIN_CALLS[s.targets[0]]
        if not scope.has(name):
            raise DlgNameError(f"unknown {s.targets[0]} {name!r} (a train section takes "
                               f"{', '.join(table)}){suggest(name, table)}", s.value.func.span)


def _describe(value: Any) -> str:
    """An optimizer or schedule by its call (`SGD(lr=0.1, ...)`), anything else as usual."""
    return str(value) if isinstance(value, HyperSpec) else describe(value)


def _calls(table: dict[str, Any]) -> str:
    """`SGD(...), Adam(...), ...`: what a train section may call."""
    return ", ".join(f"{name}(...)" for name in table)


def _assigned_at(stmts: tuple[ast.Stmt, ...], name: str, default: Span) -> Span:
    """Where a train section sets `loss`/`optimizer`, so errors about it point at that line."""
    spans = [s.span for s in stmts if isinstance(s, ast.Assign) and s.targets == (name,)]
    return spans[-1] if spans else default
