"""Constant folding of static numbers: `sigmoid(-1000.0)` or `1 / sqrt(in_features)` in a .dlg
file is the op's own reference (`OpDef.ref`) run on a NumPy scalar, so a number computed while a
model is built means what the same op means on a tensor. One semantics per op.

Floats are float64 and ints int64; an op that only takes floats (sqrt, exp, ...) takes ints as
floats, as Python's math does. A composite (gelu, leaky_relu) runs its decomposition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dlg.errors import DlgError, DlgValueError
from dlg.ir.builder import Builder
from dlg.ir.decompose import decompose
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph, Value
from dlg.ir.ops.opdef import OpDef, Trait
from dlg.ir.types import TensorType


def fold(op: OpDef, values: Sequence[Any], attrs: Mapping[str, Any]) -> Any:
    """`op` on plain numbers (or bools), as a Python number (or bool)."""
    dtype = _dtype(op, values, attrs)
    g = Graph(op.name)
    b = Builder(g)
    ins = [b.input(f"in{i}", TensorType(dtype, ())) for i in range(len(values))]
    g.set_output("out", b.emit(op, *ins, **attrs))
    try:
        feeds = [np.asarray(v, dtype.np) for v in values]
    except OverflowError:
        raise DlgValueError(f"{op.name}: {', '.join(map(str, values))} does not fit in "
                            f"{dtype}") from None
    return _run(decompose(g), feeds).item()


def _dtype(op: OpDef, values: Sequence[Any], attrs: Mapping[str, Any]) -> DType:
    """float64 if any value is a float, bool if all are bools, else int64 -- or float64 when
    the op refuses ints."""
    if any(isinstance(v, (float, np.floating)) for v in values):
        return DType.f64
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return DType.bool
    scalars = [TensorType(DType.i64, ())] * len(values)
    try:
        op.infer(*scalars, **op.check_attrs(attrs))
    except DlgError:
        return DType.f64  # the op's own error follows, if floats do not fit either
    return DType.i64


def _run(g: Graph, feeds: list[np.ndarray]) -> np.ndarray:
    """Evaluate a graph of primitives with their references (no RNG, no scan: elementwise)."""
    env: dict[Value, np.ndarray] = {}
    inputs = iter(feeds)
    with np.errstate(all="ignore"):  # exp(1000.0) is inf and log(-1.0) nan, as on tensors
        for node in g:
            if Trait.ARGUMENT in node.op.traits:
                env[node.out] = next(inputs)
                continue
            assert node.op.ref is not None, node.op
            out = node.op.ref(*(env[v] for v in node.inputs), **node.attrs)
            for v, array in zip(node.outs, out if isinstance(out, tuple) else (out,)):
                env[v] = np.asarray(array)
    return env[g.outputs[0][1]]
