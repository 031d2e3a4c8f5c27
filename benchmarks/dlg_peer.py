"""dlg itself, behind the same face as its peers: the model compiled once (cold when the runner
turns the disk cache off), inference through `Executable`, training through the compiled
`TrainStep`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

import dlg
from benchmarks.cases import Case
from dlg.runtime.training import TrainStep


def regression_loop(step: Any, x: np.ndarray, y: np.ndarray, steps: int) -> None:
    """The regression-loop cell: `steps` full-batch steps in one native call (`TrainStep.run`,
    as JAX's lax.fori_loop)."""
    step.run(steps, x=x, y=y)


class Trainer:
    def __init__(self, case: Case, step: Any, x: np.ndarray, y: np.ndarray, steps: int):
        self.case, self.step, self.x, self.y, self.steps = case, step, x, y, steps
        self.extras = case.extras(x)

    def run(self) -> None:
        if self.steps == 1:
            self.step(x=self.x, y=self.y, **self.extras)
        else:
            regression_loop(self.step, self.x, self.y, self.steps)

    def params(self) -> dict[str, np.ndarray]:
        return self.case.model.state_dict()


class Peer:
    name = "dlg"

    def __init__(self) -> None:
        self.compile_s: dict[tuple[str, str], float] = {}
        self.executables: dict[str, dlg.Executable] = {}
        self.train_steps: dict[str, Any] = {}

    def _timed(self, case: Case, what: str, build: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        built = build()
        self.compile_s[case.name, what] = time.perf_counter() - start
        return built

    def infer(self, case: Case, x: np.ndarray) -> Callable[[], Any]:
        if case.name not in self.executables:
            self.executables[case.name] = self._timed(case, "infer",
                                                      lambda: dlg.compile(case.model))
        exe, extras = self.executables[case.name], case.extras(x)
        return lambda: exe(x=x, **extras)

    def train(self, case: Case, x: np.ndarray, y: np.ndarray, steps: int = 1) -> Trainer:
        """A step from the case's initial weights and optimizer state (both reset: the step
        writes them in place)."""
        if case.name not in self.train_steps:
            step = self._timed(case, "train", lambda: TrainStep(case.model, compiled=True))
            self.train_steps[case.name] = step, {k: v.copy() for k, v in step.state.items()}
        step, state = self.train_steps[case.name]
        case.reset()
        for k, v in state.items():  # fresh optimizer state, in place as the weights
            np.copyto(step.state[k], v)
        return Trainer(case, step, x, y, steps)

    def loop(self, case: Case, x: np.ndarray, y: np.ndarray, steps: int) -> Trainer:
        return self.train(case, x, y, steps)
