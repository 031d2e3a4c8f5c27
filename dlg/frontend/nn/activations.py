"""Activation modules: each calls its function of `dlg.nn.functional`."""

from __future__ import annotations

from typing import Any

from dlg.frontend import functional as F
from dlg.frontend.nn.module import Module
from dlg.frontend.tensor import Tensor, call


def _activation(name: str, fn: Any) -> type[Module]:
    def forward(self: Module, x: Tensor) -> Tensor:
        return fn(x)
    return type(name, (Module,), {"forward": forward, "__doc__": f"{name}: {fn.__name__}."})


ReLU = _activation("ReLU", F.relu)
Sigmoid = _activation("Sigmoid", F.sigmoid)
Tanh = _activation("Tanh", F.tanh)


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return call("gelu", x, approximate=self.approximate)


class Softmax(Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.dim)


class LogSoftmax(Softmax):
    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, self.dim)
