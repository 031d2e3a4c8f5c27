"""Where values come from: graph inputs, parameters, constants, and tensors made from scratch.

`input` and `param` have no reference implementation: the caller and the model supply them.
Shapes in `full`/`random_*` attributes may be symbolic; the interpreter evaluates them against
the dims bound by the inputs.
"""

from __future__ import annotations

import numpy as np

from dlg.errors import DlgShapeError
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import FLOATS, require_dtype
from dlg.ir.ops.opdef import Attr, Trait, defop
from dlg.ir.types import TensorType


def _source_infer(dtype: DType, shape: tuple, **_: object) -> TensorType:
    for d in shape:
        if isinstance(d, int) and d < 0:
            raise DlgShapeError(f"negative dim {d} in shape {list(shape)}")
    return TensorType(dtype, tuple(shape))


_ARGUMENT = frozenset({Trait.SOURCE, Trait.ARGUMENT, Trait.BUFFER})
INPUT = defop("input", (), _source_infer, attrs={"dtype": Attr("dtype"), "shape": Attr("dims")},
              traits=_ARGUMENT)
PARAM = defop("param", (), _source_infer,
              attrs={"dtype": Attr("dtype"), "shape": Attr("dims"),
                     "trainable": Attr("bool", True)},
              traits=_ARGUMENT, doc="A parameter (trainable) or buffer (not): state of the model.")
CONSTANT = defop("constant", (), lambda value: TensorType(DType.of(value), value.shape),
                 attrs={"value": Attr("array")}, ref=lambda value: value,
                 traits={Trait.SOURCE, Trait.BUFFER})

FULL = defop("full", (), lambda shape, value, dtype: _source_infer(dtype, shape),
             attrs={"shape": Attr("dims"), "value": Attr("float"),
                    "dtype": Attr("dtype", DType.f32)},
             ref=lambda shape, value, dtype: np.full(shape, value, dtype=dtype.np),
             traits={Trait.SOURCE, Trait.CHEAP},
             doc="zeros/ones/full: a tensor filled with one value.")


def _arange_infer(start: float, stop: float, step: float, dtype: DType) -> TensorType:
    if step == 0:
        raise DlgShapeError("arange: step must not be zero")
    return TensorType(dtype, (len(np.arange(start, stop, step)),))


ARANGE = defop("arange", (), _arange_infer,
               attrs={"start": Attr("float", 0.0), "stop": Attr("float"),
                      "step": Attr("float", 1.0),
                      "dtype": Attr("dtype", DType.i64)},
               ref=lambda start, stop, step, dtype: np.arange(start, stop, step).astype(dtype.np),
               traits={Trait.SOURCE, Trait.CHEAP})


def _random_infer(shape: tuple, dtype: DType, **_: object) -> TensorType:
    t = _source_infer(dtype, shape)
    require_dtype("random", t, FLOATS, "dtype")
    return t


RANDOM_UNIFORM = defop(
    "random_uniform", (), _random_infer,
    attrs={"shape": Attr("dims"), "low": Attr("float", 0.0), "high": Attr("float", 1.0),
           "dtype": Attr("dtype", DType.f32)},
    ref=lambda shape, low, high, dtype, ctx: ctx.rng.uniform(low, high, shape).astype(dtype.np),
    traits={Trait.SOURCE, Trait.RANDOM}, needs_ctx=True,
    doc="Fresh uniform samples each run (dropout masks).")
RANDOM_NORMAL = defop(
    "random_normal", (), _random_infer,
    attrs={"shape": Attr("dims"), "mean": Attr("float", 0.0), "std": Attr("float", 1.0),
           "dtype": Attr("dtype", DType.f32)},
    ref=lambda shape, mean, std, dtype, ctx: ctx.rng.normal(mean, std, shape).astype(dtype.np),
    traits={Trait.SOURCE, Trait.RANDOM}, needs_ctx=True)
