"""Elementwise functions, made from the registry: every unary or binary elementwise `OpDef`
becomes a user function of its own name, its inputs positional and its attributes keywords
(`leaky_relu(x, negative_slope=0.2)`, `cast(x, f64)`). A new elementwise primitive is a
function of both front doors, a `dlg.Tensor` method and a .dlg builtin without another line.

On tensors a function emits its op, Python numbers lifted as weak types (`maximum(x, 0.0)`);
on plain numbers it folds through the op's reference (`fold.py`), so `sigmoid(-1000.0)` in a
.dlg file is 0.0, as on a tensor.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from dlg.errors import DlgError
from dlg.functions.args import attributes, is_static, operands, tensor
from dlg.functions.fold import fold
from dlg.functions.front import Front
from dlg.ir.ops.elementwise import WHERE
from dlg.ir.ops.linalg import MATMUL
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
    if op not in _TAKES_INTS:
        scalar = TensorType(DType.i64, (2,))
        try:
            op.infer(*[scalar] * len(op.inputs), **op.check_attrs({}))
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
    """x where cond holds, else y; numbers take the other branch's dtype."""
    a, b = operands(F, (x, y), ("where's x", "where's y"))
    return F.emit(WHERE, tensor(F, cond, "where's condition"), a, b)


def matmul(F: Front, x: Any, y: Any) -> Any:
    a, b = operands(F, (x, y), ("matmul's x", "matmul's y"))
    return F.emit(MATMUL, a, b)
