"""torch's sampling functions beyond rand/randn/randint: `multinomial` (drawn eagerly from dlg's
generator, as randperm: the draw needs the probabilities' values), `bernoulli` and `normal`
(composites of rand/randn, so they trace and compile). Samples carry no gradient back to the
probabilities, means or standard deviations, as torch's give zeros there. Also the legacy
constructors `dlg.FloatTensor(...)`/`dlg.LongTensor(...)` that older tutorials call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.foreign import type_name
from dlg.frontend import engine
from dlg.frontend.size import Size
from dlg.frontend.tensor import Tensor, call, foreign_tensors
from dlg.ir.dtypes import DType


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *,  # noqa: A002
                generator: Any = None) -> Tensor:
    """`num_samples` category indices per row of `input` (weights, not necessarily summing to
    1), int64 [num_samples] or [rows, num_samples]. Without replacement each row's categories
    come in the order of weight / Exponential(1) keys, torch's algorithm, so zero weights come
    only after the others."""
    span = engine.caller_span()
    input = foreign_tensors(input)  # noqa: A001  (torch's weights)
    if not isinstance(input, Tensor) or input.ndim not in (1, 2):
        got = input.tensor_type if isinstance(input, Tensor) else type_name(input)
        raise DlgShapeError(f"multinomial: input must be a 1-d or 2-d tensor of weights, got "
                            f"{got}", span)
    if not input.dtype.is_float:
        raise DlgTypeError(f"multinomial only supports floating-point dtypes for input, got "
                           f"{input.dtype}", span)
    if not isinstance(num_samples, (int, np.integer)) or num_samples <= 0:
        raise DlgValueError(f"multinomial: num_samples must be a positive int, got "
                            f"{num_samples!r}", span)
    weights = input.detach().numpy_view().astype(np.float64).reshape(-1, input.shape[-1])
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise DlgValueError("multinomial: probability tensor contains either inf, nan or "
                            "element < 0", span)
    if (weights.sum(axis=1) <= 0).any():
        raise DlgValueError("multinomial: invalid multinomial distribution (sum of "
                            "probabilities <= 0)", span)
    categories = weights.shape[1]
    if not replacement and num_samples > categories:
        raise DlgValueError(f"multinomial: cannot sample {num_samples} > {categories} "
                            f"categories without replacement", span)
    with engine.drawing_from(generator):
        rng = engine.rng()
    if replacement:
        cumulative = np.cumsum(weights, axis=1)
        draws = rng.random((weights.shape[0], num_samples)) * cumulative[:, -1:]
        out = np.stack([np.searchsorted(c, d, side="right") for c, d in zip(cumulative, draws)])
        out = np.minimum(out, categories - 1)
    else:
        with np.errstate(divide="ignore"):
            keys = rng.exponential(size=weights.shape) / weights
        out = np.argsort(keys, axis=1, kind="stable")[:, :num_samples]
    out = out.astype(np.int64)
    return Tensor.of(out[0] if input.ndim == 1 else out)


def bernoulli(input: Tensor, p: float | None = None, *, generator: Any = None) -> Tensor:
    """1 with probability `input` (or `p`), else 0, in input's dtype."""
    if p is not None:
        probs: Any = p
    else:
        probs = input.detach()
    with engine.drawing_from(generator):
        draws = call("rand_like", input.detach())
    return call("lt", draws, probs).to(input.dtype)


def normal(mean: Any = 0.0, std: Any = 1.0, size: Any = None, *, generator: Any = None,
           dtype: DType | None = None, requires_grad: bool = False) -> Tensor:
    """Samples of N(mean, std): tensors of means and/or deviations (broadcast), or numbers
    and a `size`."""
    with engine.drawing_from(generator):
        out = _normal(mean, std, size, dtype)
    return out.requires_grad_() if requires_grad else out


def _normal(mean: Any, std: Any, size: Any, dtype: DType | None) -> Tensor:
    tensors = [v.detach() for v in (mean, std) if isinstance(v, Tensor)]
    if not tensors:
        if size is None:
            raise DlgTypeError("normal: with a number mean and std, give the size, e.g. "
                               "normal(0.0, 1.0, size=(2, 3))", engine.caller_span())
        out = call("randn", size, dtype=dtype) * std + mean
    else:
        if size is not None:
            raise DlgTypeError("normal: size is taken with number mean and std only",
                               engine.caller_span())
        mean, std = (v.detach() if isinstance(v, Tensor) else v for v in (mean, std))
        like = tensors[0] if len(tensors) == 1 else tensors[0] * 0 + tensors[1] * 0
        out = call("randn_like", like) * std + mean  # like: the broadcast shape and dtype
    return out


def _legacy(dtype: DType) -> Any:
    def constructor(*args: Any) -> Tensor:
        if args and all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                        for a in args):
            return call("zeros", args, dtype=dtype)  # torch leaves them uninitialised
        if len(args) == 1 and isinstance(args[0], Size):  # FloatTensor(x.shape); a plain
            return call("zeros", tuple(args[0]), dtype=dtype)  # tuple is data, as in torch
        if len(args) != 1:
            raise DlgTypeError(f"{dtype.torch_name} tensor: give sizes or one sequence of "
                               f"values, got {len(args)} arguments", engine.caller_span())
        data = args[0].numpy_view() if isinstance(args[0], Tensor) else args[0]
        return Tensor.of(np.array(data, dtype=dtype.np))
    constructor.dtype = dtype  # type: ignore[attr-defined]  # x.type(dlg.LongTensor) casts to it
    return constructor


# torch's tensor type names by dtype: `x.type()` says them and `x.type(name)` reads them; the
# legacy constructors below are those names
TYPE_NAMES = {DType.f32: "FloatTensor", DType.f64: "DoubleTensor", DType.f16: "HalfTensor",
              DType.i64: "LongTensor", DType.i32: "IntTensor", DType.i16: "ShortTensor",
              DType.i8: "CharTensor", DType.u8: "ByteTensor", DType.bool: "BoolTensor",
              DType.c64: "ComplexFloatTensor", DType.c128: "ComplexDoubleTensor"}

FloatTensor, DoubleTensor, LongTensor, IntTensor, BoolTensor = (
    _legacy(DType.f32), _legacy(DType.f64), _legacy(DType.i64), _legacy(DType.i32),
    _legacy(DType.bool))
ByteTensor, CharTensor, ShortTensor = _legacy(DType.u8), _legacy(DType.i8), _legacy(DType.i16)
for _name in ("FloatTensor", "DoubleTensor", "LongTensor", "IntTensor", "BoolTensor",
              "ByteTensor", "CharTensor", "ShortTensor"):
    globals()[_name].__name__ = globals()[_name].__qualname__ = _name  # found by pickle

Tensor.multinomial = multinomial  # type: ignore[attr-defined]
Tensor.bernoulli = bernoulli  # type: ignore[attr-defined]

__all__ = ["BoolTensor", "ByteTensor", "CharTensor", "DoubleTensor", "FloatTensor", "IntTensor",
           "LongTensor", "ShortTensor", "bernoulli",
           "multinomial", "normal"]
