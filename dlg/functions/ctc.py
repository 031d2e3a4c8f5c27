"""The connectionist temporal classification loss with PyTorch's arguments (F.ctc_loss): the
negative log-likelihood of each target sequence under every alignment of it to the input frames.

A composite of registry ops, so its gradient is autodiff's and it compiles as any graph: the
targets are spread over 2S + 1 states (a blank before, between and after the labels), each
frame's log-probabilities are gathered per state, and the forward (alpha) recursion runs in log
space, one unrolled step per frame (the frame count must be known): each state adds, by
logaddexp, itself, the state before, and the state two before where that skips a blank between
two different labels. A sample's states stop changing after its input length, and its loss is
read at its last label and the blank after it. The gradient is torch's, also to log_probs
that no log_softmax made: torch's kernel adds exp(log_probs) over each sample's input frames
(the softmax's part, which a log_softmax before it cancels), so a term of value 0 whose
gradient is that joins each loss (`_as_torch_differentiates`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.functions.args import describe, is_int, tensor
from dlg.functions.front import Front
from dlg.functions.losses import reduced
from dlg.ir.dtypes import DType
from dlg.ir.ops.arith import ISINF
from dlg.ir.ops.custom import STOP_GRADIENT
from dlg.ir.ops.elementwise import (
    ADD,
    CAST,
    DIV,
    EQ,
    EXP,
    LOG1P,
    LOGICAL_AND,
    LT,
    MAXIMUM,
    MINIMUM,
    MUL,
    NE,
    NEG,
    SUB,
    WHERE,
)
from dlg.ir.ops.gather import GATHER
from dlg.ir.ops.reduce import REDUCE_SUM
from dlg.ir.ops.shape import BROADCAST_TO, CONCAT, PAD, RESHAPE, SLICE, TAKE, UNSQUEEZE
from dlg.ir.ops.source import FULL


def logaddexp(F: Front, a: Any, b: Any) -> Any:
    """log(exp(a) + exp(b)) as max + log1p(exp(min - max)), the max taken as 0 in the
    difference where it is infinite, so that two -inf (states no alignment reaches) give -inf
    without computing inf - inf."""
    high, low = F.emit(MAXIMUM, a, b), F.emit(MINIMUM, a, b)
    dtype = F.type_of(high).dtype
    finite = F.emit(WHERE, F.emit(ISINF, high), F.lift(0.0, dtype), high)
    return F.emit(ADD, high, F.emit(LOG1P, F.emit(EXP, F.emit(SUB, low, finite))))


def _lengths(F: Front, value: Any, n: Any, what: str) -> tuple[Any, list[int] | None]:
    """Per-sample lengths as an int64 [N] tensor, and their values where given as ints."""
    if F.is_tensor(value):
        t = F.type_of(value)
        if t.dtype not in (DType.i64, DType.i32) or t.rank > 1:
            raise DlgTypeError(f"ctc_loss: {what} must be ints, one per sample, got {t}")
        return F.emit(RESHAPE, F.emit(CAST, value, dtype=DType.i64), shape=(n,)), None
    values = [value] if is_int(value) else value
    if not (isinstance(values, (tuple, list)) and all(map(is_int, values))):
        raise DlgTypeError(f"ctc_loss: {what} must be a tensor or ints, got "
                           f"{describe(F, value)}")
    if isinstance(n, int) and len(values) != n:
        raise DlgShapeError(f"ctc_loss: {what} has {len(values)} entries for {n} samples")
    return F.lift([int(v) for v in values], DType.i64), [int(v) for v in values]


def _padded(F: Front, targets: Any, n: Any, lengths: list[int] | None, unbatched: bool) -> Any:
    """The targets as [N, S], from [N, S], an unbatched [S], or all of them concatenated."""
    t = F.type_of(tensor(F, targets, "ctc_loss's targets"))
    if t.dtype not in (DType.i64, DType.i32):
        raise DlgTypeError(f"ctc_loss: targets must hold class indices, got {t}")
    if unbatched and t.rank == 1:
        return F.emit(RESHAPE, targets, shape=(1, *t.shape))
    if t.rank == 2:
        return targets
    if t.rank != 1:
        raise DlgShapeError(f"ctc_loss: targets must be [N, S] or concatenated [sum(lengths)], "
                            f"got {t}")
    if lengths is None:
        raise DlgValueError("ctc_loss: concatenated 1-d targets are split by target_lengths, "
                            "so give them as ints (or give targets padded as [N, S])")
    if t.shape[0] != sum(lengths):
        raise DlgShapeError(f"ctc_loss: the targets {t} must be the target_lengths "
                            f"{tuple(lengths)} concatenated ({sum(lengths)} in all)")
    width, starts = max(lengths, default=0), np.cumsum([0, *lengths[:-1]])
    if width == 0:
        return F.emit(FULL, shape=(n, 0), value=0, dtype=t.dtype)
    at = starts[:, None] + np.minimum(np.arange(width)[None, :], np.maximum(
        np.array(lengths)[:, None] - 1, 0))
    return F.emit(TAKE, targets, F.lift(np.minimum(at, max(t.shape[0] - 1, 0)), DType.i64),
                  axis=0)


def ctc_loss(F: Front, log_probs: Any, targets: Any, input_lengths: Any, target_lengths: Any,
             blank: Any = 0, reduction: str = "mean", zero_infinity: Any = False) -> Any:
    """-log p(target | input) summed over alignments, for log_probs [T, N, C] (or [T, C]);
    'mean' divides each loss by its target length (at least 1) before the batch mean;
    zero_infinity turns impossible alignments' inf losses (and their gradients) to 0."""
    lp = tensor(F, log_probs, "ctc_loss's log_probs")
    t = F.type_of(lp)
    if t.rank not in (2, 3) or not t.dtype.is_float:
        raise DlgShapeError(f"ctc_loss: log_probs must be float [T, N, C] or [T, C], got {t}")
    frames, classes = t.shape[0], t.shape[-1]
    if not (isinstance(frames, int) and isinstance(classes, int)):
        raise DlgShapeError(f"ctc_loss: the frame and class counts must be known, got {t}")
    if not is_int(blank) or not 0 <= blank < classes:
        raise DlgValueError(f"ctc_loss: blank must be a class index in 0..{classes - 1}, got "
                            f"{describe(F, blank)}")
    if not isinstance(zero_infinity, bool):
        raise DlgTypeError(f"ctc_loss: zero_infinity must be a bool, got "
                           f"{describe(F, zero_infinity)}")
    unbatched = t.rank == 2
    if unbatched:
        lp = F.emit(RESHAPE, lp, shape=(frames, 1, classes))
    n = F.type_of(lp).shape[1]
    in_len, _ = _lengths(F, input_lengths, n, "input_lengths")
    out_len, known = _lengths(F, target_lengths, n, "target_lengths")
    labels = _padded(F, targets, n, known, unbatched)
    tt = F.type_of(labels)
    width = tt.shape[1]
    if not isinstance(width, int):
        raise DlgShapeError(f"ctc_loss: the target length S must be known, got {tt}")
    labels = F.emit(CAST, labels, dtype=DType.i64)
    states = 2 * width + 1
    blanks = F.emit(FULL, shape=(n, 1), value=blank, dtype=DType.i64)
    with_blank = F.emit(CONCAT, blanks, labels, axis=1)  # [N, S + 1]: blank, then the labels
    s = np.arange(states)
    ext = F.emit(TAKE, with_blank, F.lift(np.where(s % 2, (s + 1) // 2, 0), DType.i64), axis=1)
    before = F.emit(TAKE, ext, F.lift(np.maximum(s - 2, 0), DType.i64), axis=1)
    skips = F.emit(LOGICAL_AND, F.emit(NE, ext, before),
                   F.lift(((s % 2 == 1) & (s >= 2)).tolist(), DType.bool))  # [N, L]
    index = F.emit(BROADCAST_TO, F.emit(UNSQUEEZE, ext, axes=(0,)), shape=(frames, n, states))
    emit = F.emit(GATHER, lp, index, axis=2)  # [T, N, L]
    dtype = t.dtype
    never = F.lift(-np.inf, dtype)

    def frame(i: int) -> Any:
        one = F.emit(SLICE, emit, axes=(0,), starts=(i,), stops=(i + 1,), steps=(1,))
        return F.emit(RESHAPE, one, shape=(n, states))

    def shifted(a: Any, k: int) -> Any:
        head = F.emit(SLICE, a, axes=(1,), starts=(0,), stops=(states - k,), steps=(1,))
        return F.emit(PAD, head, pads=((0, 0), (k, 0)), value=-np.inf)

    alpha = F.emit(WHERE, F.lift((s < 2).tolist(), DType.bool), frame(0), never)
    running = F.emit(UNSQUEEZE, in_len, axes=(1,))  # [N, 1]
    for i in range(1, frames):
        step = logaddexp(F, logaddexp(F, alpha, shifted(alpha, 1)),
                         F.emit(WHERE, skips, shifted(alpha, 2), never))
        alpha = F.emit(WHERE, F.emit(LT, F.lift(i, DType.i64), running),
                       F.emit(ADD, step, frame(i)), alpha)
    last = F.emit(MUL, F.emit(UNSQUEEZE, out_len, axes=(1,)), F.lift(2, DType.i64))  # [N, 1]
    end = F.emit(GATHER, alpha, last, axis=1)
    label = F.emit(GATHER, alpha, F.emit(MAXIMUM, F.emit(SUB, last, F.lift(1, DType.i64)),
                                         F.lift(0, DType.i64)), axis=1)
    label = F.emit(WHERE, F.emit(EQ, last, F.lift(0, DType.i64)), never, label)
    loss = F.emit(RESHAPE, F.emit(NEG, logaddexp(F, end, label)), shape=(n,))
    loss = F.emit(ADD, loss, _as_torch_differentiates(F, lp, in_len))
    if zero_infinity:
        loss = F.emit(WHERE, F.emit(ISINF, loss), F.lift(0.0, dtype), loss)
    if reduction == "mean":
        count = F.emit(CAST, F.emit(MAXIMUM, out_len, F.lift(1, DType.i64)), dtype=dtype)
        loss = F.emit(DIV, loss, count)
    if unbatched and reduction == "none":
        loss = F.emit(RESHAPE, loss, shape=())
    return reduced(F, loss, reduction, "ctc_loss")


def _as_torch_differentiates(F: Front, lp: Any, in_len: Any) -> Any:
    """Per sample [N], 0, with the gradient exp(log_probs) at its frames before its input
    length and 0 after: exp(lp) - stop_gradient(exp(lp)) summed there."""
    frames = F.type_of(lp).shape[0]
    inside = F.emit(LT, F.lift(np.arange(frames).reshape(frames, 1), DType.i64),
                    F.emit(UNSQUEEZE, in_len, axes=(0,)))  # [T, N]
    e = F.emit(EXP, lp)
    zero = F.emit(SUB, e, F.emit(STOP_GRADIENT, e))
    kept = F.emit(WHERE, F.emit(UNSQUEEZE, inside, axes=(2,)), zero,
                  F.lift(0.0, F.type_of(lp).dtype))
    return F.emit(REDUCE_SUM, kept, axes=(0, 2))
