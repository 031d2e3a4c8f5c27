"""`Model.fit`'s loop: epochs of batches through a TrainStep, many steps per native call when
compiled (one call per batch on the interpreter), with a progress bar, validation, callbacks
between epochs, and Ctrl-C handled at a step boundary (dlg.runtime.checkpoint)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from dlg.errors import DlgError, DlgValueError
from dlg.ir.train_spec import scheduled_lr
from dlg.runtime.callbacks import Callback, CallbackList, History
from dlg.runtime.checkpoint import (
    Flag,
    Interrupted,
    Progress,
    deferred_interrupt,
    load_checkpoint,
    restore_callbacks,
    save_checkpoint,
)
from dlg.runtime.data import DataLoader
from dlg.runtime.evaluation import evaluate
from dlg.runtime.feeds import Feed
from dlg.runtime.loop import NativeLoop
from dlg.runtime.training import TrainStep

if TYPE_CHECKING:
    from dlg.runtime.model import Model


def fit(model: Model, step: TrainStep, feed: Feed, epochs: int, batch_size: int,
        shuffle: bool, validation: Feed | None, seed: int | None, verbose: int,
        first_epoch: int, checkpoint: str | Path | None = None,
        resume: str | Path | None = None, callbacks: Sequence[Callback] = (),
        checkpoint_every: int = 0) -> History:
    """Train on `feed` (every input of the training graph by name). Ctrl-C stops it at a step
    boundary, writes a checkpoint to `checkpoint` when given and raises Interrupted; with
    `checkpoint_every` N, the checkpoint is also written after every N-th epoch, so a crash or a
    kill loses at most N epochs; `resume` continues the fit a checkpoint stopped (`epochs`
    counted from where that fit began). A callback setting `model.stop_training` ends it after
    that epoch. Sets the model's epoch count to the epoch reached."""
    if not (isinstance(checkpoint_every, int) and checkpoint_every >= 0):
        raise DlgValueError(f"checkpoint_every must be a non-negative int, got "
                            f"{checkpoint_every!r}")
    if checkpoint_every and checkpoint is None:
        raise DlgValueError("checkpoint_every needs a checkpoint path to write to")
    names = list(feed)
    loader = DataLoader(*feed.values(), batch_size=batch_size, shuffle=shuffle, seed=seed)
    loop = None
    if step.native is not None:  # many steps per native call; labels checked once, up front
        data = {k: np.ascontiguousarray(v) for k, v in feed.items()}
        loop = NativeLoop(step.native, data, step.outputs, stop=True)
        step.check_labels(data)
    progress = (Progress(first_epoch, first_epoch) if resume is None else
                load_checkpoint(resume, model, step, loader.batch_size, loader.length))
    if progress.order_state is not None:  # the interrupted epoch's order, drawn again
        loader.rng.bit_generator.state = progress.order_state
    end = progress.first_epoch + epochs
    history = History()
    calls = CallbackList([*callbacks, history], model, step)  # History last: it sees all logs
    model.stop_training = False
    calls.on_train_begin()
    if resume is not None:
        restore_callbacks(resume, progress, callbacks)

    def save() -> None:
        save_checkpoint(checkpoint, model, step, progress, loader.batch_size, loader.length,
                        callbacks)
    record: dict[str, float] = {}
    with deferred_interrupt() as interrupt:
        while progress.epoch < end and not interrupt.requested and not model.stop_training:
            epoch = progress.epoch
            calls.on_epoch_begin(epoch)
            step.lr = scheduled_lr(step.spec.schedule, step.base_lr, epoch)
            bar = tqdm(total=len(loader), initial=progress.batch, unit="batch",
                       desc=f"epoch {epoch + 1}/{end}", disable=verbose < 1, dynamic_ncols=True)
            before = step.steps - progress.batch
            progress.order_state = loader.rng.bit_generator.state
            order = loader.order()
            try:
                if loop is None:
                    _python_epoch(step, loader, names, order, progress, bar, interrupt)
                else:
                    _native_epoch(step, loop, loader, order, progress, bar, interrupt)
            except DlgError as e:
                raise e.with_note(f"in epoch {epoch + 1}, batch {step.steps - before + 1} of "
                                  f"{len(loader)}")
            if progress.batch < len(loader):
                bar.close()
                break
            totals, seen = progress.totals, progress.seen
            record = {k: float(v) / seen for k, v in zip(step.outputs, totals)} if seen else {}
            if validation is not None:
                val = evaluate(model, validation, batch_size=max(batch_size, 256),
                               compiled=loop is not None)
                record.update({f"val_{k}": v for k, v in val.items()})
            calls.on_epoch_end(epoch, record)
            bar.set_postfix({k: f"{v:.4f}" for k, v in record.items()}, refresh=False)
            bar.close()
            progress.next_epoch(loader.rng.bit_generator.state)
            done = progress.epoch - progress.first_epoch
            if checkpoint_every and done % checkpoint_every == 0:
                save()
        model._epochs_done = progress.epoch
        if progress.epoch < end and not model.stop_training:
            if checkpoint is not None:
                save()
            raise Interrupted(progress, len(loader),
                              None if checkpoint is None else Path(checkpoint))
    calls.on_train_end(record)
    return history


CHUNK_SECONDS = 0.1  # native work between two progress-bar updates
FIRST_CHUNK = 4  # steps before the time of one is known


def _show(bar: tqdm, outputs: list[str], totals: np.ndarray, seen: int, steps: int) -> None:
    bar.set_postfix({k: f"{v / seen:.4f}" for k, v in zip(outputs, totals)}, refresh=False)
    bar.update(steps)


def _python_epoch(step: TrainStep, loader: DataLoader, names: list[str],
                  order: np.ndarray | None, progress: Progress, bar: tqdm, interrupt: Flag
                  ) -> None:
    """The rest of one pass from `progress.batch`, a call per batch (the interpreter's way),
    until Ctrl-C; `progress` counts the batches done and their sums."""
    totals = np.zeros(len(step.outputs)) if progress.batch == 0 else progress.totals.copy()
    with contextlib.suppress(KeyboardInterrupt):  # one raised outside the main thread
        for batch in loader.batches(order, progress.batch):
            if interrupt.requested:
                return
            values = step(**dict(zip(names, batch)))
            n = len(batch[0])
            totals += [values[k] * n for k in step.outputs]
            progress.advance(1, n, totals)
            _show(bar, step.outputs, totals, progress.seen, 1)


def _native_epoch(step: TrainStep, loop: NativeLoop, loader: DataLoader,
                  order: np.ndarray | None, progress: Progress, bar: tqdm, interrupt: Flag
                  ) -> None:
    """The rest of one pass from `progress.batch` in chunks of native steps (about
    CHUNK_SECONDS each), until Ctrl-C (seen between chunks); a last smaller batch is a step at
    its own size."""
    rows = loader.batch_size
    full, rest = divmod(loader.length, rows)
    rest = 0 if loader.drop_last else rest
    totals = loop.totals
    totals[:] = 0 if progress.batch == 0 else progress.totals
    chunk = FIRST_CHUNK
    with contextlib.suppress(KeyboardInterrupt):  # one raised outside the main thread
        while progress.batch < full and not interrupt.requested:
            count = min(chunk, full - progress.batch)
            start = time.perf_counter()
            step.train_steps(loop, rows, progress.batch, count, full, order)
            chunk = max(1, int(CHUNK_SECONDS * count / max(time.perf_counter() - start, 1e-9)))
            progress.advance(count, count * rows, totals)
            _show(bar, step.outputs, totals, progress.seen, count)
        if rest and progress.batch == full and not interrupt.requested:
            tail = (order[full * rows:] if order is not None
                    else np.arange(full * rows, loader.length))
            step.train_steps(loop, rest, 0, 1, 1, tail)
            progress.advance(1, rest, totals)
            _show(bar, step.outputs, totals, progress.seen, 1)
