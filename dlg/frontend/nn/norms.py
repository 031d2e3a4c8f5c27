"""Normalisation modules: BatchNorm1d/2d/3d (running statistics as buffers, torch's options),
LayerNorm, RMSNorm, GroupNorm and InstanceNorm1d/2d/3d (group norms: statistics per sample and
group), LocalResponseNorm (across neighbouring channels)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.nn.module import Module, Parameter
from dlg.frontend.stateful import assign
from dlg.frontend.tensor import Tensor, call, checked
from dlg.functions import args
from dlg.functions.norms import batch_statistics
from dlg.ir.dtypes import DType


def _affine(module: Module, shape: Any, bias: bool) -> None:
    """weight (ones) and, with `bias`, bias (zeros) of `shape`, trained; None when absent."""
    module.weight = Parameter(np.ones(shape, np.float32))
    module.bias = Parameter(np.zeros(shape, np.float32)) if bias else None


def _scale_shift(module: Module, shape: Any, dtype: DType) -> tuple[Any, Any]:
    """The affine weight and bias, ones and zeros of the input's dtype standing in for absent
    ones."""
    weight = module.weight if module.weight is not None else np.ones(shape, dtype.np)
    bias = module.bias if module.bias is not None else np.zeros(shape, dtype.np)
    return weight, bias


class _BatchNorm(Module):
    """Normalises over every axis but the channels (axis 1). Training uses the batch's
    statistics and, with track_running_stats, folds them into running_mean/var (the unbiased
    variance, as torch) by `momentum`, or by 1/num_batches_tracked (a cumulative average) when
    momentum is None; eval uses the running statistics where they are tracked."""

    ranks: tuple[int, ...] = (2, 3)
    takes = ""  # the shapes it takes, as prelude.dlg's assert says

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, *, bias: bool = True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = self.bias = None
        if affine:
            _affine(self, num_features, bias)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor.of(np.zeros(num_features, np.float32)))
            self.register_buffer("running_var", Tensor.of(np.ones(num_features, np.float32)))
            self.register_buffer("num_batches_tracked", Tensor.of(np.zeros((), np.int64)))

    def reset_running_stats(self) -> None:
        """torch's: the running statistics back to mean 0, variance 1, no batches counted."""
        if self.track_running_stats:
            with engine.no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1.0)
                self.num_batches_tracked.zero_()

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self.ranks:
            raise DlgShapeError(f"{type(self).__name__} takes {self.takes}",
                                engine.caller_span())
        if x.shape[1] != self.num_features:
            raise DlgShapeError(f"{type(self).__name__}({self.num_features}) got {x.shape[1]} "
                                f"channels", engine.caller_span())
        weight, bias = _scale_shift(self, self.num_features, x.dtype)
        if not self.training and self.track_running_stats:
            return call("batch_norm", x, self.running_mean, self.running_var, weight, bias,
                        eps=self.eps)
        mean, var = checked(batch_statistics, x)
        count = x.numel() // x.shape[1]
        if count == 1 and self.training:
            raise DlgValueError(f"{type(self).__name__}: expected more than 1 value per channel "
                                f"when training, got input of shape {list(x.shape)}",
                                engine.caller_span())
        if self.training and self.track_running_stats:
            # a symbolic batch makes the count a run-time value
            n = count if isinstance(count, int) else call("numel", x, (0, *range(2, x.ndim)),
                                                           dtype=x.dtype)
            self._track(mean, var, n)
        return call("batch_norm", x, mean, var, weight, bias, eps=self.eps)

    def _track(self, mean: Tensor, var: Tensor, n: Any) -> None:
        with engine.no_grad():
            count = self.num_batches_tracked + 1
            m = 1.0 / count.to(mean.dtype) if self.momentum is None else self.momentum
            new_mean = self.running_mean * (1 - m) + mean.detach() * m
            unbiased = var.detach() * (n / (n - 1))
            new_var = self.running_var * (1 - m) + unbiased * m
        for name, value in (("running_mean", new_mean), ("running_var", new_var),
                            ("num_batches_tracked", count)):
            assign(getattr(self, name), value, f"{type(self).__name__}: {name}")

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    ranks, takes = (2, 3), "[N, C] or [N, C, L]"


class BatchNorm2d(_BatchNorm):
    ranks, takes = (4,), "[N, C, H, W]"


class BatchNorm3d(_BatchNorm):
    ranks, takes = (5,), "[N, C, D, H, W]"


class LayerNorm(Module):
    def __init__(self, normalized_shape: Any, eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True):
        super().__init__()
        shape = checked(args.shape, (normalized_shape,))
        self.normalized_shape, self.eps = shape, eps
        self.elementwise_affine = elementwise_affine
        self.weight = self.bias = None
        if elementwise_affine:
            _affine(self, shape, bias)

    def forward(self, x: Tensor) -> Tensor:
        affine = (_scale_shift(self, self.normalized_shape, x.dtype) if self.elementwise_affine
                  else ())
        return call("layer_norm", x, self.normalized_shape, *affine, eps=self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class RMSNorm(Module):
    """x / sqrt(mean(x^2) + eps) over the trailing normalized_shape, times weight (ones);
    eps None is the input dtype's machine epsilon, as torch's (2.4)."""

    def __init__(self, normalized_shape: Any, eps: float | None = None,
                 elementwise_affine: bool = True):
        super().__init__()
        self.normalized_shape = checked(args.shape, (normalized_shape,))
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.weight = Parameter(np.ones(self.normalized_shape, np.float32)) \
            if elementwise_affine else None

    def forward(self, x: Tensor) -> Tensor:
        return call("rms_norm", x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(Module):
    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, *, bias: bool = True):
        super().__init__()
        if num_channels % num_groups:
            raise DlgValueError("num_channels must be divisible by num_groups",
                                engine.caller_span())
        self.num_groups, self.num_channels, self.eps, self.affine = (num_groups, num_channels,
                                                                     eps, affine)
        self.weight = self.bias = None
        if affine:
            _affine(self, num_channels, bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise DlgShapeError(f"GroupNorm expected [N, {self.num_channels}, ...], got "
                                f"{list(x.shape)}", engine.caller_span())
        return call("group_norm", x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class _InstanceNorm(Module):
    """Each sample's channels normalised over their own spatial axes (group norm with a group
    per channel). With track_running_stats, training folds the per-sample statistics' batch
    average (the unbiased variance) into running_mean/var by `momentum` (None: no update; the
    count stays 0, as torch's), and eval normalises by them, as torch's instance_norm does."""

    nd = 1

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False):
        super().__init__()
        self.num_features, self.eps, self.momentum, self.affine = (num_features, eps,
                                                                   momentum, affine)
        self.track_running_stats = track_running_stats
        self.weight = self.bias = None
        if affine:
            _affine(self, num_features, True)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor.of(np.zeros(num_features, np.float32)))
            self.register_buffer("running_var", Tensor.of(np.ones(num_features, np.float32)))
            self.register_buffer("num_batches_tracked", Tensor.of(np.zeros((), np.int64)))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in (self.nd + 1, self.nd + 2):
            raise DlgShapeError(f"{type(self).__name__}: expected {self.nd + 1}-d or "
                                f"{self.nd + 2}-d input, got shape {list(x.shape)}",
                                engine.caller_span())
        batched = x if x.ndim == self.nd + 2 else x.unsqueeze(0)
        if self.track_running_stats and not self.training:
            weight, bias = _scale_shift(self, self.num_features, x.dtype)
            y = call("batch_norm", batched, self.running_mean, self.running_var, weight, bias,
                     eps=self.eps)
        else:
            y = call("instance_norm", batched, weight=self.weight, bias=self.bias, eps=self.eps)
            if self.track_running_stats and self.momentum is not None:
                self._track(batched)
        return y if x.ndim == self.nd + 2 else y.squeeze(0)

    def _track(self, x: Tensor) -> None:
        m, axes = self.momentum, tuple(range(2, x.ndim))
        with engine.no_grad():
            mean = x.mean(axes).mean(0)
            var = x.var(axes, unbiased=True).mean(0)
            new_mean = self.running_mean * (1 - m) + mean * m
            new_var = self.running_var * (1 - m) + var * m
        for name, value in (("running_mean", new_mean), ("running_var", new_var)):
            assign(getattr(self, name), value, f"{type(self).__name__}: {name}")

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class InstanceNorm1d(_InstanceNorm):
    nd = 1


class InstanceNorm2d(_InstanceNorm):
    nd = 2


class InstanceNorm3d(_InstanceNorm):
    nd = 3


class LocalResponseNorm(Module):
    """Each value divided by (k + alpha * the mean square over `size` neighbouring
    channels)^beta."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: Tensor) -> Tensor:
        return call("local_response_norm", x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
