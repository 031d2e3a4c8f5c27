"""torch's `out=` keyword on the top-level functions (`torch.matmul(a, b, out=y3)`, the Tensors
tutorial's; `torch.max(x, 1, out=(values, indices))`): the function runs as it would without it
and its result is written into `out`, which is returned.

torch's rules: no gradient through it (an argument that requires grad, grad mode on, is
refused), the result's dtype must cast to out's without changing kind downwards (float into
long is refused; long into float is fine), and an out of another shape is resized (with
torch's deprecation warning when it held elements).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

from dlg import foreign
from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.amp import _user_stacklevel
from dlg.frontend.tensor import Tensor
from dlg.ir.dtypes import DType


def _kind(dtype: DType) -> int:
    return 0 if dtype == DType.bool else 2 if dtype.is_float else 1


def _write(name: str, out: Any, result: Any) -> Any:
    if isinstance(out, (tuple, list)):
        results = result if isinstance(result, tuple) else None
        if results is None or len(results) != len(out):
            raise DlgTypeError(f"{name}(): out= takes a tuple of {len(results or ())} tensors "
                               f"here, got {len(out)}" if results else
                               f"{name}(): out= must be a tensor here, not a tuple",
                               engine.caller_span())
        for o, r in zip(out, results):
            _write(name, o, r)
        return result if not hasattr(result, "_fields") else type(result)(*out)
    if not isinstance(out, Tensor):
        raise DlgTypeError(f"{name}(): out= must be a dlg tensor, got {foreign.type_name(out)}",
                           engine.caller_span())
    if not isinstance(result, Tensor):
        raise DlgTypeError(f"{name}() takes no out= (its result is a {type(result).__name__})",
                           engine.caller_span())
    if engine.grad_enabled() and (result.requires_grad or out.requires_grad):
        raise DlgValueError(f"{name}(): functions with out=... arguments don't support "
                            "automatic differentiation, but one of the arguments requires grad",
                            engine.caller_span())
    if _kind(result.dtype) > _kind(out.dtype):
        raise DlgTypeError(f"{name}(): result type {result.dtype} can't be cast to the desired "
                           f"output type {out.dtype}", engine.caller_span())
    if tuple(out.shape) != tuple(result.shape):
        if engine.current_tracer() is not None:
            raise DlgShapeError(f"{name}(): out= has shape {list(out.shape)}, the result "
                                f"{list(result.shape)}; a traced out= is not resized",
                                engine.caller_span())
        if out.numel():
            warnings.warn(f"An output with one or more elements was resized since it had shape "
                          f"{list(out.shape)}, which does not match the required output shape "
                          f"{list(result.shape)}. This behavior is deprecated, and in a future "
                          f"PyTorch release outputs will not be resized unless they have zero "
                          f"elements.", UserWarning, stacklevel=_user_stacklevel())
        out.data = result.detach()
        return out
    with engine.no_grad():
        out.copy_(result)
    return out


def with_out(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` taking torch's `out=` as well."""
    @functools.wraps(fn)
    def call(*args: Any, out: Any = None, **kwargs: Any) -> Any:
        if out is None:
            return fn(*args, **kwargs)
        return _write(fn.__name__, out, fn(*args, **kwargs))
    return call
