"""`dlg.nn.init`: PyTorch's in-place initialisers, drawn with dlg's own initialiser functions
(`dlg.ir.init`, the ones .dlg files use) from the eager random generator."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.frontend import engine
from dlg.frontend.tensor import Tensor
from dlg.ir.init import calculate_gain, initialize

__all__ = ["calculate_gain", "constant_", "dirac_", "eye_", "kaiming_normal_", "kaiming_uniform_",
           "normal_", "ones_", "orthogonal_", "sparse_", "trunc_normal_", "uniform_",
           "xavier_normal_", "xavier_uniform_", "zeros_"]


def _fill(tensor: Tensor, name: str, *args: Any, **kwargs: Any) -> Tensor:
    values = initialize(name, engine.rng(), tensor.shape, tensor.dtype, *args, **kwargs)
    np.copyto(tensor.numpy_view(), values)
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    return _fill(tensor, "uniform", a, b)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    return _fill(tensor, "normal", mean, std)


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, "full", val)


def zeros_(tensor: Tensor) -> Tensor:
    return _fill(tensor, "zeros")


def ones_(tensor: Tensor) -> Tensor:
    return _fill(tensor, "ones")


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu") -> Tensor:
    return _fill(tensor, "kaiming_uniform", a=a, mode=mode, nonlinearity=nonlinearity)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Tensor:
    return _fill(tensor, "kaiming_normal", a=a, mode=mode, nonlinearity=nonlinearity)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    return _fill(tensor, "xavier_uniform", gain=gain)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    return _fill(tensor, "xavier_normal", gain=gain)



def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0) -> Tensor:
    return _fill(tensor, "trunc_normal", mean, std, a, b)


def orthogonal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    return _fill(tensor, "orthogonal", gain)


def eye_(tensor: Tensor) -> Tensor:
    return _fill(tensor, "eye")


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    return _fill(tensor, "dirac", groups)


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01) -> Tensor:
    return _fill(tensor, "sparse", sparsity, std)
