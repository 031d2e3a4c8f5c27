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


def trunc_normal(rng: np.random.Generator, shape: Shape, dtype: DType, mean: float = 0.0,
                 std: float = 1.0, a: float = -2.0, b: float = 2.0) -> np.ndarray:
    """N(mean, std) cut to [a, b], by torch's inverse-CDF method: uniform between the CDF's
    values at a and b, mapped back through erfinv, clamped."""
    _random_dtype(dtype)
    cdf = [(1 + math.erf((x - mean) / std / math.sqrt(2))) / 2 for x in (a, b)]
    y = rng.uniform(2 * cdf[0] - 1, 2 * cdf[1] - 1, shape)
    y = np.clip(y, np.nextafter(-1.0, 0.0), np.nextafter(1.0, 0.0))
    return np.clip(mean + std * math.sqrt(2) * _erfinv(y), a, b).astype(dtype.np)


def _erfinv(y: np.ndarray) -> np.ndarray:
    """erf's inverse on (-1, 1): Winitzki's closed-form guess, then Newton steps on erf."""
    log = np.log1p(-y * y)
    first = 2 / (math.pi * 0.147) + log / 2
    x = np.sign(y) * np.sqrt(np.sqrt(first * first - log / 0.147) - first)
    erf = np.vectorize(math.erf, otypes=[np.float64])
    for _ in range(3):
        x = x - (erf(x) - y) / (2 / math.sqrt(math.pi) * np.exp(-x * x))
    return x


def orthogonal(rng: np.random.Generator, shape: Shape, dtype: DType, gain: float = 1.0
               ) -> np.ndarray:
    """torch's: a (semi-)orthogonal matrix from the QR decomposition of a normal one (signs
    fixed by R's diagonal), over the first dim against the rest flattened."""
    _random_dtype(dtype)
    if len(shape) < 2:
        raise DlgShapeError(f"orthogonal: only tensors with 2 or more dimensions are supported, "
                            f"not shape {list(shape)}")
    if math.prod(shape) == 0:
        return np.zeros(shape, dtype.np)
    rows, cols = shape[0], math.prod(shape[1:])
    flat = rng.normal(0.0, 1.0, (rows, cols))
    q, r = np.linalg.qr(flat.T if rows < cols else flat)
    q = q * np.sign(np.diag(r))
    return (gain * (q.T if rows < cols else q)).reshape(shape).astype(dtype.np)


def eye(rng: np.random.Generator, shape: Shape, dtype: DType) -> np.ndarray:
    """The identity matrix (ones on the main diagonal of a 2-d shape)."""
    if len(shape) != 2:
        raise DlgShapeError(f"eye: only tensors with 2 dimensions are supported, not shape "
                            f"{list(shape)}")
    return np.eye(*shape, dtype=dtype.np)


def dirac(rng: np.random.Generator, shape: Shape, dtype: DType, groups: int = 1) -> np.ndarray:
    """The Dirac delta for a 3-, 4- or 5-d convolution weight: each of a group's first
    channels passes its input channel through at the kernel's centre (torch's)."""
    if len(shape) not in (3, 4, 5):
        raise DlgShapeError(f"dirac: only tensors with 3, 4, or 5 dimensions are supported, "
                            f"not shape {list(shape)}")
    if shape[0] % groups:
        raise DlgShapeError(f"dirac: dim 0 ({shape[0]}) must be divisible by groups ({groups})")
    out = np.zeros(shape, dtype.np)
    per_group = shape[0] // groups
    centre = tuple(k // 2 for k in shape[2:])
    for g in range(groups):
        for d in range(min(per_group, shape[1])):
            out[(g * per_group + d, d, *centre)] = 1
    return out


def sparse(rng: np.random.Generator, shape: Shape, dtype: DType, sparsity: float,
           std: float = 0.01) -> np.ndarray:
    """N(0, std) with ceil(sparsity * rows) random zeros in each column of a 2-d shape."""
    if len(shape) != 2:
        raise DlgShapeError(f"sparse: only tensors with 2 dimensions are supported, not shape "
                            f"{list(shape)}")
    out = normal(rng, shape, DType.f64, 0.0, std)
    zeros_per_column = math.ceil(sparsity * shape[0])
    for col in range(shape[1]):
        out[rng.permutation(shape[0])[:zeros_per_column], col] = 0
    return out.astype(dtype.np)


INITIALIZERS: dict[str, Callable[..., np.ndarray]] = {
    "zeros": zeros, "ones": ones, "full": full, "uniform": uniform, "normal": normal,
    "kaiming_uniform": kaiming_uniform, "kaiming_normal": kaiming_normal,
    "xavier_uniform": xavier_uniform, "xavier_normal": xavier_normal,
    "trunc_normal": trunc_normal, "orthogonal": orthogonal, "eye": eye, "dirac": dirac,
    "sparse": sparse,
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
