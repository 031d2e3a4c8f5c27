"""Keras' fit callbacks: hooks `fit` calls between epochs, never inside a native run of steps,
so a fit without them costs nothing per step.

A callback gets the model (`self.model`) and the training step (`self.step`: its `base_lr` is
the learning rate a schedule starts each epoch from) before training, then `on_epoch_end(epoch,
logs)` after each epoch with the epoch's values (`loss`, metrics, `val_*`; epochs count from 0,
as in Keras). Setting `model.stop_training = True` ends the fit after that epoch. The names,
arguments and rules follow `keras.callbacks`; weights are written with `Model.save_weights`
(atomic, .safetensors or .npz) and logs with dlg.files' atomic writes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.files import write_text
from dlg.optional import optional_import
from dlg.runtime.weights import FORMATS as WEIGHT_FORMATS

if TYPE_CHECKING:
    from dlg.runtime.model import Model
    from dlg.runtime.training import TrainStep

Logs = dict[str, float]


class Callback:
    """The hooks, each doing nothing; subclasses override the ones they need."""

    model: Model
    step: TrainStep
    kept: tuple[str, ...] = ()  # the attributes a checkpoint keeps: numbers, None, {name: array}

    def set_context(self, model: Model, step: TrainStep) -> None:
        self.model, self.step = model, step

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps, so that a resumed fit watches on as if never stopped."""
        return {name: getattr(self, name) for name in self.kept}

    def restore(self, state: Mapping[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def on_train_begin(self, logs: Logs | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        pass

    def on_train_end(self, logs: Logs | None = None) -> None:
        pass


class CallbackList:
    """Several callbacks called in order."""

    def __init__(self, callbacks: Sequence[Callback], model: Model, step: TrainStep):
        for c in callbacks:
            if not isinstance(c, Callback):
                raise DlgValueError(f"callbacks must be dlg Callback objects (EarlyStopping, "
                                    f"ModelCheckpoint, ...), got {type(c).__name__}")
            c.set_context(model, step)
        self.callbacks = list(callbacks)

    def on_train_begin(self) -> None:
        for c in self.callbacks:
            c.on_train_begin({})

    def on_epoch_begin(self, epoch: int) -> None:
        for c in self.callbacks:
            c.on_epoch_begin(epoch, {})

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        for c in self.callbacks:
            c.on_epoch_end(epoch, logs)

    def on_train_end(self, logs: Logs) -> None:
        for c in self.callbacks:
            c.on_train_end(logs)


class History(Callback):
    """What `fit` returns, as Keras does: per-epoch values by name (`loss`, `accuracy`,
    `val_loss`, ...) in `history`, and the epoch numbers (from 1) in `epoch`."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.add(epoch + 1, logs or {})

    def add(self, epoch: int, values: Mapping[str, float]) -> None:
        self.epoch.append(epoch)
        for k, v in values.items():
            self.history.setdefault(k, []).append(v)

    def __getitem__(self, name: str) -> list[float]:
        return self.history[name]


class _Monitored(Callback):
    """A callback watching one logged value, better when lower (`mode="min"`) or higher
    ("max"); "auto" is "max" for accuracies and "min" otherwise, as in Keras."""

    def __init__(self, monitor: str, mode: str):
        if mode not in ("auto", "min", "max"):
            raise DlgValueError(f"{type(self).__name__}: mode must be 'auto', 'min' or 'max', "
                                f"got {mode!r}")
        self.monitor = monitor
        self.higher = mode == "max" or (mode == "auto" and "acc" in monitor)

    def initial(self) -> float:
        return -math.inf if self.higher else math.inf

    def better(self, value: float, best: float, delta: float = 0.0) -> bool:
        """Whether `value` beats `best` by more than `delta`."""
        return value - delta > best if self.higher else value + delta < best

    def value(self, logs: Logs | None) -> float:
        logs = logs or {}
        if self.monitor not in logs:
            raise DlgValueError(f"{type(self).__name__} monitors {self.monitor!r}, which fit "
                                f"does not log (it logs {', '.join(logs) or 'nothing'}; val_* "
                                f"values need validation_data or validation_split)")
        return logs[self.monitor]


def _non_negative(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and value >= 0):
            raise DlgValueError(f"{owner}: {name} must be a non-negative number, got {value!r}")


class EarlyStopping(_Monitored):
    """Stop once `monitor` has not improved by more than `min_delta` for `patience` epochs;
    with `restore_best_weights`, the parameters of the best epoch are put back when training
    ends. `stopped_epoch` is the epoch it stopped after (0: it did not stop)."""

    kept = ("wait", "stopped_epoch", "best_epoch", "best", "best_weights")

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 mode: str = "auto", restore_best_weights: bool = False):
        super().__init__(monitor, mode)
        _non_negative("EarlyStopping", min_delta=min_delta, patience=patience)
        self.min_delta, self.patience = abs(min_delta), patience
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best = self.initial()
        self.best_weights: dict[str, np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        current = self.value(logs)
        self.wait += 1
        if self.better(current, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = current, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.state_dict()
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.best_weights is not None:  # in place: compiled loops hold these arrays
            for name, value in self.best_weights.items():
                self.model.params.assign(name, value)


class ModelCheckpoint(_Monitored):
    """Save the weights (.safetensors or .npz) after every epoch, or with `save_best_only`
    only when `monitor` improved. `filepath` may hold `{epoch}` and logged names
    (`"w-{epoch:02d}-{val_loss:.3f}.npz"`), as Keras' does."""

    kept = ("best",)

    def __init__(self, filepath: str | Path, monitor: str = "val_loss",
                 save_best_only: bool = False, mode: str = "auto"):
        super().__init__(monitor, mode)
        if Path(filepath).suffix not in WEIGHT_FORMATS:
            raise DlgValueError(f"ModelCheckpoint: {filepath}: weights are "
                                f"{', '.join(WEIGHT_FORMATS)} files")
        self.filepath = str(filepath)
        self.save_best_only = save_best_only

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.best = self.initial()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self.save_best_only:
            current = self.value(logs)
            if not self.better(current, self.best):
                return
            self.best = current
        try:
            path = self.filepath.format(epoch=epoch + 1, **(logs or {}))
        except (KeyError, ValueError, IndexError) as e:
            raise DlgValueError(f"ModelCheckpoint: cannot fill in {self.filepath!r} "
                                f"({type(e).__name__}: {e})") from None
        self.model.save_weights(path)


class ReduceLROnPlateau(_Monitored):
    """Multiply the learning rate by `factor` once `monitor` has not improved by more than
    `min_delta` for `patience` epochs, then wait `cooldown` epochs; never below `min_lr`. It
    scales the base rate a schedule starts from, and logs the epoch's rate as `learning_rate`."""

    kept = ("wait", "cooldown_counter", "best")

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0,
                 min_lr: float = 0.0):
        super().__init__(monitor, mode)
        if not (isinstance(factor, (int, float)) and 0 < factor < 1):
            raise DlgValueError(f"ReduceLROnPlateau: factor must lie in (0, 1), got {factor!r}")
        _non_negative("ReduceLROnPlateau", patience=patience, min_delta=min_delta,
                      cooldown=cooldown, min_lr=min_lr)
        self.factor, self.patience, self.min_delta = factor, patience, min_delta
        self.cooldown, self.min_lr = cooldown, min_lr

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.wait, self.cooldown_counter = 0, 0
        self.best = self.initial()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = self.step.lr
        current = self.value(logs)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.better(current, self.best, self.min_delta):
            self.best, self.wait = current, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience and self.step.base_lr > self.min_lr:
                self.step.base_lr = max(self.step.base_lr * self.factor, self.min_lr)
                self.cooldown_counter, self.wait = self.cooldown, 0


class CSVLogger(Callback):
    """One row per epoch (`epoch` from 0, then the logged names sorted) in a CSV file,
    rewritten atomically after each epoch; `append` keeps the rows of an earlier fit."""

    def __init__(self, filename: str | Path, separator: str = ",", append: bool = False):
        self.path, self.separator, self.append = Path(filename), separator, append

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.keys: list[str] | None = None
        self.text = ""
        if self.append and self.path.exists():
            self.text = self.path.read_text()
            self.keys = self.text.partition("\n")[0].split(self.separator)[1:] or None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            self.text += self.separator.join(["epoch", *self.keys]) + "\n"
        row = [str(epoch)] + [repr(float(logs[k])) if k in logs else "" for k in self.keys]
        self.text += self.separator.join(row) + "\n"
        write_text(self.path, self.text)


class TensorBoard(Callback):
    """Epoch scalars as TensorBoard event files, laid out as Keras does: `log_dir/train`
    (`epoch_loss`, `epoch_accuracy`, ...) and `log_dir/validation` (the `val_*` values under
    the same tags), step = epoch. Written through tensorboardX (`pip install "dlg[tensorboard]"`).
    """

    def __init__(self, log_dir: str | Path = "logs"):
        self.log_dir = Path(log_dir)
        self._writer_class = _summary_writer()

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.writers: dict[str, Any] = {}

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        for name, value in (logs or {}).items():
            part, tag = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            writer = self.writers.get(part)
            if writer is None:
                writer = self.writers[part] = self._writer_class(str(self.log_dir / part))
            writer.add_scalar(f"epoch_{tag}", float(value), epoch)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs: Logs | None = None) -> None:
        for writer in self.writers.values():
            writer.close()


def _summary_writer() -> Any:
    return optional_import("tensorboardX", "TensorBoard logging",
                           'pip install "dlg[tensorboard]" (or pip install tensorboardX)'
                           ).SummaryWriter
