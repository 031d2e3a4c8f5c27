"""Loss functions as decompositions, with torch.nn.functional's semantics.

Every loss takes `reduction` in ('mean', 'sum', 'none'). Classification inputs are [N, C] or
[N, C, d1, ...] (or an unbatched [C]), with the class axis at 1 (0 when unbatched), as PyTorch.
`cross_entropy` picks its kind from the target dtype: integer targets are class indices
([N, d1, ...]); float targets are class probabilities of the logits' shape. No class weights, no
ignore_index.
"""

from __future__ import annotations

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import FLOATS, INTS, require_dtype, same_dtype
from dlg.ir.ops.nn import as_i64
from dlg.ir.ops.opdef import Attr, defop
from dlg.ir.types import TensorType

_REDUCTION = {"reduction": Attr("str", "mean", ("mean", "sum", "none"))}


def _reduced(t: TensorType, shape: tuple, reduction: str) -> TensorType:
    return TensorType(t.dtype, shape if reduction == "none" else ())


def _reduce(b, loss, reduction: str):
    if reduction == "sum":
        return b.reduce_sum(loss)
    if reduction == "mean":
        return b.reduce_mean(loss)
    return loss


def _class_axis(t: TensorType) -> int:
    return 0 if t.rank == 1 else 1


def _check_class_input(op: str, x: TensorType, target: TensorType) -> tuple:
    """The per-sample shape of a [N, C, d...] input; checks the target against it."""
    require_dtype(op, x, FLOATS, "input")
    if x.rank < 1:
        raise DlgShapeError(f"{op}: input must be [N, C, ...] or [C], got {x}")
    c = _class_axis(x)
    per_sample = x.shape[:c] + x.shape[c + 1:]
    if target.dtype in INTS:
        if target.shape != per_sample:
            raise DlgShapeError(f"{op}: class-index target must be {list(per_sample)} for input "
                                f"{x}, got {target}")
    elif op == "nll_loss" or target.dtype not in FLOATS:
        raise DlgTypeError(f"{op}: target must be integer class indices"
                           f"{'' if op == 'nll_loss' else ' or float probabilities'}, got {target}")
    else:
        same_dtype(op, x, target)
        if target.shape != x.shape:
            raise DlgShapeError(f"{op}: probability target must have the input's shape: "
                                f"input {x}, target {target}")
    return per_sample


def _picked(b, logp, target):
    """logp at each target class along the class axis: where(one_hot mask, logp, 0), summed."""
    t = b.type_of(logp)
    c = _class_axis(t)
    classes = b.arange(stop=float(t.shape[c]), dtype=DType.i64)
    if t.rank > 1:
        classes = b.reshape(classes, shape=(1, t.shape[c]) + (1,) * (t.rank - 2))
    mask = b.eq(b.unsqueeze(as_i64(b, target), axes=(c,)), classes)
    return b.reduce_sum(b.where(mask, logp, b.constant(0.0, t.dtype)), axes=(c,))


def _nll_infer(logp: TensorType, target: TensorType, reduction: str) -> TensorType:
    return _reduced(logp, _check_class_input("nll_loss", logp, target), reduction)


NLL_LOSS = defop("nll_loss", ("input", "target"), _nll_infer,
                 decompose=lambda b, logp, target, reduction:
                     _reduce(b, b.neg(_picked(b, logp, target)), reduction),
                 attrs=_REDUCTION, doc="-logp[target] per sample (input is log-probabilities).")


def _cross_entropy_infer(logits: TensorType, target: TensorType, reduction: str,
                         label_smoothing: float) -> TensorType:
    if not 0.0 <= label_smoothing <= 1.0:
        raise DlgTypeError(f"cross_entropy: label_smoothing must be in [0, 1], "
                           f"got {label_smoothing}")
    return _reduced(logits, _check_class_input("cross_entropy", logits, target), reduction)


def _cross_entropy_decompose(b, logits, target, reduction, label_smoothing):
    t = b.type_of(logits)
    c = _class_axis(t)
    logp = b.log_softmax(logits, axis=c)
    eps = label_smoothing
    if b.type_of(target).dtype in FLOATS:
        if eps:
            target = b.add(b.mul(target, b.constant(1 - eps, t.dtype)),
                           b.div(b.constant(eps, t.dtype), b.numel(logits, axes=(c,),
                                                                    dtype=t.dtype)))
        loss = b.neg(b.reduce_sum(b.mul(target, logp), axes=(c,)))
        return _reduce(b, loss, reduction)
    loss = b.neg(_picked(b, logp, target))
    if eps:
        # PyTorch: (1 - eps) * nll + eps * mean over classes of -logp.
        smooth = b.div(b.neg(b.reduce_sum(logp, axes=(c,))),
                       b.numel(logits, axes=(c,), dtype=t.dtype))
        loss = b.add(b.mul(loss, b.constant(1 - eps, t.dtype)),
                     b.mul(smooth, b.constant(eps, t.dtype)))
    return _reduce(b, loss, reduction)


CROSS_ENTROPY = defop("cross_entropy", ("input", "target"), _cross_entropy_infer,
                      decompose=_cross_entropy_decompose,
                      attrs={**_REDUCTION, "label_smoothing": Attr("float", 0.0)},
                      doc="log_softmax + nll, or -sum(p * log_softmax) for probability targets.")


def _pointwise_infer(name: str):
    def infer(x: TensorType, y: TensorType, reduction: str) -> TensorType:
        require_dtype(name, x, FLOATS, "input")
        same_dtype(name, x, y)
        if x.shape != y.shape:
            raise DlgShapeError(f"{name}: input and target shapes differ: input {x}, target {y}")
        return _reduced(x, x.shape, reduction)
    return infer


def _pointwise(name: str, elementwise, doc: str) -> None:
    defop(name, ("input", "target"), _pointwise_infer(name),
          decompose=lambda b, x, y, reduction: _reduce(b, elementwise(b, x, y), reduction),
          attrs=_REDUCTION, doc=doc)


def _squared(b, x, y):
    d = b.sub(x, y)
    return b.mul(d, d)


def _bce(b, p, y):
    dtype = b.type_of(p).dtype
    one, floor = b.constant(1.0, dtype), b.constant(-100.0, dtype)
    log_p = b.maximum(b.log(p), floor)  # PyTorch clamps the logs at -100
    log_q = b.maximum(b.log(b.sub(one, p)), floor)
    return b.neg(b.add(b.mul(y, log_p), b.mul(b.sub(one, y), log_q)))


def _bce_with_logits(b, x, y):
    # max(x, 0) - x*y + log(1 + exp(-|x|)): never exponentiates a large positive number.
    dtype = b.type_of(x).dtype
    softplus = b.log(b.add(b.constant(1.0, dtype), b.exp(b.neg(b.abs(x)))))
    return b.add(b.sub(b.relu(x), b.mul(x, y)), softplus)


_pointwise("mse_loss", _squared, "(input - target)^2.")
_pointwise("l1_loss", lambda b, x, y: b.abs(b.sub(x, y)), "|input - target|.")
_pointwise("binary_cross_entropy", _bce, "BCE on probabilities, logs clamped at -100.")
_pointwise("binary_cross_entropy_with_logits", _bce_with_logits, "BCE on logits, stable form.")
