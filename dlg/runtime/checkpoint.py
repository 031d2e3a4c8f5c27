"""Stopping `fit` with Ctrl-C, and checkpoints that continue it.

While `fit` runs, SIGINT (Ctrl-C) only raises a flag (`deferred_interrupt`); the epoch loops
look at it between native chunks of steps (interpreted: between steps), so training stops at a
step boundary with consistent weights, optimizer state and bookkeeping. `fit` then writes a
checkpoint when given a path and raises `Interrupted`, a KeyboardInterrupt that says where it
stopped.

A checkpoint is an .npz archive (zip CRCs catch damage) written atomically (dlg.files):
`param/NAME` for every parameter and buffer, `state/NAME` for the optimizer's state (momentum,
Adam moments, step count, learning rate), `totals` (the interrupted epoch's loss and metric
sums so far) and `meta`, JSON: the epoch and the batches of it done, the data loader's RNG state
at that epoch's start (so the same shuffled order is drawn again), the dropout seeds of both
engines, the step count and base learning rate, and each callback's state (`Callback.kept`:
EarlyStopping's best value and patience count, its best weights as `callback/K/NAME/...`
arrays). Resuming restores all of it and trains the rest of the interrupted epoch from its next
batch, so an interrupted-then-resumed run ends with the weights of an uninterrupted one, and its
callbacks stop, save and reduce the rate at the same epochs.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.files import atomic_write

if TYPE_CHECKING:
    from dlg.runtime.callbacks import Callback
    from dlg.runtime.model import Model
    from dlg.runtime.training import TrainStep

FORMAT = 1
META = ("format", "model", "first_epoch", "epoch", "batch", "seen", "batch_size", "length",
        "order_state", "native_seed", "interpreter_rng", "steps", "base_lr")


@dataclass
class Progress:
    """Where a fit stands: `epoch` (counted over the model's life, from 0), the batches of it
    done and their loss/metric sums; `first_epoch` is where the fit call began (its `epochs`
    count from there) and `order_state` the loader's RNG state when this epoch's order was
    drawn."""

    first_epoch: int
    epoch: int
    batch: int = 0
    seen: int = 0
    totals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    order_state: Mapping[str, Any] | None = None
    callbacks: list[tuple[str, dict[str, Any]]] | None = None  # saved (type, state) of each

    def advance(self, batches: int, rows: int, totals: np.ndarray) -> None:
        self.batch += batches
        self.seen += rows
        self.totals = totals.copy()

    def next_epoch(self, order_state: Mapping[str, Any]) -> None:
        self.epoch, self.batch, self.seen, self.order_state = self.epoch + 1, 0, 0, order_state


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped `fit` at a step boundary; `checkpoint` is where it was saved (or None)."""

    def __init__(self, progress: Progress, batches: int, checkpoint: Path | None):
        self.progress, self.batches, self.checkpoint = progress, batches, checkpoint
        super().__init__(self.where())

    def where(self) -> str:
        p = self.progress
        if p.batch == 0:
            return f"interrupted before epoch {p.epoch + 1}"
        return f"interrupted in epoch {p.epoch + 1} after batch {p.batch} of {self.batches}"


class Flag:
    requested = False


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[Flag]:
    """For the block, Ctrl-C sets `flag.requested` instead of raising. Only Python's own handler
    is replaced, and only in the main thread (the one signals reach); elsewhere the flag stays
    down and a KeyboardInterrupt raised as usual is caught by the loops at a step boundary."""
    flag = Flag()
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield flag
        return

    def request(signum: int, frame: Any) -> None:
        flag.requested = True

    previous = signal.signal(signal.SIGINT, request)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def save_checkpoint(path: str | Path, model: Model, step: TrainStep, progress: Progress,
                    batch_size: int, length: int, callbacks: Sequence[Callback] = ()) -> None:
    arrays: dict[str, Any] = {f"param/{k}": v for k, v in model.params.items()}
    arrays.update({f"state/{k}": v for k, v in step.state.items()})
    kept = []
    for k, callback in enumerate(callbacks):
        values: dict[str, Any] = {}
        for name, value in callback.state().items():
            if isinstance(value, Mapping):  # arrays by name, in the archive
                arrays.update({f"callback/{k}/{name}/{key}": v for key, v in value.items()})
                value = {"arrays": list(value)}
            values[name] = value
        kept.append([type(callback).__name__, values])
    meta = {"format": FORMAT, "model": model.name, "first_epoch": progress.first_epoch,
            "epoch": progress.epoch, "batch": progress.batch, "seen": progress.seen,
            "batch_size": batch_size, "length": length, "order_state": progress.order_state,
            "native_seed": None if step.native is None else int(step.native.seed_cell[0]),
            "interpreter_rng": step.interpreter.rng.bit_generator.state,
            "steps": step.steps, "base_lr": step.base_lr, "callbacks": kept}
    arrays["totals"] = np.asarray(progress.totals, np.float64)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def load_checkpoint(path: str | Path, model: Model, step: TrainStep, batch_size: int,
                    length: int) -> Progress:
    """Restore parameters, optimizer state, seeds and step count from `path` into `model` and
    `step` (in place: compiled loops keep their arrays); the progress to continue from."""
    path = Path(path)
    arrays, meta = _read(path)
    if meta.get("format") != FORMAT:
        raise DlgValueError(f"{path}: checkpoint format {meta.get('format')} is not supported "
                            f"(this dlg reads format {FORMAT})")
    _check_same(path, "parameter", "param/", model.params, arrays, meta, model.name)
    _check_same(path, "optimizer state", "state/", step.state, arrays, meta, model.name)
    if meta["batch"] and (meta["batch_size"], meta["length"]) != (batch_size, length):
        raise DlgValueError(
            f"{path} stopped inside an epoch of {meta['length']} samples in batches of "
            f"{meta['batch_size']}; resume it with the same data and batch size (this fit has "
            f"{length} samples in batches of {batch_size})")
    for name, value in model.params.items():
        np.copyto(value, arrays[f"param/{name}"])
    for name, value in step.state.items():
        np.copyto(value, arrays[f"state/{name}"])
    if step.native is not None and meta["native_seed"] is not None:
        step.native.seed_cell[0] = meta["native_seed"]
    step.interpreter.rng.bit_generator.state = meta["interpreter_rng"]
    step.steps, step.base_lr = meta["steps"], meta["base_lr"]
    callbacks = None if "callbacks" not in meta else [
        (kind, {name: {key: arrays[f"callback/{k}/{name}/{key}"] for key in value["arrays"]}
                if isinstance(value, dict) else value for name, value in values.items()})
        for k, (kind, values) in enumerate(meta["callbacks"])]
    return Progress(meta["first_epoch"], meta["epoch"], meta["batch"], meta["seen"],
                    arrays["totals"], meta["order_state"], callbacks)


def restore_callbacks(path: str | Path, progress: Progress, callbacks: Sequence[Callback]
                      ) -> None:
    """The callbacks' state as the checkpoint saved it (after their on_train_begin); a
    checkpoint from before callbacks were saved leaves them fresh."""
    if progress.callbacks is None:
        return
    saved, here = [kind for kind, _ in progress.callbacks], [type(c).__name__ for c in callbacks]
    if saved != here:
        raise DlgValueError(f"{path} was written by a fit with callbacks [{', '.join(saved)}]; "
                            f"resume it with the same ones (this fit has [{', '.join(here)}])")
    for callback, (_, state) in zip(callbacks, progress.callbacks):
        callback.restore(state)


def _read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
        meta = json.loads(arrays.pop("meta").tobytes())
        missing = [key for key in META if key not in meta]
        if missing or "totals" not in arrays:
            raise KeyError(f"no {(missing or ['totals'])[0]!r}")
        return arrays, meta
    except FileNotFoundError:
        raise DlgValueError(f"{path}: no such checkpoint (fit(checkpoint=...) writes one when "
                            f"Ctrl-C interrupts it, or after every N-th epoch with "
                            f"checkpoint_every=N)") from None
    except (OSError, ValueError, EOFError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise DlgValueError(f"{path} is not a valid dlg checkpoint (corrupt or truncated: "
                            f"{e or type(e).__name__})") from None


def _check_same(path: Path, what: str, prefix: str, here: Any, arrays: dict[str, np.ndarray],
                meta: dict[str, Any], model: str) -> None:
    """The checkpoint holds exactly `here`'s names, each with its shape and dtype."""
    saved = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    problems = [f"{what} {k!r} is missing" for k in here if k not in saved]
    problems += [f"it has {what} {k!r}, which this model lacks" for k in saved if k not in here]
    problems += [f"{what} {k!r} is {saved[k].dtype}{list(saved[k].shape)} there, "
                 f"{v.dtype}{list(v.shape)} here" for k, v in here.items()
                 if k in saved and (saved[k].shape, saved[k].dtype) != (v.shape, v.dtype)]
    if problems:
        raise DlgValueError(f"{path} is a checkpoint of model {meta.get('model')!r}, which does "
                            f"not match {model!r}: " + "; ".join(problems[:3])
                            + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""))
