"""Loss modules: each holds its options and calls its function of `dlg.nn.functional`."""

from __future__ import annotations

from typing import Any

from dlg.frontend import functional as F
from dlg.frontend.nn.module import Module
from dlg.frontend.tensor import Tensor


class _Loss(Module):
    fn: Any = None

    def __init__(self, reduction: str = "mean", **kwargs: Any):
        super().__init__()
        self.kwargs = {"reduction": reduction, **kwargs}

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return type(self).fn(input, target, **self.kwargs)


class CrossEntropyLoss(_Loss):
    fn = staticmethod(F.cross_entropy)

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(reduction, label_smoothing=label_smoothing)


class NLLLoss(_Loss):
    fn = staticmethod(F.nll_loss)


class MSELoss(_Loss):
    fn = staticmethod(F.mse_loss)


class L1Loss(_Loss):
    fn = staticmethod(F.l1_loss)


class BCEWithLogitsLoss(_Loss):
    fn = staticmethod(F.binary_cross_entropy_with_logits)


class BCELoss(_Loss):
    fn = staticmethod(F.binary_cross_entropy)
