"""Training steps: one graph per optimisation step.

`build_train_step` turns a model's training graph (forward in training mode, the train
section's loss and metrics) into ONE graph through the pipeline's training stages: forward ->
loss -> gradients (autodiff) -> parameter and optimizer-state updates (apply_optimizer,
`Graph.updates`). `TrainStep` runs it, on the interpreter or compiled to one native call, and
writes the updates back into the parameter arrays in place, so whoever shares `model.params`
sees them. The Keras-like loops around it are dlg.runtime.fitting (fit) and
dlg.runtime.evaluation (evaluate, predict).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dlg.compiler.pipeline import CompileOptions, TrainTarget, training_step
from dlg import foreign
from dlg.errors import DlgValueError, Span
from dlg.ir.graph import Graph
from dlg.ir.ops.losses import CROSS_ENTROPY, NLL_LOSS
from dlg.ir.train_spec import TrainSpec
from dlg.runtime.interp import Interpreter, check_input_names
from dlg.runtime.loop import NativeLoop, check_order, data_length
from dlg.runtime.native import NativeGraph

if TYPE_CHECKING:
    from dlg.runtime.model import Model

LR = "optimizer.lr"


def build_train_step(train_graph: Graph, spec: TrainSpec,
                     options: CompileOptions | None = None
                     ) -> tuple[Graph, dict[str, np.ndarray]]:
    """The whole step as one graph (the pipeline's training stages: autodiff, apply_optimizer),
    and the initial optimizer state it reads and updates."""
    if spec.optimizer is None:
        raise DlgValueError("the train section has no optimizer; add e.g. "
                            "`optimizer = SGD(lr=0.01)`", spec.span)
    return training_step(train_graph, TrainTarget(spec.loss, spec.optimizer),
                         options or CompileOptions())


@dataclass(frozen=True)
class LabelCheck:
    """Class-index labels feeding a classification loss must lie in 0..classes-1, or be the
    loss's ignore_index."""

    input: str
    classes: int
    loss: str
    span: Span | None
    ignore_index: int = -100

    def __call__(self, labels: np.ndarray) -> None:
        if labels.size == 0 or labels.dtype.kind not in "iu":
            return
        if labels.min() >= 0 and labels.max() < self.classes:  # two reductions, no temporaries
            return
        bad = ((labels < 0) | (labels >= self.classes)) & (labels != self.ignore_index)
        if bad.any():
            where = np.argwhere(bad)[0]
            raise DlgValueError(
                f"label {self.input!r} must hold class indices 0..{self.classes - 1} for "
                f"{self.loss}, got {labels[tuple(where)]} at index {tuple(int(i) for i in where)}"
                , self.span)


def label_checks(g: Graph) -> list[LabelCheck]:
    """A check per (label input, classification loss) pair in the graph."""
    inputs = {n.out: n.name for n in g.inputs}
    checks = []
    for node in g:
        if (node.op is CROSS_ENTROPY or node.op is NLL_LOSS) and node.inputs[1] in inputs:
            logits = g.type_of(node.inputs[0])
            classes = logits.shape[1 if logits.rank > 1 else 0]
            if isinstance(classes, int):
                checks.append(LabelCheck(inputs[node.inputs[1]], classes, node.op.name,
                                         node.span, node.attrs["ignore_index"]))
    return checks


class TrainStep:
    """`step(x=..., y=...)` runs one optimisation step and returns the loss and metrics.

    Parameters are updated in place in `model.params`; optimizer state (momentum buffers, Adam
    moments, the step count, the learning rate) lives in `step.state`. Set `step.lr` to change
    the learning rate between steps (what a schedule does). With `compiled`, the whole step is
    one native call (forward, backward and updates, written in place by native code);
    otherwise the reference interpreter runs it.
    """

    def __init__(self, model: Model, compiled: bool = False,
                 options: CompileOptions | None = None):
        spec = model.train_spec
        if spec is None or model.train_graph is None:
            raise DlgValueError(f"model {model.name} has no train section; add `train "
                                f"{model.name} {{ input y: ...  loss = ...  optimizer = ... }}`")
        self.model = model
        self.spec = spec
        self.graph, self.state = build_train_step(model.train_graph, spec, options)
        self.base_lr = float(spec.optimizer.hyper["lr"])  # type: ignore[union-attr]
        self.interpreter = Interpreter(model.interpreter.rng.integers(2**63))
        self.steps = 0
        self._checks = label_checks(model.train_graph)
        self.native = (NativeGraph(self.graph, spec.loss, options,
                                   seed=int(model.interpreter.rng.integers(2**62)))
                       if compiled else None)
        self._loop: NativeLoop | None = None  # `run`'s, kept while the data is the same

    @classmethod
    def prebuilt(cls, model: Model, spec: TrainSpec, graph: Graph,
                 state: dict[str, np.ndarray], native: NativeGraph) -> TrainStep:
        """A compiled step whose graph, state and code come from an artifact."""
        step = cls.__new__(cls)
        step.model, step.spec, step.graph, step.state = model, spec, graph, state
        step.base_lr = float(spec.optimizer.hyper["lr"])  # type: ignore[union-attr]
        step.interpreter = Interpreter(None)
        step.steps = 0
        step._checks = label_checks(graph)
        step.native = native
        step._loop = None
        return step

    @property
    def lr(self) -> float:
        return float(self.state[LR])

    @lr.setter
    def lr(self, value: float) -> None:
        self.state[LR] = np.asarray(value, self.state[LR].dtype)

    @property
    def input_names(self) -> list[str]:
        return [n.name for n in self.graph.inputs]

    def __call__(self, *args: Any, **inputs: Any) -> dict[str, float]:
        if self.native is None:
            return self._interpret(bind_inputs(self.input_names, args, inputs))
        native = self.native
        arrays = arrange(native.input_names, args, inputs)
        for check, k in self._label_checks:
            check(foreign.asarray(arrays[k]))
        params, state = self.model.params, self.state
        values = tuple([state[name] if own else params[name] for own, name in self._sources])
        outputs = native.run(arrays, values)  # updates are written in place unless the loss is
        loss = float(outputs[self._reported[0][1]])  # not finite
        if not math.isfinite(loss):
            raise self._non_finite(loss)
        self.steps += 1
        return {name: float(outputs[k]) for name, k in self._reported}

    @functools.cached_property
    def _sources(self) -> list[tuple[bool, str]]:
        """Where each parameter of the compiled step lives: (in `state`, name)."""
        return [(name in self.state, name) for name in self.native.param_names]  # type: ignore

    @functools.cached_property
    def _reported(self) -> list[tuple[str, int]]:
        """The loss, then the metrics, with their places among the compiled step's outputs."""
        names = self.native.output_names  # type: ignore[union-attr]
        return [(name, names.index(name)) for name in (self.spec.loss, *self.spec.metrics)]

    @functools.cached_property
    def _label_checks(self) -> list[tuple[LabelCheck, int]]:
        names = self.native.input_names  # type: ignore[union-attr]
        return [(check, names.index(check.input)) for check in self._checks]

    def _interpret(self, inputs: dict[str, Any]) -> dict[str, float]:
        for check in self._checks:
            check(foreign.asarray(inputs[check.input]))
        values = {**self.model.params, **self.state}
        outputs, updates = self.interpreter.run(self.graph, inputs, values)
        loss = float(outputs[self.spec.loss])
        if not math.isfinite(loss):
            raise self._non_finite(loss)
        for name, value in updates.items():
            if name in self.state:
                self.state[name] = value
            else:
                self.model.params.assign(name, value)
        self.steps += 1
        return {name: float(outputs[name]) for name in (self.spec.loss, *self.spec.metrics)}

    def _non_finite(self, loss: float) -> DlgValueError:
        return DlgValueError(f"the loss is {loss} at step {self.steps + 1}; the parameters were "
                             f"not updated (lower the learning rate, or check the data for "
                             f"NaN/inf)", self.spec.span)

    def run(self, n: int, *args: Any, batch_size: int | None = None,
            perm: np.ndarray | Sequence[int] | None = None, **inputs: Any) -> dict[str, float]:
        """`n` steps over a whole data set, as one native call when compiled (a loop in Python
        on the interpreter); returns the loss and metrics averaged over the steps.

        The arrays (positional in declaration order, or by name) hold every row; the rows
        perm[0], perm[1], ... (every row in order without `perm`; an index may repeat) are cut
        into len(perm) // batch_size batches of `batch_size` rows (default: all, full-batch
        training), and step s takes batch s mod that count. So `run(100, x=x, y=y)` is 100
        full-batch steps, and `run(len(x) // b, x=x, y=y, batch_size=b, perm=rng.permutation(
        len(x)))` one shuffled epoch without its last partial batch. A non-finite loss stops
        with the error a single step gives, the parameters left as the step before it made them.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise DlgValueError(f"run: n (the number of steps) must be a positive int, got {n!r}")
        names = self.native.input_names if self.native is not None else self.input_names
        data = {k: foreign.asarray(v) for k, v in bind_inputs(names, args, inputs).items()}
        loop = self._loop
        if self.native is not None and (loop is None or not loop.holds(data)):
            loop = self._loop = NativeLoop(self.native, data, self.outputs, stop=True)
        length = data_length(data) if loop is None else loop.length
        order = None if perm is None else check_order(perm, length)
        picks = length if order is None else len(order)
        if picks == 0:
            raise DlgValueError("run: no rows to train on (the data or perm is empty)")
        rows = picks if batch_size is None else batch_size
        if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) \
                or not 0 < rows <= picks:
            raise DlgValueError(f"run: batch_size must be an int in 1..{picks} (the rows in "
                                f"{'perm' if order is not None else 'the data'}), got "
                                f"{batch_size!r}")
        batches = picks // rows
        if loop is None:
            totals = np.zeros(len(self.outputs))
            for s in range(n):
                start = s % batches * rows
                picked = slice(start, start + rows) if order is None else order[start:][:rows]
                values = self(**{k: np.ascontiguousarray(v[picked]) for k, v in data.items()})
                totals += [values[k] * rows for k in self.outputs]
        else:
            self.check_labels(data)
            totals = loop.totals
            totals[:] = 0
            self.train_steps(loop, rows, 0, n, batches, order)
        return {k: float(v) / (n * rows) for k, v in zip(self.outputs, totals)}

    @property
    def outputs(self) -> list[str]:
        """What a step returns and loops sum: the loss, then the metrics."""
        return [self.spec.loss, *self.spec.metrics]

    def check_labels(self, data: Mapping[str, np.ndarray]) -> None:
        """Every class label of a data set in range, checked once before a loop runs."""
        for check in self._checks:
            check(data[check.input])

    def train_steps(self, loop: NativeLoop, rows: int, first: int, count: int, batches: int,
                    order: np.ndarray | None) -> None:
        """Steps first..first+count-1 of a native loop over this step's parameters and state
        (see NativeLoop.run; the loss and metrics add to `loop.totals`), counted in `steps`; a
        non-finite loss is a single step's error."""
        done = loop.run({**self.model.params, **self.state}, rows, first, count, batches, order)
        self.steps += done
        if done < count:
            raise self._non_finite(loop.value(rows, self.spec.loss))


def bind_inputs(names: Sequence[str], args: Sequence[Any], inputs: dict[str, Any]
                ) -> dict[str, Any]:
    """Positional arguments in declaration order, merged with keyword ones."""
    if len(args) > len(names):
        raise DlgValueError(f"takes {len(names)} inputs ({', '.join(names)}), got {len(args)}")
    for name, value in zip(names, args):
        if name in inputs:
            raise DlgValueError(f"input {name!r} given twice")
        inputs[name] = value
    return inputs


def arrange(names: Sequence[str], args: tuple[Any, ...], inputs: dict[str, Any],
            prefix: str = "") -> tuple[Any, ...]:
    """Inputs in declaration order from positional and keyword arguments; every declared input
    given, nothing else (`prefix` leads the messages of the argument count errors)."""
    if not args and len(inputs) == len(names):
        try:
            return tuple(map(inputs.__getitem__, names))
        except KeyError:
            pass
    try:
        inputs = bind_inputs(names, args, inputs)
    except DlgValueError as e:
        raise DlgValueError(prefix + e.message) from None
    check_input_names(names, inputs)
    return tuple(inputs[name] for name in names)
