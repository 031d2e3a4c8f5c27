"""`dlg.Executable`: a model compiled to native code, called like the model.

It shares the model's parameters (`exe.params is model.params`): training the model, loading a
state_dict or assigning a parameter is seen by the next call, with no recompilation. Symbolic
dims are runtime arguments, so a new batch size only lays out its buffers again (arena memory is
shared by batch sizes). Calls from several threads run at once; `exe.release()`, or leaving
`with dlg.compile(model) as exe:`, frees the memory calls keep.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dlg.compiler.pipeline import CompileOptions
from dlg.errors import DlgValueError
from dlg.ir.types import TensorType
from dlg.runtime.artifact import load_artifact, save_artifact
from dlg.runtime.cuda_device import DeviceGraph
from dlg.runtime.model import Model
from dlg.runtime.native import NativeGraph
from dlg.runtime.training import TrainStep, arrange

TARGETS = ("cpu", "cuda-emulated", "cuda")  # cuda-emulated: the GPU's launches run on the CPU


class Executable:
    def __init__(self, model: Model, target: str = "cpu"):
        if target not in TARGETS:
            raise DlgValueError(f"unknown target {target!r} (targets: {', '.join(TARGETS)})")
        self.model = model
        self.target = target
        self.options = CompileOptions(target="cpu" if target == "cuda" else target)
        self.native: NativeGraph | DeviceGraph = (
            DeviceGraph(model.graph, options=self.options) if target == "cuda"
            else NativeGraph(model.graph, options=self.options))

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

    def release(self) -> None:
        """Free the memory calls keep between them (arenas, layouts); the next call lays out
        and allocates again."""
        self.native.release()

    def __enter__(self) -> Executable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __call__(self, *args: Any, out: Any = None, **inputs: Any
                 ) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run on inputs by name (`exe(x=batch)`) or in declaration order (`exe(batch)`, the
        fastest); with `out=` (an array, a tuple in output order or a dict by output name) the
        results are written there and returned."""
        native = self.native
        if out is not None and "out" in native.input_names:  # an input named out, by name
            inputs["out"], out = out, None
        if inputs or len(args) != len(native.input_names):
            args = arrange(native.input_names, args, inputs, f"{self.model.name} ")
        if isinstance(out, Mapping):
            out = by_output_name(out, native.output_names)
        elif out is not None:
            out = (out,) if isinstance(out, np.ndarray) else tuple(out)
        params = self.model.params
        try:
            values: tuple[Any, ...] = tuple(map(params.__getitem__, native.param_names))
        except KeyError:  # the Python path names the missing parameter
            values = tuple(params.get(name) for name in native.param_names)
        outputs = native.run(args, values, out)
        return outputs[0] if len(outputs) == 1 else outputs

    prebuilt_step: Callable[[], TrainStep] | None = None  # set by artifacts made with --train

    def train_step(self) -> TrainStep:
        """The model's training step compiled to one native call (`step(x=..., y=...)`)."""
        if self.prebuilt_step is not None:
            return self.prebuilt_step()
        if self.target == "cuda":
            raise DlgValueError("target 'cuda' runs inference only so far; "
                                "target='cuda-emulated' runs the GPU's training step on the CPU")
        return TrainStep(self.model, compiled=True, options=CompileOptions(target=self.target))

    def save(self, path: str | Path, train: bool = False) -> None:
        """Write a .dlgx artifact that `dlg.load` runs without recompiling (`train` adds the
        compiled training step and the optimizer state)."""
        if self.target != "cpu":
            raise DlgValueError(f"an artifact holds CPU code; this executable is for "
                                f"{self.target!r} (compile with target='cpu' to save one)")
        assert isinstance(self.native, NativeGraph)
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


def by_output_name(out: Mapping[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    """`out=` given as {output name: array}, in output order; every output needs one."""
    unknown = [name for name in out if name not in names]
    missing = [name for name in names if name not in out]
    if unknown or missing:
        problem = (f"no output named {unknown[0]!r}" if unknown
                   else f"no array for output {missing[0]!r}")
        raise DlgValueError(f"out: {problem}; give one array per output "
                            f"({', '.join(names)})")
    return tuple(out[name] for name in names)
