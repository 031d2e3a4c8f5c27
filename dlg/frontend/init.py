"""`dlg.nn.init`: PyTorch's in-place initialisers, drawn with dlg's own initialiser functions
(`dlg.ir.init`, the ones .dlg files use) from the eager random generator, or the `generator=`
given (a dlg.Generator), as torch's take one."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.frontend import engine
from dlg.frontend.tensor import Tensor
from dlg.ir.init import calculate_gain, initialize

__all__ = ["calculate_gain", "constant_", "dirac_", "eye_", "kaiming_normal_", "kaiming_uniform_",
           "normal_", "ones_", "orthogonal_", "sparse_", "trunc_normal_", "uniform_",
           "xavier_normal_", "xavier_uniform_", "zeros_"]


def _fill(tensor: Tensor, name: str, *args: Any, generator: Any = None, **kwargs: Any
          ) -> Tensor:
    with engine.drawing_from(generator):
        values = initialize(name, engine.rng(), tensor.shape, tensor.dtype, *args, **kwargs)
    np.copyto(tensor.numpy_view(), values)
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Tensor:
    return _fill(tensor, "uniform", a, b, generator=generator)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: Any = None
            ) -> Tensor:
    return _fill(tensor, "normal", mean, std, generator=generator)


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, "full", val)


def zeros_(tensor: Tensor) -> Tensor:
    return _fill(tensor, "zeros")


def ones_(tensor: Tensor) -> Tensor:
    return _fill(tensor, "ones")


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator: Any = None) -> Tensor:
    return _fill(tensor, "kaiming_uniform", a=a, mode=mode, nonlinearity=nonlinearity,
                 generator=generator)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator: Any = None) -> Tensor:
    return _fill(tensor, "kaiming_normal", a=a, mode=mode, nonlinearity=nonlinearity,
                 generator=generator)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    return _fill(tensor, "xavier_uniform", gain=gain, generator=generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    return _fill(tensor, "xavier_normal", gain=gain, generator=generator)


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator: Any = None) -> Tensor:
    return _fill(tensor, "trunc_normal", mean, std, a, b, generator=generator)


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    return _fill(tensor, "orthogonal", gain, generator=generator)


def eye_(tensor: Tensor) -> Tensor:
    return _fill(tensor, "eye")


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    return _fill(tensor, "dirac", groups)


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01, generator: Any = None
            ) -> Tensor:
    return _fill(tensor, "sparse", sparsity, std, generator=generator)
