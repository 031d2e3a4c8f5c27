"""torch.nn.utils' conv/linear + batch-norm fusion (the "Fusing Convolution and Batch Norm"
tutorial, deployment code): an eval-mode batch norm folded into the convolution or linear layer
before it, w * gamma / sqrt(var + eps) and (b - mean) * gamma / sqrt(var + eps) + beta, as
torch computes them; the module copied, the originals left alone."""

from __future__ import annotations

import copy
from typing import Any, TypeVar

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.nn.module import Module, Parameter
from dlg.frontend.tensor import Tensor, call

M = TypeVar("M", bound=Module)


def fuse_conv_bn_weights(conv_w: Tensor, conv_b: Tensor | None, bn_rm: Tensor, bn_rv: Tensor,
                         bn_eps: float, bn_w: Tensor | None, bn_b: Tensor | None,
                         transpose: bool = False) -> tuple[Parameter, Parameter]:
    """The fused convolution's (weight, bias); `transpose` for a transposed convolution's
    weight ([in, out, ...])."""
    conv_b = call("zeros_like", bn_rm) if conv_b is None else conv_b
    bn_w = call("ones_like", bn_rm) if bn_w is None else bn_w
    bn_b = call("zeros_like", bn_rm) if bn_b is None else bn_b
    with engine.no_grad():
        rsqrt = call("rsqrt", bn_rv + bn_eps)
        shape = (1, -1) if transpose else (-1, 1)
        weight = conv_w * (bn_w * rsqrt).reshape(*shape, *([1] * (conv_w.ndim - 2)))
        bias = (conv_b - bn_rm) * rsqrt * bn_w + bn_b
    return (Parameter(weight.to(conv_w.dtype), conv_w.requires_grad),
            Parameter(bias.to(conv_b.dtype), conv_b.requires_grad))


def fuse_conv_bn_eval(conv: M, bn: Module, transpose: bool = False) -> M:
    """A copy of `conv` computing conv then `bn` (both in eval mode)."""
    _check_eval(conv, bn)
    fused = copy.deepcopy(conv)
    fused.weight, fused.bias = fuse_conv_bn_weights(
        fused.weight, fused.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias,
        transpose)
    return fused


def fuse_linear_bn_weights(linear_w: Tensor, linear_b: Tensor | None, bn_rm: Tensor,
                           bn_rv: Tensor, bn_eps: float, bn_w: Tensor, bn_b: Tensor
                           ) -> tuple[Parameter, Parameter]:
    """The fused linear layer's (weight, bias)."""
    linear_b = call("zeros_like", bn_rm) if linear_b is None else linear_b
    with engine.no_grad():
        scale = bn_w * call("rsqrt", bn_rv + bn_eps)
        weight = linear_w * scale.unsqueeze(-1)
        bias = (linear_b - bn_rm) * scale + bn_b
    return (Parameter(weight.to(linear_w.dtype), linear_w.requires_grad),
            Parameter(bias.to(linear_b.dtype), linear_b.requires_grad))


def fuse_linear_bn_eval(linear: M, bn: Module) -> M:
    """A copy of `linear` computing linear then `bn` (both in eval mode; bn over the linear's
    outputs, or one feature)."""
    _check_eval(linear, bn)
    if linear.out_features != bn.num_features and bn.num_features != 1:
        raise DlgValueError(f"To fuse, linear.out_features == bn.num_features or "
                            f"bn.num_features == 1, got linear.out_features="
                            f"{linear.out_features} and bn.num_features={bn.num_features}",
                            engine.caller_span())
    fused = copy.deepcopy(linear)
    fused.weight, fused.bias = fuse_linear_bn_weights(
        fused.weight, fused.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
    return fused


def _check_eval(layer: Module, bn: Any) -> None:
    if layer.training or bn.training:
        raise DlgValueError("Fusion only for eval!", engine.caller_span())
    if getattr(bn, "running_mean", None) is None or getattr(bn, "running_var", None) is None:
        raise DlgValueError("bn.running_mean and bn.running_var must not be None",
                            engine.caller_span())
