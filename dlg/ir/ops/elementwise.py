"""Elementwise ops: unary math, binary arithmetic with NumPy broadcasting, comparisons, where, cast.

References keep the input dtype (float32 stays float32). Binary ops require equal dtypes: the
elaborator gives Python literals the dtype of the tensor they meet (like JAX's weak types).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dlg.ir.dtypes import DType
from dlg.ir.ops.common import FLOATS, NUMERIC, broadcast_shapes, require_dtype, same_dtype
from dlg.ir.ops.opdef import BINARY, COMPARISON, ELEMENTWISE, UNARY, Attr, OpDef, defop
from dlg.ir.types import TensorType

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _unary_infer(name: str, allowed: tuple[DType, ...]) -> Callable[..., TensorType]:
    def infer(x: TensorType, **attrs: object) -> TensorType:
        require_dtype(name, x, allowed)
        return x
    return infer


def _keep_dtype(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def ref(x: np.ndarray, **attrs: object) -> np.ndarray:
        return np.asarray(fn(x, **attrs)).astype(x.dtype, copy=False)
    return ref


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * x)  # no overflow for large |x|


def _gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    x64 = x.astype(np.float64)
    if approximate == "tanh":
        return 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    return 0.5 * x64 * (1 + _erf(x64 / math.sqrt(2)))


def unary(name: str, fn: Callable[..., np.ndarray], allowed: tuple[DType, ...] = FLOATS,
          attrs: dict[str, Attr] | None = None, doc: str = "") -> OpDef:
    return defop(name, ("x",), _unary_infer(name, allowed), attrs=attrs, ref=_keep_dtype(fn),
                 groups={UNARY, ELEMENTWISE}, doc=doc)


NEG = unary("neg", np.negative, NUMERIC)
ABS = unary("abs", np.abs, NUMERIC)
EXP = unary("exp", np.exp)
LOG = unary("log", np.log)
SQRT = unary("sqrt", np.sqrt)
RSQRT = unary("rsqrt", lambda x: 1 / np.sqrt(x), doc="1/sqrt(x): one op for layer/batch norm.")
TANH = unary("tanh", np.tanh)
SIGMOID = unary("sigmoid", _sigmoid, doc="A primitive so it is evaluated without overflow.")
RELU = unary("relu", lambda x: np.maximum(x, 0), NUMERIC)
GELU = unary("gelu", _gelu, attrs={"approximate": Attr("str", "none", ("none", "tanh"))})
LEAKY_RELU = unary("leaky_relu", lambda x, negative_slope: np.where(x >= 0, x, x * negative_slope),
                   attrs={"negative_slope": Attr("float", 0.01)})
SIN = unary("sin", np.sin)
COS = unary("cos", np.cos)
FLOOR = unary("floor", np.floor)
CEIL = unary("ceil", np.ceil)
SIGN = unary("sign", np.sign, NUMERIC)
LOGICAL_NOT = unary("logical_not", np.logical_not, (DType.bool,))


def _binary_infer(name: str, allowed: tuple[DType, ...], result: DType | None
                  ) -> Callable[..., TensorType]:
    def infer(x: TensorType, y: TensorType) -> TensorType:
        dtype = same_dtype(name, x, y)
        require_dtype(name, x, allowed, "inputs")
        return TensorType(result or dtype, broadcast_shapes(name, x.shape, y.shape))
    return infer


def binary(name: str, fn: Callable[..., np.ndarray], allowed: tuple[DType, ...] = NUMERIC,
           result: DType | None = None, groups: frozenset[str] = frozenset()) -> OpDef:
    def ref(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.asarray(fn(x, y))
        return out.astype(result.np if result else x.dtype, copy=False)
    return defop(name, ("x", "y"), _binary_infer(name, allowed, result), ref=ref,
                 groups={BINARY, ELEMENTWISE} | groups)


ADD = binary("add", np.add)
SUB = binary("sub", np.subtract)
MUL = binary("mul", np.multiply)
DIV = binary("div", np.divide, FLOATS)
POW = binary("pow", np.power, FLOATS)
MAXIMUM = binary("maximum", np.maximum)
MINIMUM = binary("minimum", np.minimum)
ANY = NUMERIC + (DType.bool,)
EQ = binary("eq", np.equal, ANY, DType.bool, frozenset({COMPARISON}))
NE = binary("ne", np.not_equal, ANY, DType.bool, frozenset({COMPARISON}))
LT = binary("lt", np.less, NUMERIC, DType.bool, frozenset({COMPARISON}))
LE = binary("le", np.less_equal, NUMERIC, DType.bool, frozenset({COMPARISON}))
GT = binary("gt", np.greater, NUMERIC, DType.bool, frozenset({COMPARISON}))
GE = binary("ge", np.greater_equal, NUMERIC, DType.bool, frozenset({COMPARISON}))
LOGICAL_AND = binary("logical_and", np.logical_and, (DType.bool,))
LOGICAL_OR = binary("logical_or", np.logical_or, (DType.bool,))


def _where_infer(cond: TensorType, x: TensorType, y: TensorType) -> TensorType:
    require_dtype("where", cond, (DType.bool,), "condition")
    dtype = same_dtype("where", x, y)
    return TensorType(dtype, broadcast_shapes("where", cond.shape, x.shape, y.shape))


WHERE = defop("where", ("cond", "x", "y"), _where_infer,
              ref=lambda c, x, y: np.where(c, x, y).astype(x.dtype, copy=False),
              groups={ELEMENTWISE})

CAST = defop("cast", ("x",), lambda x, dtype: x.with_dtype(dtype), attrs={"dtype": Attr("dtype")},
             ref=lambda x, dtype: x.astype(dtype.np), groups={UNARY, ELEMENTWISE})
