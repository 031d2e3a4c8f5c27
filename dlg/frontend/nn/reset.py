"""`reset_parameters()` on the modules that draw parameters, as torch.nn's: the parameters are
drawn again in place (their identities kept, so optimizers still hold them) with torch's own
initialisers, and normalisations' running statistics reset. Code re-initialises a model with
`for m in model.modules(): if hasattr(m, "reset_parameters"): m.reset_parameters()`, which
skipped every dlg module silently; the fused conv-bn tutorial calls its own."""

from __future__ import annotations

import math
from typing import Any

from dlg.frontend import engine
from dlg.frontend import init
from dlg.frontend.nn.activations import PReLU
from dlg.frontend.nn.attention import MultiheadAttention
from dlg.frontend.nn.conv import _Convolution
from dlg.frontend.nn.layers import Bilinear, Embedding, Linear
from dlg.frontend.nn.norms import GroupNorm, LayerNorm, RMSNorm, _BatchNorm, _InstanceNorm
from dlg.frontend.nn.recurrent import _PreludeLayer


def _fan_in(weight: Any) -> int:
    """torch's _calculate_fan_in_and_fan_out's fan_in: weight.size(1) times the receptive
    field (a transposed convolution's too, as torch computes it)."""
    receptive = math.prod(weight.shape[2:]) if weight.ndim > 2 else 1
    return weight.shape[1] * receptive


def _linear(self: Any) -> None:
    """torch's Linear and convolutions: kaiming_uniform_(a=sqrt(5)), the bias U(-b, b) with
    b = 1/sqrt(fan_in)."""
    with engine.no_grad():
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if getattr(self, "bias", None) is not None:
            fan_in = _fan_in(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)


def _bilinear(self: Bilinear) -> None:
    bound = 1 / math.sqrt(self.weight.shape[1])
    with engine.no_grad():
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)


def _embedding(self: Embedding) -> None:
    with engine.no_grad():
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight[self.padding_idx].fill_(0)


def _affine(self: Any) -> None:
    """Normalisations: weight ones, bias zeros (and running statistics reset)."""
    if hasattr(self, "reset_running_stats"):
        self.reset_running_stats()
    with engine.no_grad():
        if getattr(self, "weight", None) is not None:
            init.ones_(self.weight)
        if getattr(self, "bias", None) is not None:
            init.zeros_(self.bias)


def _recurrent(self: _PreludeLayer) -> None:
    """RNN, GRU, LSTM and the cells: every parameter U(-1/sqrt(hidden), 1/sqrt(hidden))."""
    stdv = 1.0 / math.sqrt(dict(self._options)["hidden_size"])
    with engine.no_grad():
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)


def _attention(self: MultiheadAttention) -> None:
    with engine.no_grad():
        if self.in_proj_weight is not None:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v)


def _prelu(self: PReLU) -> None:
    with engine.no_grad():
        init.constant_(self.weight, self.init)


for _cls, _reset in ((Linear, _linear), (_Convolution, _linear), (Bilinear, _bilinear),
                     (Embedding, _embedding), (_BatchNorm, _affine), (_InstanceNorm, _affine),
                     (LayerNorm, _affine), (GroupNorm, _affine), (RMSNorm, _affine),
                     (_PreludeLayer, _recurrent), (PReLU, _prelu)):
    _cls.reset_parameters = _reset  # type: ignore[attr-defined]
MultiheadAttention._reset_parameters = _attention  # type: ignore[attr-defined]  # torch's name
