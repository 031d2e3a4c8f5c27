"""dlg as an ONNX backend (`onnx.backend.base.Backend`), what ONNX's conformance suite
(`onnx.backend.test.BackendTest`) drives: `prepare` checks the model and returns a rep whose
`run` imports it with `dlg.onnx.load` and runs it on the interpreter, or compiled for this CPU
(`DlgBackend.compiled = True`, `CompiledDlgBackend`).

A model with an op outside the import table raises `unittest.SkipTest` naming the ops (not
onnx's `BackendIsNotSupposedToImplementIt`, which the suite counts as a pass). Node tests feed
some attributes as inputs (a Reshape's shape, Slice's starts); dlg needs those while importing,
so `run` imports the model for the inputs' values (`known_inputs`: read only where a value is
needed while importing), and they stay inputs as well.
"""

from __future__ import annotations

import importlib
import unittest
from collections.abc import Sequence
from typing import Any

import numpy as np

from dlg.onnx.load import load, read_model, unsupported_ops
from dlg.onnx.types import onnx_module
from dlg.runtime.executable import Executable

onnx_module()  # a DlgImportError naming the package when it is missing
_base = importlib.import_module("onnx.backend.base")
_Backend: Any = _base.Backend
_BackendRep: Any = _base.BackendRep


class DlgBackendRep(_BackendRep):
    def __init__(self, model: Any, compiled: bool):
        self.model = model
        self.compiled = compiled
        inits = {t.name for t in model.graph.initializer}
        self.input_names = [i.name for i in model.graph.input if i.name not in inits]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            inputs = [inputs[name] for name in self.input_names]
        elif not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        arrays = [np.asarray(a) for a in inputs]
        model = load(self.model, known_inputs=dict(zip(self.input_names, arrays)))
        runner = Executable(model) if self.compiled else model
        outputs = runner(*arrays)
        return outputs if isinstance(outputs, tuple) else (outputs,)


class DlgBackend(_Backend):
    compiled = False

    @classmethod
    def is_compatible(cls, model: Any, device: str = "CPU", **kwargs: Any) -> bool:
        return not unsupported_ops(model)

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> DlgBackendRep:
        model = read_model(model)
        missing = unsupported_ops(model)
        if missing:
            raise unittest.SkipTest(f"dlg does not import {', '.join(sorted(missing))}")
        return DlgBackendRep(model, cls.compiled)

    @classmethod
    def run_model(cls, model: Any, inputs: Any, device: str = "CPU", **kwargs: Any
                  ) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: Any, inputs: Sequence[Any], device: str = "CPU",
                 outputs_info: Any = None, **kwargs: Any) -> tuple[np.ndarray, ...]:
        raise unittest.SkipTest("dlg runs models, not single nodes")

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


class CompiledDlgBackend(DlgBackend):
    """The same, each model compiled to native code for this CPU."""

    compiled = True
