"""One benchmark run: every model through dlg and every requested peer, in the same process.

Every peer gets the same weights and the same batch; its output (inference) or its weights after
two runs from the same start (training steps, regression loops) are checked against dlg's before
it is timed: a wrong peer's time is marked and never the fastest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks import dlg_peer
from benchmarks.cases import REGRESSION_STEPS, Case, regression_data
from benchmarks.flops import bind_dims_of, count_flops
from benchmarks.peers import load_peers
from benchmarks.table import Cell, Row
from benchmarks.timing import median_seconds

INFER_RTOL = 1e-3  # outputs: elementwise, relative to the output's largest magnitude
TRAIN_RTOL = 1e-2  # weight updates: per tensor, relative norm of the difference
# ResNet-18's first layers' float32 gradients are ill-conditioned (17 batch-normalised layers
# below them): after 2 steps at batch 64 torch's own float32 update of conv1 differs from its
# float64 twin's by 7.1 % (0.58 % after one step); dlg's from torch's float32 by 7.6 % (0.66 %)
TRAIN_RTOL_OF = {"resnet": 0.1}
CHECK_RUNS = 2  # a training row's runs before its weights are compared (momentum shows at 2)


@dataclass
class Options:
    models: list[str]
    batches: list[int]
    peers: list[str]
    train_batch: int = 64
    repeat: int = 9
    min_time: float = 0.05


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)  # dlg first, then the requested peers
    missing: dict[str, str] = field(default_factory=dict)  # peer -> why
    warnings: list[str] = field(default_factory=list)
    compile_s: dict[tuple[str, str, str], float] = field(default_factory=dict)  # peer,model,what


def run(options: Options, progress: Callable[[Row], None] = lambda row: None) -> Results:
    results = Results(peers=["dlg", *options.peers])
    peers = [dlg_peer.Peer(), *load_peers(options.peers, results.missing)]
    bench = Bench(options, peers, results, progress)
    for name in options.models:
        case = Case.load(name)
        for n in options.batches:
            bench.infer(case, n)
        bench.train(case, *case.batch(options.train_batch), f"train b{options.train_batch}",
                    "train")
        if name == "linear_regression":
            x, y = regression_data()
            bench.train(case, x, y, f"{REGRESSION_STEPS} steps b{len(x)}", "loop")
    for peer in peers:
        for (model, what), seconds in getattr(peer, "compile_s", {}).items():
            results.compile_s[peer.name, model, what] = seconds
    return results


class Bench:
    def __init__(self, options: Options, peers: list[Any], results: Results,
                 progress: Callable[[Row], None]):
        self.options, self.peers, self.results, self.progress = options, peers, results, progress

    def _time(self, fn: Callable[[], object]) -> float:
        return 1000 * median_seconds(fn, self.options.repeat, self.options.min_time)

    def _row(self, row: Row, cells: Callable[[Any], Cell]) -> None:
        for peer in self.peers:
            try:
                row.cells[peer.name] = cells(peer)
            except Exception as e:  # a peer failing on one model must not end the run
                row.cells[peer.name] = Cell(note="error")
                self.warn(row, peer.name, f"failed: {type(e).__name__}: {e}")
        for name in self.results.missing:
            row.cells[name] = Cell(note="missing")
        self.results.rows.append(row)
        self.progress(row)

    def warn(self, row: Row, peer: str, message: str) -> None:
        self.results.warnings.append(f"{row.model} {row.what}: {peer} {message}")

    def infer(self, case: Case, n: int) -> None:
        x, _ = case.batch(n)
        reference = np.array(self.peers[0].infer(case, x)())  # a copy: outputs may be reused
        row = Row(case.name, f"infer b{n}", count_flops(case.model.graph,
                                                        bind_dims_of(case.model.graph, {"x": x})))

        def cell(peer: Any) -> Cell:
            if not _runs(peer, "infer", case):
                return Cell(note="n/a")
            fn = peer.infer(case, x)
            error = output_error(np.asarray(fn()), reference)
            if error is not None:
                self.warn(row, peer.name, f"output differs from dlg's: {error}")
            return Cell(self._time(fn), "" if error is None else "wrong")
        self._row(row, cell)

    def train(self, case: Case, x: np.ndarray, y: np.ndarray, what: str, kind: str) -> None:
        """A training row: `kind` "train" is one step, "loop" the regression's whole loop."""
        steps = 1 if kind == "train" else REGRESSION_STEPS
        ours = _trainer(self.peers[0], kind, case, x, y, steps)
        reference = ours.params()
        graph = ours.step.graph
        row = Row(case.name, what, steps * count_flops(graph, bind_dims_of(graph, {"x": x})))

        def cell(peer: Any) -> Cell:
            if not _runs(peer, kind, case):
                return Cell(note="n/a")
            trainer = _trainer(peer, kind, case, x, y, steps)
            error = update_error(trainer.params(), reference, case.init,
                                 TRAIN_RTOL_OF.get(case.name, TRAIN_RTOL))
            if error is not None:
                self.warn(row, peer.name, f"weights after {CHECK_RUNS * steps} steps differ "
                                          f"from dlg's: {error}")
            return Cell(self._time(trainer.run), "" if error is None else "wrong")
        self._row(row, cell)


def _runs(peer: Any, kind: str, case: Case) -> bool:
    """Whether the peer has rows of this kind ("infer", "train", "loop") for this model."""
    return hasattr(peer, kind) and getattr(peer, "supports", lambda case: True)(case)


def _trainer(peer: Any, kind: str, case: Case, x: np.ndarray, y: np.ndarray, steps: int) -> Any:
    """The peer's trainer for a row, run CHECK_RUNS times from the initial weights."""
    trainer = peer.train(case, x, y) if kind == "train" else peer.loop(case, x, y, steps)
    for _ in range(CHECK_RUNS):
        trainer.run()
    return trainer


def output_error(out: np.ndarray, ref: np.ndarray) -> str | None:
    if out.shape != ref.shape:
        return f"shape {out.shape}, dlg's {ref.shape}"
    scale = float(np.max(np.abs(ref), initial=0.0)) or 1.0
    worst = float(np.max(np.abs(out - ref), initial=0.0)) / scale
    return None if worst <= INFER_RTOL else f"max error {worst:.2g} of the output's scale"


def update_error(params: dict[str, np.ndarray], ref: dict[str, np.ndarray],
                  init: dict[str, np.ndarray], rtol: float = TRAIN_RTOL) -> str | None:
    """Compares what training did to each weight (new - initial), as a relative norm: Adam's
    first step is ±lr wherever a gradient is not ~0, so a few sign flips at tiny gradients are
    noise, a wrong gradient or optimizer is not."""
    for name, want in ref.items():
        delta, want_delta = params[name] - init[name], want - init[name]
        scale = float(np.linalg.norm(want_delta)) or 1.0
        error = float(np.linalg.norm(delta - want_delta)) / scale
        if not error <= rtol:
            return f"{name}: relative error {error:.2g}"
    return None
