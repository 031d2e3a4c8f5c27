"""Normalisation modules: BatchNorm1d/2d (running statistics as buffers) and LayerNorm."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgShapeError
from dlg.frontend import engine
from dlg.frontend.nn.module import Module, Parameter
from dlg.frontend.tensor import Tensor, call, checked
from dlg.functions import args


class _BatchNorm(Module):
    ranks: tuple[int, ...] = (2, 3)
    takes = ""  # the shapes it takes, as prelude.dlg's assert says

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = Parameter(np.ones(num_features, np.float32))
        self.bias = Parameter(np.zeros(num_features, np.float32))
        self.register_buffer("running_mean", Tensor(np.zeros(num_features, np.float32)))
        self.register_buffer("running_var", Tensor(np.ones(num_features, np.float32)))
        self.register_buffer("num_batches_tracked", Tensor(np.zeros((), np.int64)))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self.ranks:
            raise DlgShapeError(f"{type(self).__name__} takes {self.takes}",
                                engine.caller_span())
        if not self.training:
            return call("batch_norm", x, self.running_mean, self.running_var, self.weight,
                        self.bias, eps=self.eps)
        axes = (0,) + tuple(range(2, x.ndim))
        mean = x.mean(axes)
        var = ((x - x.mean(axes, keepdim=True)) ** 2).mean(axes)
        y = call("batch_norm", x, mean, var, self.weight, self.bias, eps=self.eps)
        n = x.numel() // x.shape[1]  # PyTorch keeps the unbiased variance
        m = self.momentum
        with engine.no_grad():
            new_mean = self.running_mean * (1 - m) + mean.detach() * m
            new_var = self.running_var * (1 - m) + var.detach() * (m * n / (n - 1))
            count = self.num_batches_tracked + 1
        tracer = engine.current_tracer()
        for buffer, value in ((self.running_mean, new_mean), (self.running_var, new_var),
                              (self.num_batches_tracked, count)):
            if tracer is not None:
                tracer.update(buffer, value)
            else:
                np.copyto(buffer.numpy_view(), value.numpy_view())
        return y


class BatchNorm1d(_BatchNorm):
    ranks, takes = (2, 3), "[N, C] or [N, C, L]"


class BatchNorm2d(_BatchNorm):
    ranks, takes = (4,), "[N, C, H, W]"


class LayerNorm(Module):
    def __init__(self, normalized_shape: Any, eps: float = 1e-5,
                 elementwise_affine: bool = True):
        super().__init__()
        shape = checked(args.shape, (normalized_shape,))
        self.normalized_shape, self.eps = shape, eps
        if elementwise_affine:
            self.weight = Parameter(np.ones(shape, np.float32))
            self.bias = Parameter(np.zeros(shape, np.float32))

    def forward(self, x: Tensor) -> Tensor:
        affine = [self.weight, self.bias] if "weight" in self._parameters else []
        return call("layer_norm", x, self.normalized_shape, *affine, eps=self.eps)
