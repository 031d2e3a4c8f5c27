"""`dlg.nn.grad`: torch.nn.grad's convolution gradients (the fused conv-bn custom Function
tutorial's backward calls conv2d_weight and conv2d_input): the gradient of conv{1,2,3}d with
respect to its weight or input, for a given output gradient, taken by autograd through the
convolution itself, so it is exactly the gradient dlg's own backward computes."""

from __future__ import annotations

from typing import Any

from dlg import autograd
from dlg.frontend import engine
from dlg.frontend import functional as F
from dlg.frontend.tensor import Tensor

_CONVS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _grad(nd: int, x: Tensor, w: Tensor, wrt: Tensor, grad_output: Tensor, stride: Any,
          padding: Any, dilation: Any, groups: int) -> Tensor:
    with engine.enable_grad():
        out = _CONVS[nd](x, w, None, stride, padding, dilation, groups)
        return autograd.grad(out, wrt, grad_output)[0]


def _weight(nd: int) -> Any:
    def conv_weight(input: Tensor, weight_size: Any, grad_output: Tensor, stride: Any = 1,  # noqa: A002
                    padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
        w = F.zeros(*weight_size, dtype=input.dtype).requires_grad_()
        return _grad(nd, input.detach(), w, w, grad_output, stride, padding, dilation, groups)
    conv_weight.__name__ = conv_weight.__qualname__ = f"conv{nd}d_weight"
    conv_weight.__doc__ = f"d conv{nd}d / d weight, for grad_output (torch.nn.grad's)."
    return conv_weight


def _input(nd: int) -> Any:
    def conv_input(input_size: Any, weight: Tensor, grad_output: Tensor, stride: Any = 1,
                   padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
        x = F.zeros(*input_size, dtype=weight.dtype).requires_grad_()
        return _grad(nd, x, weight.detach(), x, grad_output, stride, padding, dilation, groups)
    conv_input.__name__ = conv_input.__qualname__ = f"conv{nd}d_input"
    conv_input.__doc__ = f"d conv{nd}d / d input, for grad_output (torch.nn.grad's)."
    return conv_input


conv1d_weight, conv2d_weight, conv3d_weight = (_weight(nd) for nd in (1, 2, 3))
conv1d_input, conv2d_input, conv3d_input = (_input(nd) for nd in (1, 2, 3))

__all__ = ["conv1d_input", "conv1d_weight", "conv2d_input", "conv2d_weight", "conv3d_input",
           "conv3d_weight"]
