"""`dlg.Executable`: a model compiled to native code, called like the model.

It shares the model's parameters (`exe.params is model.params`): training the model, loading a
state_dict or assigning a parameter is seen by the next call, with no recompilation. Symbolic
dims are runtime arguments, so a new batch size only lays out a new arena.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.ir.types import TensorType
from dlg.runtime.artifact import load_artifact, save_artifact
from dlg.runtime.model import Model
from dlg.runtime.native import NativeGraph
from dlg.runtime.training import TrainStep, bind_inputs

TARGETS = ("cpu",)


class Executable:
    def __init__(self, model: Model, target: str = "cpu"):
        if target not in TARGETS:
            raise DlgValueError(f"target {target!r} is not available here (targets: "
                                f"{', '.join(TARGETS)})")
        self.model = model
        self.target = target
        self.native = NativeGraph(model.graph)

    @property
    def params(self) -> Any:
        return self.model.params

    @property
    def inputs(self) -> dict[str, TensorType]:
        return self.model.inputs

    @property
    def outputs(self) -> dict[str, TensorType]:
        return self.model.outputs

    @property
    def compile_seconds(self) -> dict[str, float]:
        return self.native.seconds

    def __call__(self, *args: Any, **inputs: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run on inputs by name (`exe(x=batch)`) or in declaration order (`exe(batch)`)."""
        try:
            inputs = bind_inputs(list(self.inputs), args, inputs)
        except DlgValueError as e:
            raise DlgValueError(f"{self.model.name} {e.message}") from None
        outputs = self.native(inputs, self.params)
        values = tuple(outputs[name] for name in self.outputs)
        return values[0] if len(values) == 1 else values

    prebuilt_step: Callable[[], TrainStep] | None = None  # set by artifacts made with --train

    def train_step(self) -> TrainStep:
        """The model's training step compiled to one native call (`step(x=..., y=...)`)."""
        if self.prebuilt_step is not None:
            return self.prebuilt_step()
        return TrainStep(self.model, compiled=True)

    def save(self, path: str | Path, train: bool = False) -> None:
        """Write a .dlgx artifact that `dlg.load` runs without recompiling (`train` adds the
        compiled training step and the optimizer state)."""
        save_artifact(path, self.model, self.native, self.train_step() if train else None)

    @classmethod
    def from_artifact(cls, path: str | Path) -> Executable:
        loaded = load_artifact(path)
        exe = cls.__new__(cls)
        exe.model, exe.target, exe.native = loaded.model, "cpu", loaded.native
        exe.prebuilt_step = loaded.make_step
        return exe

    def __repr__(self) -> str:
        return f"<dlg.Executable {self.model.name} for {self.target}, " \
               f"{len(self.native.program.kernels)} kernels>"
