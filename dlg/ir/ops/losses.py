"""Loss functions as decompositions, with torch.nn.functional's semantics.

Every loss takes `reduction` in ('mean', 'sum', 'none'); kl_div also 'batchmean'.
Classification inputs are [N, C] or [N, C, d1, ...] (or an unbatched [C]), with the class axis
at 1 (0 when unbatched), as PyTorch. `nll_loss` and `cross_entropy` take optional class weights
[C] as a third input and skip targets equal to `ignore_index`: their mean divides by the summed
weight of the counted targets, as PyTorch's does. `cross_entropy` picks its kind from the target
dtype: integer targets are class indices ([N, d1, ...]); float targets are class probabilities of
the logits' shape.
"""

from __future__ import annotations

import math

from dlg.errors import DlgAttributeError, DlgShapeError, DlgTypeError
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import (
    FLOATS,
    INDEX_INTS,
    NUMERIC,
    broadcast_shapes,
    require_dtype,
    same_dtype,
)
from dlg.ir.ops.nn import as_i64
from dlg.ir.ops.opdef import Attr, defop
from dlg.ir.types import TensorType

REDUCTIONS = ("mean", "sum", "none")
_REDUCTION = {"reduction": Attr("str", "mean", REDUCTIONS)}


def _reduced(t: TensorType, shape: tuple, reduction: str) -> TensorType:
    return TensorType(t.dtype, shape if reduction == "none" else ())


def _reduce(b, loss, reduction: str, weights=None):
    """The reduced loss; a weighted mean divides by the summed `weights` when given."""
    if reduction == "sum":
        return b.reduce_sum(loss)
    if reduction == "mean":
        return b.reduce_mean(loss) if weights is None else b.div(b.reduce_sum(loss),
                                                                  b.reduce_sum(weights))
    return loss


def _const(b, value: float, like):
    return b.constant(value, b.type_of(like).dtype)


# ---- classification ---------------------------------------------------------------------------
def _class_axis(t: TensorType) -> int:
    return 0 if t.rank == 1 else 1


def _check_class_input(op: str, x: TensorType, target: TensorType, weight: tuple,
                       ignore_index: int) -> tuple:
    """The per-sample shape of a [N, C, d...] input; checks the target and weight against it."""
    require_dtype(op, x, FLOATS, "input")
    if x.rank < 1:
        raise DlgShapeError(f"{op}: input must be [N, C, ...] or [C], got {x}")
    c = _class_axis(x)
    per_sample = x.shape[:c] + x.shape[c + 1:]
    if len(weight) > 1:
        raise DlgTypeError(f"{op} takes one weight tensor at most, got {len(weight)}")
    for w in weight:
        same_dtype(op, x, w)
        if w.shape != (x.shape[c],):
            raise DlgShapeError(f"{op}: weight must be [{x.shape[c]}] (one per class), got {w}")
    if target.dtype in INDEX_INTS:
        if target.shape != per_sample:
            raise DlgShapeError(f"{op}: class-index target must be {list(per_sample)} for input "
                                f"{x}, got {target}")
    elif op == "nll_loss" or target.dtype not in FLOATS:
        raise DlgTypeError(f"{op}: target must be int64 (or int32) class indices"
                           f"{'' if op == 'nll_loss' else ' or float probabilities'}, got {target}")
    else:
        same_dtype(op, x, target)
        if target.shape != x.shape:
            raise DlgShapeError(f"{op}: probability target must have the input's shape: "
                                f"input {x}, target {target}")
        if ignore_index >= 0:
            raise DlgAttributeError(f"{op}: ignore_index is not supported for probability "
                                    f"targets, got {ignore_index}")
    return per_sample


def _along_classes(b, v, t: TensorType):
    """A [C] vector shaped to broadcast along the class axis of `t`."""
    c = _class_axis(t)
    return b.reshape(v, shape=(1, t.shape[c]) + (1,) * (t.rank - 2)) if c else v


def _class_mask(b, t: TensorType, target):
    """[N, C, d...] booleans: true at each sample's target class."""
    classes = _along_classes(b, b.arange(stop=float(t.shape[_class_axis(t)]), dtype=DType.i64), t)
    return b.eq(b.unsqueeze(as_i64(b, target), axes=(_class_axis(t),)), classes)


def _picked(b, v, mask, axis: int):
    """v at each target class (where the mask holds), summed over the class axis."""
    return b.reduce_sum(b.where(mask, v, _const(b, 0.0, v)), axes=(axis,))


def _target_weights(b, logp, target, mask, weight: tuple, ignore_index: int):
    """Each sample's weight: weight[target] (1 without class weights), 0 where ignored."""
    t = b.type_of(logp)
    counted = b.ne(as_i64(b, target), b.constant(ignore_index, DType.i64))
    if not weight:
        return b.cast(counted, dtype=t.dtype)
    w = b.broadcast_to(_along_classes(b, weight[0], t), shape=t.shape)
    return b.where(counted, _picked(b, w, mask, _class_axis(t)), _const(b, 0.0, logp))


def _nll_infer(logp: TensorType, target: TensorType, *weight: TensorType, reduction: str,
               ignore_index: int) -> TensorType:
    return _reduced(logp, _check_class_input("nll_loss", logp, target, weight, ignore_index),
                    reduction)


def _nll_decompose(b, logp, target, *weight, reduction, ignore_index):
    t = b.type_of(logp)
    mask = _class_mask(b, t, target)
    w = _target_weights(b, logp, target, mask, weight, ignore_index)
    loss = b.neg(b.mul(_picked(b, logp, mask, _class_axis(t)), w))
    return _reduce(b, loss, reduction, w)


_CLASS_ATTRS = {**_REDUCTION, "ignore_index": Attr("int", -100)}
NLL_LOSS = defop("nll_loss", ("input", "target", "*weight"), _nll_infer,
                 decompose=_nll_decompose, attrs=_CLASS_ATTRS,
                 doc="-weight[target] * logp[target] per sample (input is log-probabilities).")


def _cross_entropy_infer(logits: TensorType, target: TensorType, *weight: TensorType,
                         reduction: str, label_smoothing: float, ignore_index: int
                         ) -> TensorType:
    if not 0.0 <= label_smoothing <= 1.0:
        raise DlgAttributeError(f"cross_entropy: label_smoothing must be in [0, 1], "
                                f"got {label_smoothing}")
    per_sample = _check_class_input("cross_entropy", logits, target, weight, ignore_index)
    return _reduced(logits, per_sample, reduction)


def _cross_entropy_decompose(b, logits, target, *weight, reduction, label_smoothing,
                             ignore_index):
    t = b.type_of(logits)
    c = _class_axis(t)
    logp = b.log_softmax(logits, axis=c)
    eps = label_smoothing
    weighted = b.mul(logp, _along_classes(b, weight[0], t)) if weight else logp
    classes = b.numel(logits, axes=(c,), dtype=t.dtype)
    if b.type_of(target).dtype in FLOATS:
        if eps:
            target = b.add(b.mul(target, _const(b, 1 - eps, logits)),
                           b.div(_const(b, eps, logits), classes))
        return _reduce(b, b.neg(b.reduce_sum(b.mul(target, weighted), axes=(c,))), reduction)
    mask = _class_mask(b, t, target)
    w = _target_weights(b, logp, target, mask, weight, ignore_index)
    loss = b.neg(b.mul(_picked(b, logp, mask, c), w))
    if eps:
        # PyTorch: (1 - eps) * nll + eps * the mean over classes of -weight * logp.
        smooth = b.div(b.neg(b.reduce_sum(weighted, axes=(c,))), classes)
        counted = b.ne(as_i64(b, target), b.constant(ignore_index, DType.i64))
        loss = b.add(b.mul(loss, _const(b, 1 - eps, logits)),
                     b.where(counted, b.mul(smooth, _const(b, eps, logits)),
                             _const(b, 0.0, logits)))
    return _reduce(b, loss, reduction, w)


CROSS_ENTROPY = defop("cross_entropy", ("input", "target", "*weight"), _cross_entropy_infer,
                      decompose=_cross_entropy_decompose,
                      attrs={**_CLASS_ATTRS, "label_smoothing": Attr("float", 0.0)},
                      doc="log_softmax + nll, or -sum(p * log_softmax) for probability targets.")


# ---- pointwise losses ---------------------------------------------------------------------------
def _pointwise_infer(name: str, inputs: tuple[str, ...], labels: bool):
    def infer(*xs: TensorType, reduction: str, **_: object) -> TensorType:
        floats = xs[:-1] if labels else xs
        for t, what in zip(floats, inputs):
            require_dtype(name, t, FLOATS, what)
        if labels:
            require_dtype(name, xs[-1], NUMERIC, inputs[-1])
        same_dtype(name, *floats)
        if len(xs) == 2 and xs[0].shape != xs[1].shape:
            raise DlgShapeError(f"{name}: input and target shapes differ: input {xs[0]}, "
                                f"target {xs[1]}")
        shape = broadcast_shapes(name, *(t.shape for t in xs))
        return _reduced(xs[0], shape, reduction)
    return infer


def _pointwise(name: str, elementwise, doc: str, inputs: tuple[str, ...] = ("input", "target"),
               attrs: dict[str, Attr] | None = None, reductions: tuple[str, ...] = REDUCTIONS,
               labels: bool = False):
    """A loss that applies `elementwise(b, *inputs, **attrs)` and reduces it; with `labels`, the
    last input holds +-1 labels, compared exactly, so it may be an integer tensor."""
    def decompose(b, *xs, reduction, **attrs):
        loss = elementwise(b, *xs, **attrs)
        if reduction == "batchmean":  # kl_div: the sum over the batch size
            batch = b.numel(xs[0], axes=(0,), dtype=b.type_of(loss).dtype)
            return b.div(b.reduce_sum(loss), batch) if b.type_of(loss).rank else loss
        return _reduce(b, loss, reduction)
    return defop(name, inputs, _pointwise_infer(name, inputs, labels), decompose=decompose,
                 attrs={"reduction": Attr("str", "mean", reductions), **(attrs or {})}, doc=doc)


def _squared(b, x, y):
    d = b.sub(x, y)
    return b.mul(d, d)


def softplus(b, x):
    """log(1 + exp(x)) as max(x, 0) + log1p(exp(-|x|)): never exponentiates a large number."""
    return b.add(b.relu(x), b.log1p(b.exp(b.neg(b.abs(x)))))


def _bce(b, p, y):
    one, floor = _const(b, 1.0, p), _const(b, -100.0, p)
    log_p = b.maximum(b.log(p), floor)  # PyTorch clamps the logs at -100
    log_q = b.maximum(b.log(b.sub(one, p)), floor)
    return b.neg(b.add(b.mul(y, log_p), b.mul(b.sub(one, y), log_q)))


def _bce_with_logits(b, x, y):
    return b.sub(softplus(b, x), b.mul(x, y))


def _xlogx(b, t):
    """t * log(t), 0 at t = 0 (with a zero gradient there, as PyTorch's xlogy)."""
    positive = b.gt(t, _const(b, 0.0, t))
    return b.mul(t, b.log(b.where(positive, t, _const(b, 1.0, t))))


def _kl_div(b, x, t, log_target):
    if log_target:
        return b.mul(b.exp(t), b.sub(t, x))
    return b.sub(_xlogx(b, t), b.mul(t, x))


def _quadratic_then_linear(b, x, y, width: float, slope: float):
    """0.5 d^2 * slope / width for |d| < width, else slope * (|d| - width / 2)."""
    d = b.abs(b.sub(x, y))
    if width == 0.0:
        return b.mul(d, _const(b, slope, d))
    quadratic = b.mul(b.mul(d, d), _const(b, 0.5 * slope / width, d))
    linear = b.mul(b.sub(d, _const(b, 0.5 * width, d)), _const(b, slope, d))
    return b.where(b.lt(d, _const(b, width, d)), quadratic, linear)


def _poisson_nll(b, x, t, log_input, full, eps):
    if log_input:
        loss = b.sub(b.exp(x), b.mul(t, x))
    else:
        loss = b.sub(x, b.mul(t, b.log(b.add(x, _const(b, eps, x)))))
    if full:  # Stirling's term t log t - t + log(2 pi t) / 2, where t > 1
        stirling = b.add(b.sub(_xlogx(b, t), t),
                         b.mul(b.log(b.mul(t, _const(b, 2 * math.pi, t))), _const(b, 0.5, t)))
        loss = b.add(loss, b.where(b.gt(t, _const(b, 1.0, t)), stirling, _const(b, 0.0, t)))
    return loss


def _signed_target(b, y, value: float):
    return b.eq(y, _const(b, value, y))


def _hinge_embedding(b, x, y, margin):
    zero = _const(b, 0.0, x)
    below = b.relu(b.sub(_const(b, margin, x), x))
    return b.add(b.where(_signed_target(b, y, 1.0), zero, below),
                 b.where(_signed_target(b, y, -1.0), zero, x))


def _smooth_l1(b, x, y, beta):
    return _quadratic_then_linear(b, x, y, beta, 1.0)


def _huber(b, x, y, delta):
    return _quadratic_then_linear(b, x, y, delta, delta)


def _margin_ranking(b, x1, x2, y, margin):
    return b.relu(b.add(b.mul(b.neg(y), b.sub(x1, x2)), _const(b, margin, x1)))


MSE_LOSS = _pointwise("mse_loss", _squared, "(input - target)^2.")
L1_LOSS = _pointwise("l1_loss", lambda b, x, y: b.abs(b.sub(x, y)), "|input - target|.")
BCE = _pointwise("binary_cross_entropy", _bce, "BCE on probabilities, logs clamped at -100.")
BCE_WITH_LOGITS = _pointwise("binary_cross_entropy_with_logits", _bce_with_logits,
                             "BCE on logits, stable form.")
KL_DIV = _pointwise("kl_div", _kl_div, "target * (log(target) - input); input holds log-probs.",
                    attrs={"log_target": Attr("bool", False)},
                    reductions=REDUCTIONS + ("batchmean",))
SMOOTH_L1_LOSS = _pointwise("smooth_l1_loss", _smooth_l1,
                            "0.5 d^2 / beta where |d| < beta, else |d| - beta / 2.",
                            attrs={"beta": Attr("float", 1.0)})
HUBER_LOSS = _pointwise("huber_loss", _huber,
                        "0.5 d^2 where |d| < delta, else delta * (|d| - delta / 2).",
                        attrs={"delta": Attr("float", 1.0)})
SOFT_MARGIN_LOSS = _pointwise("soft_margin_loss", lambda b, x, y: softplus(b, b.neg(b.mul(x, y))),
                              "log(1 + exp(-target * input)), targets +-1.")
POISSON_NLL_LOSS = _pointwise(
    "poisson_nll_loss", _poisson_nll,
    "exp(input) - target * input (log_input), else input - target * log(input + eps); "
    "Stirling's term when full.",
    attrs={"log_input": Attr("bool", True), "full": Attr("bool", False),
           "eps": Attr("float", 1e-8)})
HINGE_EMBEDDING_LOSS = _pointwise("hinge_embedding_loss", _hinge_embedding,
                                  "input where target is 1, max(0, margin - input) where -1.",
                                  attrs={"margin": Attr("float", 1.0)}, labels=True)
MARGIN_RANKING_LOSS = _pointwise("margin_ranking_loss", _margin_ranking,
                                 "max(0, -target * (input1 - input2) + margin).",
                                 inputs=("input1", "input2", "target"),
                                 attrs={"margin": Attr("float", 0.0)})

# every loss; each function takes its op's attributes as keywords of the same names
LOSSES = (NLL_LOSS, CROSS_ENTROPY, MSE_LOSS, L1_LOSS, BCE, BCE_WITH_LOGITS, KL_DIV, SMOOTH_L1_LOSS,
          HUBER_LOSS, SOFT_MARGIN_LOSS, POISSON_NLL_LOSS, HINGE_EMBEDDING_LOSS, MARGIN_RANKING_LOSS)
