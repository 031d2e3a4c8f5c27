"""Layers with parameters or options of their own: Linear, Conv1d/2d, Flatten, Dropout,
Embedding. Names, shapes and initialisers follow torch.nn (and prelude.dlg)."""

from __future__ import annotations

import math
from typing import Any

from dlg.frontend import functional as F
from dlg.frontend.nn.module import Module, init_parameter
from dlg.frontend.tensor import Tensor, call, checked
from dlg.functions.args import ints
from dlg.functions.nn import conv_options


class Linear(Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = init_parameter("kaiming_uniform", (out_features, in_features), a=math.sqrt(5))
        k = 1 / math.sqrt(in_features)
        self.bias = init_parameter("uniform", (out_features,), -k, k) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class _ConvNd(Module):
    nd = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True):
        super().__init__()
        kernel = checked(ints, kernel_size, self.nd, "kernel_size")
        checked(conv_options, self.nd, stride, padding, dilation, groups)  # .dlg's errors
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.weight = init_parameter("kaiming_uniform",
                                     (out_channels, in_channels // groups, *kernel), a=math.sqrt(5))
        k = 1 / math.sqrt(in_channels // groups * math.prod(kernel))
        self.bias = init_parameter("uniform", (out_channels,), -k, k) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return call(f"conv{self.nd}d", x, self.weight, self.bias, self.stride, self.padding,
                    self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


class Conv1d(_ConvNd):
    nd = 1


class Conv2d(_ConvNd):
    nd = 2



class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)


class Dropout(Module):
    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Embedding(Module):
    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        self.weight = init_parameter("normal", (num_embeddings, embedding_dim), 0.0, 1.0)

    def forward(self, indices: Any) -> Tensor:
        return call("embedding", indices, self.weight)
