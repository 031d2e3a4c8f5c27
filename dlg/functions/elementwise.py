"""Elementwise functions, made from the registry: every unary or binary elementwise `OpDef`
becomes a user function of its own name, its inputs positional and its attributes keywords
(`leaky_relu(x, negative_slope=0.2)`, `cast(x, f64)`). A new elementwise primitive is a
function of both front doors, a `dlg.Tensor` method and a .dlg builtin without another line.

On tensors a function emits its op, Python numbers lifted as weak types (`maximum(x, 0.0)`);
on plain numbers it folds through the op's reference (`fold.py`), so `sigmoid(-1000.0)` in a
.dlg file is 0.0, as on a tensor.

add and sub take PyTorch's `alpha`, div its `rounding_mode`, and the logical functions take any
dtype, nonzero as true (their generated functions are replaced by these); logical_xor, rsub,
clamp/clip, isclose, allclose and equal are compositions of ops.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.errors import DlgError, DlgTypeError, DlgValueError
from dlg.functions.args import (
    attributes,
    choice,
    describe,
    int_scalar,
    is_number,
    is_static,
    operands,
    tensor,
)
from dlg.functions.fold import fold
from dlg.functions.front import Front
from dlg.ir.ops.arith import FLOOR_DIVIDE, ISFINITE, TRUNC
from dlg.ir.ops.elementwise import (
    ABS,
    ADD,
    CAST,
    DIV,
    EQ,
    GT,
    LE,
    LOGICAL_AND,
    LOGICAL_NOT,
    LOGICAL_OR,
    LT,
    MUL,
    NE,
    SUB,
    WHERE,
)
from dlg.ir.ops.linalg import MATMUL
from dlg.ir.ops.reduce import REDUCE_ALL
from dlg.ir.dtypes import DType
from dlg.ir.ops import REGISTRY
from dlg.ir.ops.opdef import REQUIRED, OpDef, Trait
from dlg.ir.types import TensorType

_P = inspect.Parameter


def is_generated(op: OpDef) -> bool:
    """Unary and binary elementwise ops get a generated user function (and spelling)."""
    return Trait.ELEMENTWISE in op.traits and bool({Trait.UNARY, Trait.BINARY} & op.traits)


def takes_ints(op: OpDef) -> bool:
    """Whether `op` accepts integer inputs (exp, sqrt and true division take only floats)."""
    if op not in _TAKES_INTS:  # where's condition is bool whatever its values are
        probes = [TensorType(DType.bool if name == "cond" else DType.i64, (2,))
                  for name in op.inputs]
        try:
            op.infer(*probes, **op.check_attrs({}))
            _TAKES_INTS[op] = True
        except DlgError:
            _TAKES_INTS[op] = False
    return _TAKES_INTS[op]


_TAKES_INTS: dict[OpDef, bool] = {}


def apply(F: Front, op: OpDef, values: list[Any], attrs: dict[str, Any]) -> Any:
    """`op` on tensors or numbers: folded when every value is a plain number."""
    attrs = attributes(F, op, attrs)
    if all(is_static(v) for v in values):
        return fold(op, values, attrs)
    whats = ([f"{op.name}'s argument"] if len(values) == 1
             else [f"{op.name}'s {name}" for name in op.inputs])
    return F.emit(op, *operands(F, values, whats), **attrs)


def _function(op: OpDef) -> Callable[..., Any]:
    sig = inspect.Signature(
        [_P("F", _P.POSITIONAL_ONLY)]
        + [_P(name, _P.POSITIONAL_OR_KEYWORD) for name in op.inputs]
        + [_P(name, _P.POSITIONAL_OR_KEYWORD,
              default=_P.empty if spec.default is REQUIRED else spec.default)
           for name, spec in op.attrs.items()])

    names = (*op.inputs, *op.attrs)

    def fn(F: Front, *args: Any, **kwargs: Any) -> Any:
        if len(args) > len(names) or not set(names[:len(args)]).isdisjoint(kwargs):
            sig.bind(F, *args, **kwargs)  # raises inspect's TypeError for the caller to word
        given = {**dict(zip(names, args)), **kwargs}
        missing = [n for n in op.inputs if n not in given]
        if missing:
            sig.bind(F, *args, **kwargs)
        return apply(F, op, [given[n] for n in op.inputs],
                     {n: given[n] for n in op.attrs if n in given})
    fn.__name__ = fn.__qualname__ = op.name
    fn.__doc__ = op.doc or f"The `{op.name}` op, elementwise."
    fn.__signature__ = sig  # type: ignore[attr-defined]
    return fn


ELEMENTWISE: dict[str, Callable[..., Any]] = {
    op.name: _function(op) for op in REGISTRY.values() if is_generated(op)}


def where(F: Front, cond: Any, x: Any, y: Any) -> Any:
    """x where cond holds, else y; numbers take the other branch's dtype (an int checked against
    an integer branch's range, as torch's: 300 with uint8 is refused, -1 is 255)."""
    branches = [x, y]
    for i, (v, other) in enumerate(((x, y), (y, x))):
        if (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and F.is_tensor(other)
                and F.type_of(other).dtype.is_int):
            branches[i] = int_scalar(v, F.type_of(other).dtype)
    a, b = operands(F, branches, ("where's x", "where's y"))
    return F.emit(WHERE, tensor(F, cond, "where's condition"), a, b)


def matmul(F: Front, x: Any, y: Any) -> Any:
    a, b = operands(F, (x, y), ("matmul's x", "matmul's y"))
    return F.emit(MATMUL, a, b)


# ---- PyTorch's arithmetic arguments ------------------------------------------------------------
def _scaled(F: Front, name: str, y: Any, alpha: Any) -> Any:
    """alpha * y, or y itself for alpha 1."""
    if not is_number(alpha):
        raise DlgTypeError(f"{name}: alpha must be a number, got {describe(F, alpha)}")
    return y if alpha == 1 else apply(F, MUL, [y, alpha], {})


def add(F: Front, x: Any, y: Any, alpha: Any = 1) -> Any:
    """x + alpha * y."""
    return apply(F, ADD, [x, _scaled(F, "add", y, alpha)], {})


def sub(F: Front, x: Any, y: Any, alpha: Any = 1) -> Any:
    """x - alpha * y."""
    return apply(F, SUB, [x, _scaled(F, "sub", y, alpha)], {})


def rsub(F: Front, x: Any, y: Any, alpha: Any = 1) -> Any:
    """y - alpha * x (PyTorch's reversed sub)."""
    return apply(F, SUB, [y, _scaled(F, "rsub", x, alpha)], {})


def div(F: Front, x: Any, y: Any, rounding_mode: Any = None) -> Any:
    """x / y; rounding_mode 'trunc' or 'floor' rounds the quotient and keeps integers (an
    integer quotient is computed in float64, exact below 2^52)."""
    if rounding_mode is None:
        return apply(F, DIV, [x, y], {})
    choice(F, rounding_mode, ("trunc", "floor"), "div: rounding_mode")
    if any(F.is_tensor(v) and F.type_of(v).dtype.is_complex for v in (x, y)):
        raise DlgTypeError(f"div: rounding_mode={rounding_mode!r} is not defined for complex "
                           f"tensors (torch's rule)")
    if rounding_mode == "floor":
        return apply(F, FLOOR_DIVIDE, [x, y], {})
    tensors = [v for v in (x, y) if F.is_tensor(v)]
    dtype = F.type_of(tensors[0]).dtype if tensors else DType.f64
    if dtype.is_float:  # PyTorch's trunc(x / y), in the input's dtype
        return apply(F, TRUNC, [apply(F, DIV, [x, y], {})], {})
    wide = [F.emit(CAST, v, dtype=DType.f64) for v in operands(F, (x, y), ("div's x", "div's y"))]
    return F.emit(CAST, F.emit(TRUNC, F.emit(DIV, *wide)), dtype=dtype)


def clamp(F: Front, x: Any, min: Any = None, max: Any = None) -> Any:  # noqa: A002
    """x limited to [min, max] (numbers or tensors, either may be None); where min > max the
    result is max. As PyTorch, the gradient reaches x at the bounds too."""
    x = tensor(F, x, "clamp's argument")
    if min is None and max is None:
        raise DlgValueError("clamp: give min, max or both (both are none)")
    given = [v for v in (min, max) if v is not None]
    bounds = iter(operands(F, [x, *given], ["clamp's argument", *(
        f"clamp's {n}" for n, v in (("min", min), ("max", max)) if v is not None)])[1:])
    lo = next(bounds) if min is not None else None
    hi = next(bounds) if max is not None else None
    out = x if lo is None else F.emit(WHERE, F.emit(LT, x, lo), lo, x)
    if hi is None:
        return out
    above = F.emit(GT, x, hi)
    if lo is not None:
        above = F.emit(LOGICAL_OR, above, F.emit(LT, hi, lo))
    return F.emit(WHERE, above, hi, out)


# ---- closeness -------------------------------------------------------------------------------
def isclose(F: Front, x: Any, y: Any, rtol: float = 1e-05, atol: float = 1e-08,
            equal_nan: bool = False) -> Any:
    """|x - y| <= atol + |rtol * y| elementwise (or x == y), as PyTorch computes it (moduli for
    complex values); integers are compared as f32."""
    a, b = operands(F, (x, y), ("isclose's x", "isclose's y"))
    dtype = F.type_of(a).dtype
    if dtype == DType.bool or F.type_of(b).dtype != dtype:
        return F.emit(EQ, a, b)  # EQ says that the dtypes differ
    if not dtype.is_inexact:
        a, b = (F.emit(CAST, v, dtype=DType.f32) for v in (a, b))
    close = F.emit(EQ, a, b)
    if equal_nan:
        both_nan = F.emit(LOGICAL_AND, F.emit(NE, a, a), F.emit(NE, b, b))
        close = F.emit(LOGICAL_OR, close, both_nan)
    if rtol == 0 and atol == 0:
        return close
    error = F.emit(ABS, F.emit(SUB, a, b))
    allowed = apply(F, ADD, [atol, F.emit(ABS, apply(F, MUL, [rtol, b], {}))], {})
    within = F.emit(LOGICAL_AND, F.emit(ISFINITE, error), F.emit(LE, error, allowed))
    return F.emit(LOGICAL_OR, close, within)


def allclose(F: Front, x: Any, y: Any, rtol: float = 1e-05, atol: float = 1e-08,
             equal_nan: bool = False) -> Any:
    """Whether isclose holds everywhere: a 0-d bool (a Python bool from eager Python)."""
    return F.emit(REDUCE_ALL, isclose(F, x, y, rtol, atol, equal_nan), axes=None, keepdims=False)


def equal(F: Front, x: Any, y: Any) -> Any:
    """Whether x and y have one shape and equal values (any dtypes): a 0-d bool (a Python bool
    from eager Python)."""
    a, b = tensor(F, x, "equal's x"), tensor(F, y, "equal's y")
    ta, tb = F.type_of(a), F.type_of(b)
    if ta.shape != tb.shape:
        return F.lift(False, DType.bool)
    if ta.dtype != tb.dtype:  # float64 holds every value of the other dtypes exactly
        a, b = (F.emit(CAST, v, dtype=DType.f64) for v in (a, b))
    return F.emit(REDUCE_ALL, F.emit(EQ, a, b), axes=None, keepdims=False)


# ---- logic: PyTorch reads any nonzero number (and NaN) as true --------------------------------
def _truth(F: Front, value: Any, what: str) -> Any:
    """`value` as bools: a bool tensor as it is, another tensor's `value != 0`."""
    if is_static(value):
        return bool(value)
    dtype = F.type_of(tensor(F, value, what)).dtype
    return value if dtype == DType.bool else F.emit(NE, value, F.lift(0, dtype))


def logical_and(F: Front, x: Any, y: Any) -> Any:
    """x and y, elementwise, as bools (nonzero is true)."""
    return apply(F, LOGICAL_AND, [_truth(F, x, "logical_and's x"),
                                  _truth(F, y, "logical_and's y")], {})


def logical_or(F: Front, x: Any, y: Any) -> Any:
    """x or y, elementwise, as bools (nonzero is true)."""
    return apply(F, LOGICAL_OR, [_truth(F, x, "logical_or's x"),
                                 _truth(F, y, "logical_or's y")], {})


def logical_xor(F: Front, x: Any, y: Any) -> Any:
    """Exactly one of x and y, elementwise, as bools (nonzero is true): their truths differ."""
    return apply(F, NE, [_truth(F, x, "logical_xor's x"), _truth(F, y, "logical_xor's y")], {})


def logical_not(F: Front, x: Any) -> Any:
    """not x, elementwise, as bools (nonzero is true)."""
    return apply(F, LOGICAL_NOT, [_truth(F, x, "logical_not's argument")], {})


ELEMENTWISE.update(add=add, sub=sub, div=div, logical_and=logical_and, logical_or=logical_or,
                   logical_not=logical_not)
