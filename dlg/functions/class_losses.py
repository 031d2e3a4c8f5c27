"""Margin losses over class scores, with PyTorch's arguments: multi_margin_loss (one target class
per sample), multilabel_margin_loss (target classes listed, -1 ends the list) and
multilabel_soft_margin_loss (a 0/1 target per class). Each composes registry ops on [N, C]
scores (one unbatched [C] sample runs as a batch of one), so gradients and compilation follow.
"""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.functions.args import describe, tensor
from dlg.functions.front import Front
from dlg.functions.gather import gather
from dlg.functions.losses import reduced
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import (
    ADD,
    CAST,
    EQ,
    LOGICAL_AND,
    LOGSIGMOID,
    MUL,
    NEG,
    RELU,
    SUB,
    WHERE,
)
from dlg.ir.ops.gather import GATHER
from dlg.ir.ops.nn import ONE_HOT
from dlg.ir.ops.reduce import REDUCE_MEAN, REDUCE_SUM
from dlg.ir.ops.shape import RESHAPE, UNSQUEEZE
from dlg.ir.ops.sort import CUMSUM


def _scores(F: Front, input: Any, target: Any, name: str, target_rank: int
            ) -> tuple[Any, Any, int, bool]:
    """input as [N, C] and target as its batch (target_rank more dims), the class count, and
    whether one unbatched sample was given."""
    x = tensor(F, input, f"{name}'s input")
    y = tensor(F, target, f"{name}'s target")
    t, ty = F.type_of(x), F.type_of(y)
    if t.rank not in (1, 2) or ty.rank != t.rank - 1 + target_rank:
        raise DlgShapeError(f"{name}: input {t} must be [N, C] or [C], with the target "
                            f"{'the same shape' if target_rank else '[N] or []'}; got {ty}")
    if ty.dtype not in (DType.i64, DType.i32):
        raise DlgTypeError(f"{name}: target must hold class indices (int64), got {ty}")
    classes = t.shape[-1]
    if not isinstance(classes, int):
        raise DlgShapeError(f"{name}: the class count (input's last dim) must be known, got {t}")
    if t.rank == 2:
        return x, y, classes, False
    return (F.emit(RESHAPE, x, shape=(1, classes)),
            F.emit(RESHAPE, y, shape=(1,) + tuple(ty.shape)), classes, True)


def _per_sample(F: Front, loss: Any, unbatched: bool, reduction: Any, name: str) -> Any:
    """The [N] losses reduced (the unbatched one as a 0-d tensor)."""
    if unbatched:
        loss = F.emit(RESHAPE, loss, shape=())
    return reduced(F, loss, reduction, name)


def multi_margin_loss(F: Front, input: Any, target: Any, p: Any = 1, margin: float = 1.0,
                      weight: Any = None, reduction: str = "mean") -> Any:
    """sum over classes i != y of max(0, margin - x[y] + x[i])^p (p 1 or 2), scaled by
    weight[y], over C."""
    if p not in (1, 2) or isinstance(p, bool):
        raise DlgTypeError(f"multi_margin_loss: p must be 1 or 2, got {describe(F, p)}")
    x, y, classes, unbatched = _scores(F, input, target, "multi_margin_loss", 0)
    dtype = F.type_of(x).dtype
    picked = gather(F, x, 1, F.emit(UNSQUEEZE, y, axes=(-1,)))       # x[y]: [N, 1]
    z = F.emit(RELU, F.emit(ADD, F.emit(SUB, F.lift(float(margin), dtype), picked), x))
    if p == 2:
        z = F.emit(MUL, z, z)
    others = F.emit(SUB, F.lift(1.0, dtype), F.emit(ONE_HOT, y, num_classes=classes,
                                                   dtype=dtype))
    z = F.emit(MUL, z, others)
    if weight is not None:
        w = tensor(F, weight, "multi_margin_loss's weight")
        z = F.emit(MUL, z, F.emit(UNSQUEEZE, F.emit(GATHER, w, y, axis=0), axes=(-1,)))
    loss = F.emit(REDUCE_MEAN, z, axes=(1,))
    return _per_sample(F, loss, unbatched, reduction, "multi_margin_loss")


def multilabel_margin_loss(F: Front, input: Any, target: Any, reduction: str = "mean") -> Any:
    """sum over the target classes j (target's leading entries up to the first -1) and the
    other classes i of max(0, 1 - (x[j] - x[i])), over C."""
    x, y, classes, unbatched = _scores(F, input, target, "multilabel_margin_loss", 1)
    dtype, index = F.type_of(x).dtype, F.type_of(y).dtype
    ended = F.emit(CAST, F.emit(EQ, y, F.lift(-1, index)), dtype=DType.i32)
    listed = F.emit(EQ, F.emit(CUMSUM, ended, axis=1), F.lift(0, DType.i32))  # before a -1
    safe = F.emit(WHERE, listed, y, F.lift(0, index))
    chosen = F.emit(ONE_HOT, F.emit(WHERE, listed, y, F.lift(-1, index)),
                    num_classes=classes, dtype=dtype)                   # [N, j, C]; -1: none
    other = F.emit(EQ, F.emit(REDUCE_SUM, chosen, axes=(1,), keepdims=True),
                   F.lift(0.0, dtype))                                  # [N, 1, i]
    pairs = F.emit(LOGICAL_AND, F.emit(UNSQUEEZE, listed, axes=(-1,)), other)
    gap = F.emit(SUB, F.emit(UNSQUEEZE, gather(F, x, 1, safe), axes=(-1,)),
                 F.emit(UNSQUEEZE, x, axes=(1,)))                       # x[j] - x[i]
    z = F.emit(WHERE, pairs, F.emit(RELU, F.emit(SUB, F.lift(1.0, dtype), gap)),
               F.lift(0.0, dtype))
    loss = F.emit(REDUCE_MEAN, F.emit(REDUCE_SUM, z, axes=(1,)), axes=(1,))
    return _per_sample(F, loss, unbatched, reduction, "multilabel_margin_loss")


def multilabel_soft_margin_loss(F: Front, input: Any, target: Any, weight: Any = None,
                                reduction: str = "mean") -> Any:
    """-(y log sigmoid(x) + (1 - y) log sigmoid(-x)), scaled by a weight per class, averaged
    over the classes (the last axis)."""
    x = tensor(F, input, "multilabel_soft_margin_loss's input")
    dtype = F.type_of(x).dtype
    y = tensor(F, target, "multilabel_soft_margin_loss's target")
    if F.type_of(y).dtype != dtype:
        y = F.emit(CAST, y, dtype=dtype)
    one = F.lift(1.0, dtype)
    loss = F.emit(NEG, F.emit(ADD, F.emit(MUL, y, F.emit(LOGSIGMOID, x)),
                              F.emit(MUL, F.emit(SUB, one, y),
                                     F.emit(LOGSIGMOID, F.emit(NEG, x)))))
    if weight is not None:
        loss = F.emit(MUL, loss, tensor(F, weight, "multilabel_soft_margin_loss's weight"))
    return reduced(F, F.emit(REDUCE_MEAN, loss, axes=(-1,)), reduction,
                   "multilabel_soft_margin_loss")

