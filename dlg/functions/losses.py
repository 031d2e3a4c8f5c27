"""Losses with PyTorch's names, argument order and options: cross_entropy (class indices or
probabilities, class weights, ignore_index, label smoothing), nll_loss, the regression losses
(mse, l1, smooth_l1, huber), binary_cross_entropy(_with_logits) with element weights, kl_div and
the margin losses (cosine_embedding, triplet_margin and gaussian_nll compose registry ops,
the rest are loss ops). PyTorch's deprecated `size_average`/`reduce` arguments are left out.
"""

from __future__ import annotations

import math
from typing import Any

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.functions import args
from dlg.functions.args import describe, is_int, is_number, tensor
from dlg.functions.front import Front
from dlg.ir.ops import REGISTRY
from dlg.functions.norms import pairwise_distance
from dlg.ir.ops.elementwise import (
    ABS,
    ADD,
    DIV,
    EQ,
    EXP,
    LOG,
    LOG1P,
    MAXIMUM,
    MINIMUM,
    MUL,
    NEG,
    RELU,
    SQRT,
    SUB,
    WHERE,
)
from dlg.ir.ops.losses import CROSS_ENTROPY, NLL_LOSS, REDUCTIONS
from dlg.ir.ops.opdef import OpDef
from dlg.ir.ops.reduce import REDUCE_MEAN, REDUCE_SUM
from dlg.ir.ops.shape import UNSQUEEZE


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
                                     reduction: str = "mean", pos_weight: Any = None) -> Any:
    """BCE on logits in a stable form, each element scaled by `weight`; `pos_weight` (one per
    class, broadcast along the last axis) scales the positive term, as PyTorch's."""
    if pos_weight is None:
        return _weighted(F, "binary_cross_entropy_with_logits", input, target, weight, reduction)
    x = tensor(F, input, "binary_cross_entropy_with_logits's input")
    y = tensor(F, target, "binary_cross_entropy_with_logits's target")
    pw = tensor(F, pos_weight, "binary_cross_entropy_with_logits's pos_weight")
    one = F.lift(1.0, F.type_of(x).dtype)
    # (1 - y) x + (1 + (pos_weight - 1) y) softplus(-x), softplus(-x) = relu(-x) + log1p(e^-|x|)
    softplus = F.emit(ADD, F.emit(RELU, F.emit(NEG, x)),
                      F.emit(LOG1P, F.emit(EXP, F.emit(NEG, F.emit(ABS, x)))))
    scale = F.emit(ADD, one, F.emit(MUL, F.emit(SUB, pw, one), y))
    loss = F.emit(ADD, F.emit(MUL, F.emit(SUB, one, y), x), F.emit(MUL, scale, softplus))
    if weight is not None:
        loss = F.emit(MUL, loss, tensor(F, weight, "binary_cross_entropy_with_logits's weight"))
    return reduced(F, loss, reduction, "binary_cross_entropy_with_logits")


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


# ---- losses over vectors: compositions of registry ops -----------------------------------------
def reduced(F: Front, loss: Any, reduction: Any, name: str) -> Any:
    args.choice(F, reduction, REDUCTIONS, f"{name}: reduction")
    return loss if reduction == "none" else F.emit(
        REDUCE_SUM if reduction == "sum" else REDUCE_MEAN, loss)


def _where_target(F: Front, target: Any, label: int, value: Any) -> Any:
    """`value` where target == label, else 0."""
    hit = F.emit(EQ, target, F.lift(label, F.type_of(target).dtype))
    return F.emit(WHERE, hit, value, F.lift(0.0, F.type_of(value).dtype))


def cosine_embedding_loss(F: Front, input1: Any, input2: Any, target: Any, margin: float = 0.0,
                          reduction: str = "mean") -> Any:
    """1 - cos(input1, input2) where target is 1, max(0, cos - margin) where it is -1 (the
    cosine over the last axis, each squared norm + 1e-12 as PyTorch)."""
    x1 = tensor(F, input1, "cosine_embedding_loss's input1")
    x2 = tensor(F, input2, "cosine_embedding_loss's input2")
    y = tensor(F, target, "cosine_embedding_loss's target")

    def dot(a: Any, b: Any) -> Any:
        return F.emit(REDUCE_SUM, F.emit(MUL, a, b), axes=(-1,))
    squares = F.emit(MUL, *(F.emit(ADD, dot(v, v), F.lift(1e-12, F.type_of(x1).dtype))
                            for v in (x1, x2)))
    cos = F.emit(DIV, dot(x1, x2), F.emit(SQRT, squares))
    one = F.lift(1.0, F.type_of(cos).dtype)
    loss = F.emit(ADD, _where_target(F, y, 1, F.emit(SUB, one, cos)),
                  _where_target(F, y, -1, F.emit(RELU, F.emit(SUB, cos, F.lift(
                      margin, F.type_of(cos).dtype)))))
    return reduced(F, loss, reduction, "cosine_embedding_loss")


def triplet_margin_loss(F: Front, anchor: Any, positive: Any, negative: Any,
                        margin: float = 1.0, p: float = 2.0, eps: float = 1e-6,
                        swap: bool = False, reduction: str = "mean") -> Any:
    """max(0, margin + d(anchor, positive) - d(anchor, negative)) with pairwise_distance d;
    `swap` uses the smaller of d(anchor, negative) and d(positive, negative)."""
    def d(a: Any, b: Any) -> Any:
        return pairwise_distance(F, a, b, p, eps)
    far = d(anchor, negative)
    if swap:
        far = F.emit(MINIMUM, far, d(positive, negative))
    near = d(anchor, positive)
    loss = F.emit(RELU, F.emit(SUB, F.emit(ADD, near, F.lift(margin, F.type_of(near).dtype)),
                               far))
    return reduced(F, loss, reduction, "triplet_margin_loss")


def gaussian_nll_loss(F: Front, input: Any, target: Any, var: Any, full: bool = False,
                      eps: float = 1e-6, reduction: str = "mean") -> Any:
    """0.5 * (log(var) + (input - target)^2 / var) (+ 0.5 log(2 pi) when full), var clamped
    below at eps; var is input-shaped, or lacks (or has 1 as) the last dim."""
    x = tensor(F, input, "gaussian_nll_loss's input")
    shape = F.type_of(x).shape
    v = tensor(F, var, "gaussian_nll_loss's var")
    vshape = F.type_of(v).shape
    if vshape == shape[:-1]:
        v = F.emit(UNSQUEEZE, v, axes=(-1,))
    elif not (vshape == shape or vshape == shape[:-1] + (1,)):
        raise DlgShapeError(f"gaussian_nll_loss: var {F.type_of(v)} must have the input's "
                            f"shape {list(shape)}, or that shape without (or with 1 as) the "
                            f"last dim")
    dtype = F.type_of(x).dtype
    v = F.emit(MAXIMUM, v, F.lift(_number(F, eps, "gaussian_nll_loss: eps"), dtype))
    diff = F.emit(SUB, x, tensor(F, target, "gaussian_nll_loss's target"))
    loss = F.emit(ADD, F.emit(LOG, v), F.emit(DIV, F.emit(MUL, diff, diff), v))
    if full:
        loss = F.emit(ADD, loss, F.lift(math.log(2 * math.pi), dtype))
    return reduced(F, F.emit(MUL, loss, F.lift(0.5, dtype)), reduction, "gaussian_nll_loss")
