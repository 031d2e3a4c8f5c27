"""`dlg.Model`: a model's IR graph with its parameters, run by the reference interpreter."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.ir.anomaly import is_anomaly_enabled
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph, LayerCall
from dlg.ir.shapes import shape_str
from dlg.ir.train_spec import TrainSpec
from dlg.ir.types import TensorType
from dlg.runtime.callbacks import Callback, History
from dlg.runtime.evaluation import evaluate, predict
from dlg.runtime.feeds import input_arrays, split_off, train_arrays, validation_arrays
from dlg.runtime.fitting import fit
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph
from dlg.runtime.training import TrainStep, bind_inputs
from dlg.runtime.weights import load_weights, save_weights
from dlg.viz import picture


class ParamDict(MutableMapping[str, np.ndarray]):
    """Parameters and buffers by PyTorch-style name; assignment checks shape and dtype."""

    def __init__(self, values: dict[str, np.ndarray], types: dict[str, TensorType]):
        self._values = values
        self._types = types

    def __getitem__(self, name: str) -> np.ndarray:
        return self._values[name]

    def __setitem__(self, name: str, value: Any) -> None:
        if name not in self._types:
            raise DlgValueError(f"no parameter named {name!r}")
        self._values[name] = _conform(name, value, self._types[name])

    def assign(self, name: str, value: np.ndarray) -> None:
        """Overwrite a parameter's array in place (a training step's update): whoever holds
        the array (an executable, a user) sees the new values."""
        np.copyto(self._values[name], value, casting="same_kind")

    def __delitem__(self, name: str) -> None:
        raise DlgValueError("parameters cannot be deleted")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: {self._types[k]}" for k in self._values) + "}"


def _conform(name: str, value: Any, t: TensorType) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.shape != tuple(t.shape):
        raise DlgValueError(f"parameter {name!r}: expected shape {shape_str(t.shape)}, got "
                            f"{list(array.shape)}")
    try:
        dtype = DType.of(array)
    except KeyError:
        raise DlgValueError(f"parameter {name!r}: unsupported dtype {array.dtype}") from None
    if dtype != t.dtype:
        if dtype.is_float != t.dtype.is_float:
            raise DlgValueError(f"parameter {name!r}: expected {t.dtype}, got {dtype}")
        array = array.astype(t.dtype.np)
    # a copy (a torch tensor's .numpy() shares its memory), kept 0-d for scalar buffers
    return np.array(array, order="C")


class Model:
    """A model: inputs, outputs, parameters, and a `__call__` that runs the graph."""

    def __init__(self, graph: Graph, params: dict[str, np.ndarray], trainable: dict[str, bool],
                 train_spec: TrainSpec | None = None,
                 build_train_graph: Callable[[], Graph] | None = None, seed: int | None = 0,
                 layer_calls: list[LayerCall] | None = None,
                 build_eval_graph: Callable[[], Graph] | None = None):
        self.name = graph.name
        self.graph = graph
        self._types = {n.name: n.types[0] for n in graph.params}
        self._trainable = trainable
        self.params = ParamDict(params, {k: self._types[k] for k in params})
        self.train_spec = train_spec
        self._build_train_graph = build_train_graph
        self._train_graph: Graph | None = None
        self._build_eval_graph = build_eval_graph
        self._eval_graph: Graph | None = None
        self._eval_native: NativeGraph | None = None
        self._native: NativeGraph | None = None
        self._fit_step: TrainStep | None = None
        self._epochs_done = 0
        self.stop_training = False  # a callback sets it to end a fit after the epoch
        self.interpreter = Interpreter(seed)
        self.layer_calls = list(layer_calls or [])

    @property
    def inputs(self) -> dict[str, TensorType]:
        return {n.name: n.types[0] for n in self.graph.inputs}

    @property
    def outputs(self) -> dict[str, TensorType]:
        return {name: self.graph.type_of(v) for name, v in self.graph.outputs}

    @property
    def trainable(self) -> list[str]:
        """Names of trainable parameters (buffers such as running means excluded)."""
        return [k for k in self.params if self._trainable.get(k, True)]

    @property
    def train_graph(self) -> Graph | None:
        """The graph in training mode with the train section's loss and metrics as outputs."""
        if self._train_graph is None and self._build_train_graph is not None:
            self._train_graph = self._build_train_graph()
        return self._train_graph

    @property
    def eval_graph(self) -> Graph | None:
        """The graph in inference mode with the train section's loss and metrics as outputs."""
        if self._eval_graph is None and self._build_eval_graph is not None:
            self._eval_graph = self._build_eval_graph()
        return self._eval_graph

    def __call__(self, *args: Any, **inputs: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run on inputs by name (`m(x=batch)`) or in declaration order (`m(batch)`)."""
        try:
            inputs = bind_inputs(list(self.inputs), args, inputs)
        except DlgValueError as e:
            raise DlgValueError(f"{self.name} {e.message}") from None
        outputs, _ = self.interpreter.run(self.graph, inputs, self.params)
        values = tuple(outputs[name] for name, _ in self.graph.outputs)
        return values[0] if len(values) == 1 else values

    # -- training ---------------------------------------------------------------------------------
    def train_step(self, compiled: bool = False) -> TrainStep:
        """A fresh optimisation step for custom loops: `step(x=..., y=...)` updates the
        parameters in place and returns the loss and metrics (its optimizer state is its own).
        `compiled=True` runs it as one native call."""
        return TrainStep(self, compiled)

    def fit(self, x: Any, y: Any = None, epochs: int = 1, batch_size: int = 32,
            shuffle: bool = True, validation_data: Any = None, seed: int | None = 0,
            verbose: int = 1, lr: float | None = None, compiled: bool = True,
            checkpoint: str | Path | None = None, resume: str | Path | None = None, *,
            validation_split: float = 0.0, callbacks: Sequence[Callback] = (),
            sample_weight: Any = None, class_weight: Mapping[int, float] | None = None,
            checkpoint_every: int = 0) -> History:
        """Train with the train section's loss, metrics, optimizer and schedule (Keras-like).

        `x` is an array for a single input or a dict by input name; `y` the same for the train
        section's labels (or None: a train section without labels, such as an autoencoder's,
        or labels given in `x`'s dict). Returns a `History` of per-epoch loss and metrics
        (and `val_*` ones with `validation_data`, (x, y) or (x, y, sample_weight), or
        `validation_split`, the last fraction of the rows held out). `sample_weight` (one per
        sample) and `class_weight` ({class: weight}) feed the train section's `sample_weight`
        input (see dlg.runtime.feeds). `callbacks` (dlg.callbacks: EarlyStopping,
        ModelCheckpoint, ReduceLROnPlateau, CSVLogger, TensorBoard) run between epochs.

        Optimizer state and the epoch count carry over between calls, so `fit` twice continues
        training. `lr` replaces the train section's learning rate (a schedule then starts from
        it). Compiled (the step compiled on the first fit, then cached on disk), many steps run
        per native call; `compiled=False` runs one NumPy interpreter call per batch instead.

        Ctrl-C stops training at a step boundary and raises `Interrupted` (a KeyboardInterrupt)
        after writing a checkpoint to `checkpoint`, if given; `resume=` that file continues the
        interrupted fit (called with the same arguments, it ends with the same weights as a fit
        never interrupted). `checkpoint_every=N` also writes it after every N-th epoch, so a
        crash or a killed process loses at most N epochs.
        """
        if not (isinstance(epochs, int) and epochs >= 0):
            raise DlgValueError(f"epochs must be a non-negative int, got {epochs!r}")
        feed = train_arrays(self, x, y, sample_weight, class_weight)
        validation = None if validation_data is None else validation_arrays(self,
                                                                            validation_data)
        if validation_split:
            if validation is not None:
                raise DlgValueError("give validation_data or validation_split, not both")
            feed, validation = split_off(feed, validation_split)
        step = self.fit_step(compiled)
        if lr is not None:
            step.base_lr = float(lr)
        return fit(self, step, feed, epochs, batch_size, shuffle, validation, seed, verbose,
                   self._epochs_done, checkpoint, resume, callbacks, checkpoint_every)

    def fit_step(self, compiled: bool = True) -> TrainStep:
        """The step `fit` trains with, built (compiled) on first use; switching engines keeps
        the optimizer's state."""
        previous = self._fit_step
        stale = (previous is not None and previous.native is not None  # anomaly checks are
                 and previous.native.options.anomaly != is_anomaly_enabled())  # compiled in
        if previous is None or (previous.native is not None) != compiled or stale:
            self._fit_step = TrainStep(self, compiled)
            if previous is not None:
                self._fit_step.state.update(previous.state)
        return self._fit_step  # type: ignore[return-value]

    def evaluate(self, x: Any, y: Any = None, batch_size: int = 256, compiled: bool = True,
                 sample_weight: Any = None) -> dict[str, float]:
        """Loss and metrics over a whole dataset, in inference mode: compiled, many batches
        per native call (`compiled=False`: the NumPy interpreter). `x`, `y` and
        `sample_weight` as for `fit`."""
        return evaluate(self, train_arrays(self, x, y, sample_weight), batch_size, compiled)

    def predict(self, x: Any, batch_size: int = 256, compiled: bool = True
                ) -> np.ndarray | tuple[np.ndarray, ...]:
        """The outputs for every row of `x` (an array, or a dict by input name), computed
        `batch_size` rows at a time in inference mode: compiled, one native call per batch
        (`compiled=False`: the NumPy interpreter). The same values as `model(x)`, in bounded
        memory."""
        outputs = predict(self, input_arrays(self, x), batch_size, compiled)
        return outputs[0] if len(outputs) == 1 else outputs

    @property
    def native(self) -> NativeGraph:
        """The inference graph compiled (on first use; `predict` runs it)."""
        if self._native is None:
            self._native = NativeGraph(self.graph)
        return self._native

    @property
    def eval_native(self) -> NativeGraph:
        """The eval graph (inference mode with the train section's loss and metrics),
        compiled on first use."""
        if self._eval_native is None:
            if self.eval_graph is None:
                raise DlgValueError(f"model {self.name} has no train section to evaluate with")
            self._eval_native = NativeGraph(self.eval_graph)
        return self._eval_native

    def save_weights(self, path: str | Path) -> None:
        """Write every parameter and buffer to .safetensors or .npz (PyTorch names)."""
        save_weights(path, self.params)

    def load_weights(self, path: str | Path) -> None:
        self.load_state_dict(load_weights(path))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, in declaration order, with PyTorch names."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Load parameters by name (NumPy arrays or torch tensors); all-or-nothing."""
        missing = [k for k in self.params if k not in state]
        unexpected = [k for k in state if k not in self.params]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing: {', '.join(missing)}")
            if unexpected:
                parts.append(f"unexpected: {', '.join(unexpected)}")
            raise DlgValueError("state_dict does not match the model (" + "; ".join(parts) + ")")
        staged = {k: _conform(k, state[k], self._types[k]) for k in self.params if k in state}
        for k, v in staged.items():
            self.params[k] = v

    def num_params(self, trainable_only: bool = True) -> int:
        names = self.trainable if trainable_only else list(self.params)
        return sum(int(self.params[k].size) for k in names)

    def summary(self) -> str:
        """A Keras-style table: inputs, each layer call's output shapes and parameter counts."""
        rows = [("Layer (type)", "Output shape", "Params")]
        for call in self.layer_calls:
            count = sum(int(v.size) for k, v in self.params.items()
                        if k.startswith(call.name + "."))
            shapes = ", ".join(str(t) for t in call.outputs) or "-"
            rows.append((f"{call.name} ({call.layer})", shapes, f"{count:,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        rule = "-" * (sum(widths) + 4)
        lines = [f"Model: {self.name}"]
        lines += [f"  input  {k}: {t}" for k, t in self.inputs.items()]
        lines += [rule] + [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}"
                           for a, b, c in rows[:1]] + [rule]
        lines += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows[1:]]
        lines += [rule]
        lines += [f"  output {k}: {t}" for k, t in self.outputs.items()]
        total = self.num_params(trainable_only=False)
        lines.append(f"Params: {self.num_params():,} trainable, {total:,} total "
                     f"({sum(v.nbytes for v in self.params.values()):,} bytes)")
        spec = self.train_spec
        if spec is not None:
            metrics = ", ".join(spec.metrics) or "none"
            lines.append(f"Train: labels {', '.join(spec.labels) or 'none'}; loss; metrics "
                         f"{metrics}; optimizer {spec.optimizer or 'not set'}")
        return "\n".join(lines)

    def viz(self, expand: bool = False, compiled: bool = False, train: bool = False) -> Any:
        """A picture of the graph, a `graphviz.Digraph` (Jupyter shows it inline;
        `dlg.viz.save(picture, "graph.svg")` writes it): layers as boxes with their parameter
        counts, tensor types on the edges; `expand=True` opens the layers into their ops,
        `compiled=True` draws the graph after the compiler's passes with each fused kernel
        outlined, `train=True` the training graph. Needs `pip install 'dlg[viz]'`."""
        return picture(self, expand=expand, compiled=compiled, train=train)

    def __repr__(self) -> str:
        ins = ", ".join(f"{k}: {t}" for k, t in self.inputs.items())
        outs = ", ".join(f"{k}: {t}" for k, t in self.outputs.items())
        return f"<dlg.Model {self.name}({ins}) -> ({outs}), {self.num_params():,} params>"
