"""Losses with PyTorch's names, argument order and options: cross_entropy (class indices or
probabilities, class weights, ignore_index, label smoothing), nll_loss, the regression losses
(mse, l1, smooth_l1, huber), binary_cross_entropy(_with_logits) with element weights, kl_div and
the margin losses. PyTorch's deprecated `size_average`/`reduce` arguments are left out.
"""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgTypeError
from dlg.functions import args
from dlg.functions.args import describe, is_int, is_number, tensor
from dlg.functions.front import Front
from dlg.ir.ops import REGISTRY
from dlg.ir.ops.elementwise import MUL
from dlg.ir.ops.losses import CROSS_ENTROPY, NLL_LOSS, REDUCTIONS
from dlg.ir.ops.opdef import OpDef
from dlg.ir.ops.reduce import REDUCE_MEAN, REDUCE_SUM


def _emit(F: Front, op: OpDef, inputs: tuple[Any, ...], reduction: Any, **attrs: Any) -> Any:
    names = op.inputs if not op.variadic else op.inputs[:-1] + ("weight",)
    tensors = [tensor(F, x, f"{op.name}'s {what}") for x, what in zip(inputs, names)]
    choices = op.attrs["reduction"].choices
    return F.emit(op, *tensors, reduction=args.choice(F, reduction, choices,
                                                      f"{op.name}: reduction"),
                  **args.attributes(F, op, attrs))


def _number(F: Front, value: Any, what: str, low: float = 0.0) -> float:
    if not is_number(value) or value < low:
        raise DlgTypeError(f"{what} must be a number >= {low}, got {describe(F, value)}")
    return float(value)


def _class_options(F: Front, weight: Any, ignore_index: Any) -> tuple[Any, ...]:
    if not is_int(ignore_index):
        raise DlgTypeError(f"ignore_index must be an int, got {describe(F, ignore_index)}")
    return () if weight is None else (weight,)


def cross_entropy(F: Front, input: Any, target: Any, weight: Any = None,
                  ignore_index: Any = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Any:
    """log_softmax over the class axis 1, then the negative log-likelihood of the target
    (class indices), or -sum(target * log_softmax) for class probabilities."""
    weights = _class_options(F, weight, ignore_index)
    return _emit(F, CROSS_ENTROPY, (input, target, *weights), reduction,
                 label_smoothing=label_smoothing, ignore_index=ignore_index)


def nll_loss(F: Front, input: Any, target: Any, weight: Any = None, ignore_index: Any = -100,
             reduction: str = "mean") -> Any:
    """-weight[target] * input[target] per sample; input holds log-probabilities. The mean
    divides by the summed weight of the targets not equal to ignore_index."""
    weights = _class_options(F, weight, ignore_index)
    return _emit(F, NLL_LOSS, (input, target, *weights), reduction, ignore_index=ignore_index)


def mse_loss(F: Front, input: Any, target: Any, reduction: str = "mean") -> Any:
    """(input - target)^2."""
    return _emit(F, REGISTRY["mse_loss"], (input, target), reduction)


def l1_loss(F: Front, input: Any, target: Any, reduction: str = "mean") -> Any:
    """|input - target|."""
    return _emit(F, REGISTRY["l1_loss"], (input, target), reduction)


def smooth_l1_loss(F: Front, input: Any, target: Any, reduction: str = "mean",
                   beta: float = 1.0) -> Any:
    """0.5 d^2 / beta where |d| < beta, else |d| - beta / 2 (l1_loss when beta is 0)."""
    return _emit(F, REGISTRY["smooth_l1_loss"], (input, target), reduction,
                 beta=_number(F, beta, "smooth_l1_loss: beta"))


def huber_loss(F: Front, input: Any, target: Any, reduction: str = "mean",
               delta: float = 1.0) -> Any:
    """0.5 d^2 where |d| < delta, else delta * (|d| - delta / 2)."""
    if is_number(delta) and delta <= 0:
        raise DlgTypeError(f"huber_loss: delta must be positive, got {describe(F, delta)}")
    return _emit(F, REGISTRY["huber_loss"], (input, target), reduction,
                 delta=_number(F, delta, "huber_loss: delta"))


def _weighted(F: Front, name: str, input: Any, target: Any, weight: Any, reduction: Any) -> Any:
    """A pointwise loss scaled by `weight` (broadcast to the loss) before the reduction."""
    op = REGISTRY[name]
    if weight is None:
        return _emit(F, op, (input, target), reduction)
    args.choice(F, reduction, REDUCTIONS, f"{name}: reduction")
    loss = F.emit(MUL, _emit(F, op, (input, target), "none"),
                  tensor(F, weight, f"{name}'s weight"))
    return loss if reduction == "none" else F.emit(
        REDUCE_SUM if reduction == "sum" else REDUCE_MEAN, loss)


def binary_cross_entropy(F: Front, input: Any, target: Any, weight: Any = None,
                         reduction: str = "mean") -> Any:
    """BCE on probabilities (logs clamped at -100), each element scaled by `weight`."""
    return _weighted(F, "binary_cross_entropy", input, target, weight, reduction)


def binary_cross_entropy_with_logits(F: Front, input: Any, target: Any, weight: Any = None,
                                     reduction: str = "mean") -> Any:
    """BCE on logits in a stable form, each element scaled by `weight`."""
    return _weighted(F, "binary_cross_entropy_with_logits", input, target, weight, reduction)


def kl_div(F: Front, input: Any, target: Any, reduction: str = "mean",
           log_target: bool = False) -> Any:
    """target * (log(target) - input), input log-probabilities (target too with log_target);
    'batchmean' divides the sum by the batch size (the mathematically right KL mean)."""
    return _emit(F, REGISTRY["kl_div"], (input, target), reduction, log_target=log_target)


def soft_margin_loss(F: Front, input: Any, target: Any, reduction: str = "mean") -> Any:
    """log(1 + exp(-target * input)) with targets +-1."""
    return _emit(F, REGISTRY["soft_margin_loss"], (input, target), reduction)


def poisson_nll_loss(F: Front, input: Any, target: Any, log_input: bool = True,
                     full: bool = False, eps: float = 1e-8, reduction: str = "mean") -> Any:
    """The Poisson negative log-likelihood of `target` with rate exp(input) (log_input) or
    input; `full` adds Stirling's approximation of log(target!)."""
    return _emit(F, REGISTRY["poisson_nll_loss"], (input, target), reduction,
                 log_input=log_input, full=full, eps=eps)


def hinge_embedding_loss(F: Front, input: Any, target: Any, margin: float = 1.0,
                         reduction: str = "mean") -> Any:
    """input where target is 1, max(0, margin - input) where it is -1."""
    return _emit(F, REGISTRY["hinge_embedding_loss"], (input, target), reduction, margin=margin)


def margin_ranking_loss(F: Front, input1: Any, input2: Any, target: Any, margin: float = 0.0,
                        reduction: str = "mean") -> Any:
    """max(0, -target * (input1 - input2) + margin), targets +-1."""
    return _emit(F, REGISTRY["margin_ranking_loss"], (input1, input2, target), reduction,
                 margin=margin)
