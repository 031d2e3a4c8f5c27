"""torch.nn's factory keywords on the modules that take them: `nn.Linear(4, 8, device=device,
dtype=torch.float64)` and the `factory_kwargs` code passes down (transformer blocks, Llama-style
layers). The device must be the CPU (eager dlg runs there; dlg.compile(..., target="cuda") is
the GPU path); the module is made as usual and its floating-point parameters and buffers then
take the dtype, as Module.to(dtype) casts them (LazyLinear takes them itself: it draws its
parameters at its first call)."""

from __future__ import annotations

import functools
import inspect
from typing import Any

from dlg.frontend.factory import on_cpu
from dlg.frontend.nn.attention import MultiheadAttention
from dlg.frontend.nn.conv import (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d,
                                  ConvTranspose3d)
from dlg.frontend.nn.layers import Bilinear, Embedding, EmbeddingBag, Linear
from dlg.frontend.nn.activations import PReLU
from dlg.frontend.nn.module import Module
from dlg.frontend.nn.norms import (BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm,
                                   InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, LayerNorm,
                                   RMSNorm)
from dlg.frontend.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from dlg.frontend.nn.transformer import (Transformer, TransformerDecoderLayer,
                                         TransformerEncoderLayer)

TAKES_FACTORY_KWARGS: tuple[type[Module], ...] = (
    Linear, Bilinear, Embedding, EmbeddingBag, PReLU, MultiheadAttention,
    Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d,
    BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, InstanceNorm1d, InstanceNorm2d,
    InstanceNorm3d, LayerNorm, RMSNorm, RNN, GRU, LSTM, RNNCell, GRUCell, LSTMCell,
    Transformer, TransformerEncoderLayer, TransformerDecoderLayer)


def _with_factory_kwargs(init: Any) -> Any:
    signature = inspect.signature(init)
    params = list(signature.parameters.values())
    kinds = [p.kind for p in params]
    # torch declares device and dtype after the module's own positional parameters, so
    # `nn.Linear(i, o, bias, device, dtype)` (mnist_forward_forward's Layer) passes them there
    positional = None if inspect.Parameter.VAR_POSITIONAL in kinds else sum(
        k is inspect.Parameter.POSITIONAL_OR_KEYWORD for k in kinds) - 1  # less self

    @functools.wraps(init)
    def __init__(self: Module, *args: Any, device: Any = None, dtype: Any = None,
                 **kwargs: Any) -> None:
        if positional is not None and positional < len(args) <= positional + 2:
            extra, args = args[positional:], args[:positional]
            device, dtype = (*extra, dtype)[:2] if len(extra) == 1 else extra
        on_cpu(device)
        init(self, *args, **kwargs)
        if dtype is not None:
            self.to(dtype)
    kind = (inspect.Parameter.KEYWORD_ONLY if positional is None
            else inspect.Parameter.POSITIONAL_OR_KEYWORD)
    extra = [inspect.Parameter(n, kind, default=None)
             for n in ("device", "dtype") if n not in signature.parameters]
    at = next((i for i, p in enumerate(params) if p.kind is not
               inspect.Parameter.POSITIONAL_OR_KEYWORD), len(params)) if positional is not None \
        else next((i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD),
                  len(params))
    __init__.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=params[:at] + extra + params[at:])
    __init__.takes_factory_kwargs = True  # type: ignore[attr-defined]
    return __init__


for _cls in TAKES_FACTORY_KWARGS:
    if not getattr(_cls.__init__, "takes_factory_kwargs", False):  # inherited from a listed one
        _cls.__init__ = _with_factory_kwargs(_cls.__init__)  # type: ignore[method-assign]

__all__ = ["TAKES_FACTORY_KWARGS"]
