"""Inference over whole data sets: `evaluate` (the train section's loss and metrics in
inference mode) and `predict` (the model's outputs), in batches, compiled or interpreted."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dlg.errors import DlgValueError
from dlg.runtime.data import DataLoader
from dlg.runtime.feeds import Feed
from dlg.runtime.loop import NativeLoop
from dlg.runtime.training import label_checks

if TYPE_CHECKING:
    from dlg.runtime.model import Model


def evaluate(model: Model, feed: Feed, batch_size: int = 256, compiled: bool = False
             ) -> dict[str, float]:
    """Loss and metrics in inference mode (dropout off, running statistics), averaged over all
    samples of `feed` (every input of the eval graph by name); `compiled` runs the batches
    natively (many per call), else on the interpreter."""
    spec, graph = model.train_spec, model.eval_graph
    if spec is None or graph is None:
        raise DlgValueError(f"model {model.name} has no train section to evaluate with")
    outputs = [spec.loss, *spec.metrics]
    loader = DataLoader(*feed.values(), batch_size=batch_size)
    checks = label_checks(graph)
    for check in checks:
        check(feed[check.input])
    if compiled:
        data = {k: np.ascontiguousarray(v) for k, v in feed.items()}
        loop = NativeLoop(model.eval_native, data, outputs, stop=False)
        full, rest = divmod(loop.length, loader.batch_size)
        if full:
            loop.run(model.params, loader.batch_size, 0, full, full, None)
        if rest:
            loop.run(model.params, rest, 0, 1, 1, np.arange(full * loader.batch_size,
                                                            loop.length))
        totals, seen = loop.totals, loop.length
    else:
        totals, seen = np.zeros(len(outputs)), 0
        for batch in loader:
            values, _ = model.interpreter.run(graph, dict(zip(feed, batch)), model.params)
            n = len(batch[0])
            seen += n
            totals += [float(values[k]) * n for k in outputs]
    return {k: float(v) / seen for k, v in zip(outputs, totals)} if seen else {}


def predict(model: Model, feed: Feed, batch_size: int = 256, compiled: bool = True
            ) -> tuple[np.ndarray, ...]:
    """The model's outputs (in declaration order) for every row of `feed`, computed
    `batch_size` rows at a time: compiled, each batch one native call writing straight into
    its rows of the results; else on the interpreter."""
    native = model.native if compiled else None
    order = native.input_names if native is not None else list(feed)
    loader = DataLoader(*(feed[k] for k in order), batch_size=batch_size)
    params = tuple(model.params[k] for k in native.param_names) if native is not None else ()
    names = [name for name, _ in model.graph.outputs]
    results: list[np.ndarray] | None = None
    for i, batch in enumerate(loader):
        rows = slice(i * loader.batch_size, i * loader.batch_size + len(batch[0]))
        if native is not None and results is not None:
            native.run(batch, params, tuple(r[rows] for r in results))
            continue
        if native is not None:
            outs = native.run(batch, params)
        else:
            values, _ = model.interpreter.run(model.graph, dict(zip(order, batch)), model.params)
            outs = tuple(values[k] for k in names)
        if results is None:
            results = [_rows_like(k, o, len(batch[0]), loader.length) for k, o in zip(names, outs)]
        for r, o in zip(results, outs):
            r[rows] = o
    if results is None:
        raise DlgValueError("predict: no rows to predict (the data is empty)")
    return tuple(results)


def _rows_like(name: str, batch: np.ndarray, rows: int, length: int) -> np.ndarray:
    """An array for every row of an output computed one batch at a time."""
    if batch.ndim == 0 or batch.shape[0] != rows:
        raise DlgValueError(f"predict: output {name!r} ({batch.dtype}{list(batch.shape)} for a "
                            f"batch of {rows}) has no batch axis first, so batches cannot be "
                            f"joined; call the model instead")
    return np.empty((length, *batch.shape[1:]), batch.dtype)
