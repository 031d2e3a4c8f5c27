"""Activation modules: each applies its function of `dlg.nn.functional` with the options it was
made with (attributes of PyTorch's names, printed as torch prints them). `inplace=True` writes
the result into x, as torch does (frontend/inplace.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgShapeError
from dlg.frontend import engine, inplace
from dlg.frontend.nn.module import Module, Parameter
from dlg.frontend.tensor import Tensor, call


class _Activation(Module):
    """Applies the function `fn` with the module's `options` (attribute names) as keywords."""

    fn = ""
    options: tuple[str, ...] = ()

    def __init__(self, *values: Any, inplace: bool = False):
        super().__init__()
        for name, value in zip(self.options, values):
            setattr(self, name, value)
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        options = {name: getattr(self, name) for name in self.options}
        if self.inplace:
            return inplace.update(x, lambda s: call(self.fn, s, **options))
        return call(self.fn, x, **options)

    def extra_repr(self) -> str:
        shown = [f"{name}={getattr(self, name)!r}" for name in self.options]
        return ", ".join(shown + (["inplace=True"] if self.inplace else []))


def _plain(name: str, fn: str) -> type[Module]:
    """An activation without options, such as ReLU."""
    def init(self: _Activation, inplace: bool = False) -> None:
        _Activation.__init__(self, inplace=inplace)
    return type(name, (_Activation,), {"fn": fn, "__init__": init,
                                       "__doc__": f"torch.nn.{name}: {fn}(x)."})


ReLU = _plain("ReLU", "relu")
Sigmoid = _plain("Sigmoid", "sigmoid")
Tanh = _plain("Tanh", "tanh")
SiLU = _plain("SiLU", "silu")
Mish = _plain("Mish", "mish")
SELU = _plain("SELU", "selu")
ReLU6 = _plain("ReLU6", "relu6")
Hardswish = _plain("Hardswish", "hardswish")
Hardsigmoid = _plain("Hardsigmoid", "hardsigmoid")
LogSigmoid = _plain("LogSigmoid", "logsigmoid")
Softsign = _plain("Softsign", "softsign")
Tanhshrink = _plain("Tanhshrink", "tanhshrink")


class ELU(_Activation):
    fn, options = "elu", ("alpha",)

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__(alpha, inplace=inplace)


class CELU(ELU):
    fn = "celu"


class LeakyReLU(_Activation):
    fn, options = "leaky_relu", ("negative_slope",)

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__(negative_slope, inplace=inplace)


class RReLU(_Activation):
    """F.rrelu: slopes drawn per element from U(lower, upper) in training mode, their mean
    (lower + upper) / 2 in eval mode."""

    fn, options = "rrelu", ("lower", "upper")

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3, inplace: bool = False):
        super().__init__(lower, upper, inplace=inplace)

    def forward(self, x: Tensor) -> Tensor:
        def rrelu(s: Tensor) -> Tensor:
            return call("rrelu", s, self.lower, self.upper, training=self.training)
        return inplace.update(x, rrelu) if self.inplace else rrelu(x)


class Hardtanh(_Activation):
    fn, options = "hardtanh", ("min_val", "max_val")

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__(min_val, max_val, inplace=inplace)


class Softplus(_Activation):
    fn, options = "softplus", ("beta", "threshold")

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__(beta, threshold)


class Softshrink(_Activation):
    fn, options = "softshrink", ("lambd",)

    def __init__(self, lambd: float = 0.5):
        super().__init__(lambd)

    def extra_repr(self) -> str:
        return repr(self.lambd)


class Hardshrink(Softshrink):
    fn = "hardshrink"


class GELU(_Activation):
    fn, options = "gelu", ("approximate",)

    def __init__(self, approximate: str = "none"):
        super().__init__(approximate)


class GLU(_Activation):
    fn, options = "glu", ("dim",)

    def __init__(self, dim: int = -1):
        super().__init__(dim)


class PReLU(Module):
    """where(x > 0, x, weight * x) with a learned weight per channel (or one for all)."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25):
        super().__init__()
        self.num_parameters, self.init = num_parameters, init
        self.weight = Parameter(np.full(num_parameters, init, np.float32))

    def forward(self, x: Tensor) -> Tensor:
        return call("prelu", x, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class Softmax(Module):
    fn = "softmax"

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return call(self.fn, x, _implicit_dim(x) if self.dim is None else self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    fn = "log_softmax"


class Softmin(Softmax):
    fn = "softmin"


class Softmax2d(Module):
    """softmax over the channels of [N, C, H, W] or [C, H, W] (axis -3)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in (3, 4):
            raise DlgShapeError(f"Softmax2d: expected input to be 3D or 4D, got {x.ndim}D",
                                engine.caller_span())
        return call("softmax", x, -3)


class Threshold(_Activation):
    fn, options = "threshold", ("threshold", "value")

    def __init__(self, threshold: float, value: float, inplace: bool = False):
        super().__init__(threshold, value, inplace=inplace)


def _implicit_dim(x: Tensor) -> int:
    """torch's legacy choice when no dim is given: 0 for 0-, 1- and 3-d input, else 1."""
    return 0 if x.ndim in (0, 1, 3) else 1
