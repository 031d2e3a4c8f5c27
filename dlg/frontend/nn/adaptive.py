"""nn.AdaptiveLogSoftmaxWithLoss (Grave et al.'s adaptive softmax for large vocabularies): a head
over the shortlist of frequent classes and one entry per cluster, and per cluster a two-layer
projection to its classes; torch's parameters (head, tail.i.0, tail.i.1), results and errors.

torch evaluates each cluster's tail on the rows whose targets fall in it (nonzero, index_copy);
here every tail runs on every row and `where` keeps each row's own cluster, so the values and
gradients are torch's and the module traces and compiles (no shape depends on the targets)."""

from __future__ import annotations

from typing import Any, NamedTuple

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend import functional as F
from dlg.frontend.nn.layers import Linear
from dlg.frontend.nn.module import Module, ModuleList, Sequential
from dlg.frontend.tensor import Tensor, call


class _ASMoutput(NamedTuple):
    output: Tensor
    loss: Tensor


class AdaptiveLogSoftmaxWithLoss(Module):
    def __init__(self, in_features: int, n_classes: int, cutoffs: Any, div_value: float = 4.0,
                 head_bias: bool = False):
        super().__init__()
        cutoffs = list(cutoffs)
        if not cutoffs:
            raise DlgValueError("cutoffs should be a sequence of length larger than 0",
                                engine.caller_span())
        if (cutoffs != sorted(cutoffs) or min(cutoffs) <= 0 or max(cutoffs) > n_classes - 1
                or len(set(cutoffs)) != len(cutoffs) or any(int(c) != c for c in cutoffs)):
            raise DlgValueError("cutoffs should be a sequence of unique, positive integers "
                                "sorted in an increasing order, where each value is between "
                                "1 and n_classes-1", engine.caller_span())
        self.in_features, self.n_classes = in_features, n_classes
        self.cutoffs = cutoffs + [n_classes]
        self.div_value, self.head_bias = div_value, head_bias
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        self.head = Linear(in_features, self.head_size, bias=head_bias)
        self.tail = ModuleList()
        for i in range(self.n_clusters):
            hsz = int(in_features // (div_value ** (i + 1)))
            osz = self.cutoffs[i + 1] - self.cutoffs[i]
            self.tail.append(Sequential(Linear(in_features, hsz, bias=False),
                                        Linear(hsz, osz, bias=False)))

    def forward(self, input_: Tensor, target_: Tensor) -> _ASMoutput:
        """(each row's log-probability of its target, their mean negated as the loss)."""
        span = engine.caller_span()
        if target_.ndim == 1:
            if input_.shape[0] != target_.shape[0]:
                raise DlgValueError("Input and target should have the same size in the batch "
                                    "dimension.", span)
            if input_.ndim != 2:
                raise DlgValueError(f"1D target tensor expects 2D input tensors, but found "
                                    f"inputs with size {input_.shape}", span)
        elif target_.ndim == 0:
            if input_.ndim != 1:
                raise DlgValueError(f"0D target tensor expects 1D input tensors, but found "
                                    f"inputs with size {input_.shape}", span)
        else:
            raise DlgValueError("0D or 1D target tensor expected, multi-target not supported",
                                span)
        batched = target_.ndim > 0
        x = input_ if batched else input_.unsqueeze(0)
        target = target_ if batched else target_.unsqueeze(0)
        if target.graph_value is None:  # eagerly, torch's check of the target values
            low, high = int(target.min()), int(target.max())
            if low < 0 or high >= self.n_classes:
                raise DlgValueError(f"Target values should be in [0, {self.n_classes - 1}], "
                                    f"but values in range [{low}, {high}] were found. ", span)
        output = call("zeros_like", target, dtype=x.dtype)
        gather_inds = target
        for i in range(1, self.n_clusters + 1):
            low, high = self.cutoffs[i - 1], self.cutoffs[i]
            in_cluster = (target >= low) & (target < high)
            relative = call("where", in_cluster, target - low, 0)
            logprob = F.log_softmax(self.tail[i - 1](x), dim=1)
            local = logprob.gather(1, relative.unsqueeze(1)).squeeze(1)
            output = call("where", in_cluster, local, output)
            gather_inds = call("where", in_cluster, self.shortlist_size + i - 1, gather_inds)
        head_logprob = F.log_softmax(self.head(x), dim=1)
        output = output + head_logprob.gather(1, gather_inds.unsqueeze(1)).squeeze(1)
        loss = (-output).mean()
        return _ASMoutput(output if batched else output.squeeze(0), loss)

    def _get_full_log_prob(self, x: Tensor, head_output: Tensor) -> Tensor:
        head_logprob = F.log_softmax(head_output, dim=1)
        parts = [head_logprob[:, : self.shortlist_size]]
        for i in range(self.n_clusters):
            cluster_logprob = F.log_softmax(self.tail[i](x), dim=1)
            parts.append(cluster_logprob + head_logprob[:, self.shortlist_size + i].unsqueeze(1))
        return call("cat", parts, 1)

    def log_prob(self, input: Tensor) -> Tensor:  # noqa: A002 (torch's name)
        """The log-probabilities of all n_classes, [N, n_classes]."""
        return self._get_full_log_prob(input, self.head(input))

    def predict(self, input: Tensor) -> Tensor:  # noqa: A002
        """The most probable class of each row (log_prob(input).argmax(1))."""
        head_output = self.head(input)
        output = head_output.argmax(dim=1)
        full = self._get_full_log_prob(input, head_output).argmax(dim=1)
        return call("where", output >= self.shortlist_size, full, output)
