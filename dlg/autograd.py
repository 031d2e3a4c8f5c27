"""`dlg.autograd`: torch.autograd's spellings for eager tensors: `grad` (gradients returned,
not accumulated), `backward` of several tensors at once, and the grad-mode switches."""

from __future__ import annotations

from typing import Any

from dlg.frontend.autograd import grad
from dlg.frontend.engine import enable_grad, inference_mode, no_grad, set_grad_enabled
from dlg.frontend.tensor import Tensor
from dlg.ir.anomaly import detect_anomaly, set_anomaly as set_detect_anomaly


def backward(tensors: Any, grad_tensors: Any = None, retain_graph: bool | None = None,
             create_graph: bool = False, inputs: Any = None) -> None:
    """`t.backward(g)` for each tensor and its gradient (None for a scalar)."""
    many = not isinstance(tensors, Tensor)
    outs = list(tensors) if many else [tensors]
    seeds = [None] * len(outs) if grad_tensors is None else (
        list(grad_tensors) if many else [grad_tensors])
    for out, seed in zip(outs, seeds, strict=True):
        out.backward(seed, retain_graph, create_graph, inputs)


__all__ = ["backward", "detect_anomaly", "enable_grad", "grad", "inference_mode", "no_grad",
           "set_detect_anomaly", "set_grad_enabled"]
