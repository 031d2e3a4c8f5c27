"""Loss modules (and CosineSimilarity, PairwiseDistance): each holds its options with
torch.nn's names and calls its function of `dlg.nn.functional` on its inputs (two, or three for
the ranking, triplet and Gaussian losses). A class weight (or pos_weight)
is a buffer, as in torch, so it appears in the state_dict when given."""

from __future__ import annotations

from collections.abc import Callable
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
                self.register_buffer(name, value if isinstance(value, Tensor) else Tensor.of(value))
            else:
                setattr(self, name, value)

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002 (torch's names)
        return self._loss(input, target)

    def _loss(self, *inputs: Any) -> Tensor:
        options = {name: getattr(self, name) for name in self._options}
        given = {k: v for k, v in options.items() if v is not None or k not in self.buffers}
        return getattr(F, self.fn)(*inputs, reduction=self.reduction, **given)


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


class SoftMarginLoss(_Loss):
    fn = "soft_margin_loss"


class MultiLabelMarginLoss(_Loss):
    fn = "multilabel_margin_loss"


class HingeEmbeddingLoss(_Loss):
    fn = "hinge_embedding_loss"

    def __init__(self, margin: float = 1.0, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction, margin=margin)


class PoissonNLLLoss(_Loss):
    fn = "poisson_nll_loss"

    def __init__(self, log_input: bool = True, full: bool = False,
                 size_average: bool | None = None, eps: float = 1e-8, reduce: bool | None = None,
                 reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction, log_input=log_input, full=full,
                         eps=eps)


class MultiLabelSoftMarginLoss(_Loss):
    fn, buffers = "multilabel_soft_margin_loss", ("weight",)

    def __init__(self, weight: Any = None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction, weight=weight)


class MultiMarginLoss(_Loss):
    fn, buffers = "multi_margin_loss", ("weight",)

    def __init__(self, p: int = 1, margin: float = 1.0, weight: Any = None,
                 size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction, p=p, margin=margin, weight=weight)


class CTCLoss(_Loss):
    """forward(log_probs, targets, input_lengths, target_lengths): log_probs [T, N, C]."""

    fn = "ctc_loss"

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False):
        super().__init__(reduction=reduction, blank=blank, zero_infinity=zero_infinity)

    def forward(self, log_probs: Tensor, targets: Any, input_lengths: Any,
                target_lengths: Any) -> Tensor:
        return self._loss(log_probs, targets, input_lengths, target_lengths)


class GaussianNLLLoss(_Loss):
    """forward(input, target, var): the likelihood of target under N(input, var)."""

    fn = "gaussian_nll_loss"

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean"):
        super().__init__(reduction=reduction, full=full, eps=eps)

    def forward(self, input: Tensor, target: Any, var: Any) -> Tensor:  # noqa: A002
        return self._loss(input, target, var)


class MarginRankingLoss(_Loss):
    """forward(input1, input2, target): targets +-1 say which input should rank higher."""

    fn = "margin_ranking_loss"

    def __init__(self, margin: float = 0.0, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction, margin=margin)

    def forward(self, input1: Tensor, input2: Tensor, target: Any) -> Tensor:
        return self._loss(input1, input2, target)


class CosineEmbeddingLoss(MarginRankingLoss):
    """forward(input1, input2, target): targets +-1 say whether the pair should be alike."""

    fn = "cosine_embedding_loss"


class TripletMarginLoss(_Loss):
    fn = "triplet_margin_loss"

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6,
                 swap: bool = False, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction, margin=margin, p=p, eps=eps, swap=swap)

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        return self._loss(anchor, positive, negative)


class TripletMarginWithDistanceLoss(TripletMarginLoss):
    """TripletMarginLoss with any distance function (pairwise_distance when None)."""

    fn = "triplet_margin_with_distance_loss"

    def __init__(self, *, distance_function: Callable[[Tensor, Tensor], Tensor] | None = None,
                 margin: float = 1.0, swap: bool = False, reduction: str = "mean"):
        _Loss.__init__(self, reduction=reduction, distance_function=distance_function,
                       margin=margin, swap=swap)


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
