"""Run one op through the builder and the interpreter, the way every op test does."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dlg.ir import Builder, DType, Graph, TensorType
from dlg.ir.ops.opdef import REGISTRY
from dlg.runtime.interp import Interpreter


def run_op(name: str, *arrays: np.ndarray, seed: int = 0, **attrs: Any
           ) -> tuple[tuple[np.ndarray, ...], tuple[TensorType, ...]]:
    """Outputs of op `name` on `arrays` via the interpreter, and the types `infer` gave."""
    g = Graph(name)
    b = Builder(g)
    inputs = {}
    values = []
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        values.append(b.input(f"in{i}", TensorType(DType.of(a), a.shape)))
        inputs[f"in{i}"] = a
    out = b.emit(REGISTRY[name], *values, **attrs)
    outs = out if isinstance(out, tuple) else (out,)
    for i, v in enumerate(outs):
        g.set_output(f"out{i}", v)
    results, _ = Interpreter(seed).run(g, inputs, {})
    return tuple(results[f"out{i}"] for i in range(len(outs))), tuple(g.type_of(v) for v in outs)


def infer_error(op: str, types: list[str], **attrs: Any) -> Exception:
    """The exception that making op `op` on inputs of `types` raises (it must raise)."""
    g = Graph("err")
    b = Builder(g)
    ins = [b.input(f"x{i}", TensorType.parse(t)) for i, t in enumerate(types)]
    with pytest.raises(Exception) as info:
        getattr(b, op)(*ins, **attrs)
    return info.value
