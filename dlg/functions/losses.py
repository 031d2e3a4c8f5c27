"""Losses with PyTorch's names and options: cross_entropy (class indices or probabilities,
label smoothing), nll_loss, mse_loss, l1_loss, binary_cross_entropy(_with_logits)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dlg.functions import args
from dlg.functions.args import tensor
from dlg.functions.front import Front
from dlg.ir.ops import REGISTRY
from dlg.ir.ops.losses import CROSS_ENTROPY, NLL_LOSS
from dlg.ir.ops.opdef import OpDef

REDUCTIONS = ("mean", "sum", "none")


def _emit(F: Front, op: OpDef, input: Any, target: Any, reduction: Any, **attrs: Any) -> Any:
    return F.emit(op, tensor(F, input, f"{op.name}'s input"),
                  tensor(F, target, f"{op.name}'s target"),
                  reduction=args.choice(F, reduction, REDUCTIONS, f"{op.name}: reduction"),
                  **attrs)


def cross_entropy(F: Front, input: Any, target: Any, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Any:
    """log_softmax over axis 1, then the negative log-likelihood of the target."""
    return _emit(F, CROSS_ENTROPY, input, target, reduction, label_smoothing=label_smoothing)


def nll_loss(F: Front, input: Any, target: Any, reduction: str = "mean") -> Any:
    """-input[target] per sample; input holds log-probabilities."""
    return _emit(F, NLL_LOSS, input, target, reduction)


def _pointwise(op: OpDef) -> Callable[..., Any]:
    def loss(F: Front, input: Any, target: Any, reduction: str = "mean") -> Any:
        return _emit(F, op, input, target, reduction)
    loss.__name__ = loss.__qualname__ = op.name
    loss.__doc__ = op.doc
    return loss


mse_loss = _pointwise(REGISTRY["mse_loss"])
l1_loss = _pointwise(REGISTRY["l1_loss"])
binary_cross_entropy = _pointwise(REGISTRY["binary_cross_entropy"])
binary_cross_entropy_with_logits = _pointwise(REGISTRY["binary_cross_entropy_with_logits"])
