"""Parameter initialisers, run once at model build time on a NumPy Generator.

`INITIALIZERS` maps a name to `fn(rng, shape, dtype, *args, **kwargs) -> ndarray`; the arguments
after `dtype` are what a model file writes (`uniform(-k, k)`, `kaiming_uniform(a=sqrt(5))`).
Fans and gains are torch.nn.init's (`_calculate_fan_in_and_fan_out`, `calculate_gain`), so a
layer starts from the distribution its PyTorch twin starts from. Samples are drawn in float64 and
cast to the parameter's dtype.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.errors import DlgNameError, DlgShapeError, DlgTypeError
from dlg.ir.dtypes import DType

Shape = tuple[int, ...]


def fans(shape: Shape) -> tuple[int, int]:
    """(fan_in, fan_out) as torch.nn.init._calculate_fan_in_and_fan_out computes them."""
    if len(shape) < 2:
        raise DlgShapeError(f"fan in and fan out need a tensor of rank 2 or more, got shape "
                            f"{list(shape)}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """torch.nn.init.calculate_gain."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                        "conv_transpose2d", "conv_transpose3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise DlgTypeError(f"unknown nonlinearity {nonlinearity!r} (expected linear, sigmoid, tanh, "
                       f"relu, leaky_relu, selu or a conv name)")


def _fan(shape: Shape, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise DlgTypeError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fans(shape)
    return fan_in if mode == "fan_in" else fan_out


def _random_dtype(dtype: DType) -> None:
    if not dtype.is_float:
        raise DlgTypeError(f"random initialisers fill float tensors, not {dtype}")


def zeros(rng: np.random.Generator, shape: Shape, dtype: DType) -> np.ndarray:
    return np.zeros(shape, dtype.np)


def ones(rng: np.random.Generator, shape: Shape, dtype: DType) -> np.ndarray:
    return np.ones(shape, dtype.np)


def full(rng: np.random.Generator, shape: Shape, dtype: DType, value: float) -> np.ndarray:
    return np.full(shape, value, dtype.np)


def uniform(rng: np.random.Generator, shape: Shape, dtype: DType, low: float = 0.0,
            high: float = 1.0) -> np.ndarray:
    _random_dtype(dtype)
    return rng.uniform(low, high, shape).astype(dtype.np)


def normal(rng: np.random.Generator, shape: Shape, dtype: DType, mean: float = 0.0,
           std: float = 1.0) -> np.ndarray:
    _random_dtype(dtype)
    if std < 0:
        raise DlgTypeError(f"normal: std must be non-negative, got {std}")
    return rng.normal(mean, std, shape).astype(dtype.np)


def kaiming_uniform(rng: np.random.Generator, shape: Shape, dtype: DType, a: float = 0.0,
                    mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> np.ndarray:
    if math.prod(shape) == 0:
        return np.zeros(shape, dtype.np)  # torch: a zero-element tensor is left as is
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(shape, mode))
    return uniform(rng, shape, dtype, -bound, bound)


def kaiming_normal(rng: np.random.Generator, shape: Shape, dtype: DType, a: float = 0.0,
                   mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> np.ndarray:
    if math.prod(shape) == 0:
        return np.zeros(shape, dtype.np)
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(shape, mode))
    return normal(rng, shape, dtype, 0.0, std)


def xavier_uniform(rng: np.random.Generator, shape: Shape, dtype: DType, gain: float = 1.0
                   ) -> np.ndarray:
    fan_in, fan_out = fans(shape)
    bound = gain * math.sqrt(6.0 / max(fan_in + fan_out, 1))
    return uniform(rng, shape, dtype, -bound, bound)


def xavier_normal(rng: np.random.Generator, shape: Shape, dtype: DType, gain: float = 1.0
                  ) -> np.ndarray:
    fan_in, fan_out = fans(shape)
    return normal(rng, shape, dtype, 0.0, gain * math.sqrt(2.0 / max(fan_in + fan_out, 1)))


INITIALIZERS: dict[str, Callable[..., np.ndarray]] = {
    "zeros": zeros, "ones": ones, "full": full, "uniform": uniform, "normal": normal,
    "kaiming_uniform": kaiming_uniform, "kaiming_normal": kaiming_normal,
    "xavier_uniform": xavier_uniform, "xavier_normal": xavier_normal,
}


def initialize(name: str, rng: np.random.Generator, shape: Shape, dtype: DType, *args: Any,
               **kwargs: Any) -> np.ndarray:
    """Run initialiser `name`; unknown names and arguments are DlgErrors, not TypeErrors."""
    fn = INITIALIZERS.get(name)
    if fn is None:
        raise DlgNameError(f"unknown initialiser {name!r} (known: {', '.join(INITIALIZERS)})")
    try:
        inspect.signature(fn).bind(rng, shape, dtype, *args, **kwargs)
    except TypeError as err:
        params = list(inspect.signature(fn).parameters)[3:]
        raise DlgTypeError(f"{name}(): {err} (it takes {', '.join(params) or 'no arguments'})"
                           ) from None
    return fn(rng, tuple(int(d) for d in shape), dtype, *args, **kwargs)
