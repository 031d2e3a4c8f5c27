"""Loss modules (and CosineSimilarity, PairwiseDistance): each holds its options with
torch.nn's names and calls its function of `dlg.nn.functional`. A class weight (or pos_weight)
is a buffer, as in torch, so it appears in the state_dict when given."""

from __future__ import annotations

from typing import Any

from dlg.frontend import functional as F
from dlg.frontend.nn.module import Module
from dlg.frontend.tensor import Tensor, call


def legacy_reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """torch's deprecated size_average/reduce pair, where given, as a reduction."""
    if size_average is None and reduce is None:
        return reduction
    if reduce is False:
        return "none"
    return "sum" if size_average is False else "mean"


class _Loss(Module):
    fn = ""          # its function in dlg.nn.functional
    buffers: tuple[str, ...] = ()   # tensor options, kept as buffers

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean", **options: Any):
        super().__init__()
        self.reduction = legacy_reduction(size_average, reduce, reduction)
        self._options = tuple(options)
        for name, value in options.items():
            if name in self.buffers and value is not None:
                self.register_buffer(name, value if isinstance(value, Tensor) else Tensor(value))
            else:
                setattr(self, name, value)

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002 (torch's names)
        options = {name: getattr(self, name) for name in self._options}
        given = {k: v for k, v in options.items() if v is not None or k not in self.buffers}
        return getattr(F, self.fn)(input, target, reduction=self.reduction, **given)


class L1Loss(_Loss):
    fn = "l1_loss"


class MSELoss(_Loss):
    fn = "mse_loss"


class CrossEntropyLoss(_Loss):
    fn, buffers = "cross_entropy", ("weight",)

    def __init__(self, weight: Any = None, size_average: bool | None = None,
                 ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(size_average, reduce, reduction, weight=weight,
                         ignore_index=ignore_index, label_smoothing=label_smoothing)


class NLLLoss(_Loss):
    fn, buffers = "nll_loss", ("weight",)

    def __init__(self, weight: Any = None, size_average: bool | None = None,
                 ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction, weight=weight,
                         ignore_index=ignore_index)


class BCELoss(_Loss):
    fn, buffers = "binary_cross_entropy", ("weight",)

    def __init__(self, weight: Any = None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction, weight=weight)


class BCEWithLogitsLoss(_Loss):
    fn, buffers = "binary_cross_entropy_with_logits", ("weight", "pos_weight")

    def __init__(self, weight: Any = None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean", pos_weight: Any = None):
        super().__init__(size_average, reduce, reduction, weight=weight, pos_weight=pos_weight)


class KLDivLoss(_Loss):
    fn = "kl_div"

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean", log_target: bool = False):
        super().__init__(size_average, reduce, reduction, log_target=log_target)


class SmoothL1Loss(_Loss):
    fn = "smooth_l1_loss"

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean", beta: float = 1.0):
        super().__init__(size_average, reduce, reduction, beta=beta)


class HuberLoss(_Loss):
    fn = "huber_loss"

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction=reduction, delta=delta)


class CosineSimilarity(Module):
    def __init__(self, dim: int = 1, eps: float = 1e-8):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return call("cosine_similarity", x1, x2, self.dim, self.eps)


class PairwiseDistance(Module):
    """||x1 - x2 + eps||_p over the last axis (F.pairwise_distance)."""

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return call("pairwise_distance", x1, x2, self.norm, self.eps, self.keepdim)
