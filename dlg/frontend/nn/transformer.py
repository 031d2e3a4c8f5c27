"""The Transformer modules of torch.nn (encoder and decoder layers, their stacks, Transformer)
over dlg's MultiheadAttention, Linear, LayerNorm and Dropout, with torch's submodule names so a
torch state_dict loads as it is. Masks are MultiheadAttention's (bool: True may NOT be
attended; float: added); `is_causal` is torch's hint, which needs the mask it describes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend import functional as F
from dlg.frontend.nn.attention import MultiheadAttention
from dlg.frontend.nn.layers import Dropout, Linear
from dlg.frontend.nn.module import Module, ModuleList
from dlg.frontend.nn.norms import LayerNorm
from dlg.frontend.tensor import Tensor
from dlg.ir.dtypes import DType
from dlg.ir.init import initialize

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}


def _activation(activation: Any) -> Callable[[Tensor], Tensor]:
    """"relu"/"gelu" as their functions; any other callable as it is (a module too)."""
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise DlgValueError(f"activation should be relu/gelu, not {activation}",
                                engine.caller_span())
        return ACTIVATIONS[activation]
    if not callable(activation):
        raise DlgValueError(f"activation must be 'relu', 'gelu' or a callable, got "
                            f"{activation!r}", engine.caller_span())
    return activation


class _Layer(Module):
    """What both layers share: self_attn, the feed-forward block (linear1, dropout, linear2)
    and `norms` LayerNorms, made in torch's order (so the state_dict's is torch's)."""

    def _build(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float,
               activation: Any, layer_norm_eps: float, batch_first: bool, norm_first: bool,
               bias: bool, cross_attention: bool) -> None:
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first)
        if cross_attention:
            self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                     batch_first=batch_first)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = norm_first
        blocks = 3 if cross_attention else 2
        for i in range(1, blocks + 1):
            setattr(self, f"norm{i}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        for i in range(1, blocks + 1):
            setattr(self, f"dropout{i}", Dropout(dropout))
        self.activation = _activation(activation)

    def _attend(self, attention: MultiheadAttention, x: Tensor, memory: Tensor, mask: Any,
                key_padding_mask: Any, is_causal: bool, dropout: Dropout) -> Tensor:
        out = attention(x, memory, memory, attn_mask=mask, key_padding_mask=key_padding_mask,
                        need_weights=False, is_causal=bool(is_causal))[0]
        return dropout(out)

    def _feed_forward(self, x: Tensor, dropout: Dropout) -> Tensor:
        return dropout(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def _residual(self, x: Tensor, norm: LayerNorm, block: Callable[[Tensor], Tensor]) -> Tensor:
        """x + block(norm(x)) when norm_first, else norm(x + block(x))."""
        return x + block(norm(x)) if self.norm_first else norm(x + block(x))


class TransformerEncoderLayer(_Layer):
    """Self-attention then a feed-forward block, each with a residual and a LayerNorm."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: Any = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True):
        super().__init__()
        self._build(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                    batch_first, norm_first, bias, cross_attention=False)

    def forward(self, src: Tensor, src_mask: Any = None, src_key_padding_mask: Any = None,
                is_causal: bool = False) -> Tensor:
        x = self._residual(src, self.norm1, lambda x: self._attend(
            self.self_attn, x, x, src_mask, src_key_padding_mask, is_causal, self.dropout1))
        return self._residual(x, self.norm2, lambda x: self._feed_forward(x, self.dropout2))


class TransformerDecoderLayer(_Layer):
    """Self-attention, attention to the encoder's memory, then a feed-forward block."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: Any = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True):
        super().__init__()
        self._build(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                    batch_first, norm_first, bias, cross_attention=True)

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask: Any = None,
                memory_mask: Any = None, tgt_key_padding_mask: Any = None,
                memory_key_padding_mask: Any = None, tgt_is_causal: bool = False,
                memory_is_causal: bool = False) -> Tensor:
        x = self._residual(tgt, self.norm1, lambda x: self._attend(
            self.self_attn, x, x, tgt_mask, tgt_key_padding_mask, tgt_is_causal, self.dropout1))
        x = self._residual(x, self.norm2, lambda x: self._attend(
            self.multihead_attn, x, memory, memory_mask, memory_key_padding_mask,
            memory_is_causal, self.dropout2))
        return self._residual(x, self.norm3, lambda x: self._feed_forward(x, self.dropout3))


class _Stack(Module):
    """`num_layers` copies of a layer (deep copies, as torch makes them), then `norm`."""

    def __init__(self, layer: Module, num_layers: int, norm: Module | None):
        super().__init__()
        self.layers = ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.num_layers, self.norm = num_layers, norm

    def _normed(self, x: Tensor) -> Tensor:
        return x if self.norm is None else self.norm(x)


class TransformerEncoder(_Stack):
    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int,
                 norm: Module | None = None, enable_nested_tensor: bool = True,
                 mask_check: bool = True):
        super().__init__(encoder_layer, num_layers, norm)
        self.enable_nested_tensor, self.mask_check = enable_nested_tensor, mask_check

    def forward(self, src: Tensor, mask: Any = None, src_key_padding_mask: Any = None,
                is_causal: bool | None = None) -> Tensor:
        for layer in self.layers:
            src = layer(src, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                        is_causal=bool(is_causal))
        return self._normed(src)


class TransformerDecoder(_Stack):
    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int,
                 norm: Module | None = None):
        super().__init__(decoder_layer, num_layers, norm)

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask: Any = None, memory_mask: Any = None,
                tgt_key_padding_mask: Any = None, memory_key_padding_mask: Any = None,
                tgt_is_causal: bool | None = None, memory_is_causal: bool = False) -> Tensor:
        for layer in self.layers:
            tgt = layer(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                        tgt_key_padding_mask=tgt_key_padding_mask,
                        memory_key_padding_mask=memory_key_padding_mask,
                        tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
        return self._normed(tgt)


class Transformer(Module):
    """An encoder and a decoder stack, each ending in a LayerNorm; every weight matrix drawn
    again from xavier_uniform, as torch's _reset_parameters does."""

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: Any = "relu", custom_encoder: Module | None = None,
                 custom_decoder: Module | None = None, layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True):
        super().__init__()
        options = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                   batch_first, norm_first, bias)
        self.encoder = custom_encoder if custom_encoder is not None else TransformerEncoder(
            TransformerEncoderLayer(*options), num_encoder_layers,
            LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        self.decoder = custom_decoder if custom_decoder is not None else TransformerDecoder(
            TransformerDecoderLayer(*options), num_decoder_layers,
            LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        for p in self.parameters():
            if p.ndim > 1:
                p.numpy_view()[...] = initialize("xavier_uniform", engine.rng(), p.shape,
                                                 DType.f32)

    def forward(self, src: Tensor, tgt: Tensor, src_mask: Any = None, tgt_mask: Any = None,
                memory_mask: Any = None, src_key_padding_mask: Any = None,
                tgt_key_padding_mask: Any = None, memory_key_padding_mask: Any = None,
                src_is_causal: bool | None = None, tgt_is_causal: bool | None = None,
                memory_is_causal: bool = False) -> Tensor:
        batch = 0 if self.batch_first else 1
        if src.ndim == 3 and src.shape[batch] != tgt.shape[batch]:
            raise DlgShapeError("the batch number of src and tgt must be equal",
                                engine.caller_span())
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise DlgShapeError(f"the feature number of src and tgt must be equal to d_model "
                                f"({self.d_model})", engine.caller_span())
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device: Any = None, dtype: Any = None
                                        ) -> Tensor:
        """[sz, sz] float mask: -inf above the diagonal (future positions), 0 elsewhere; torch's
        `device` and `dtype` (float32 by default) checked as a factory function's."""
        like = F.zeros(sz, sz, dtype=dtype, device=device)
        return Tensor.of(np.triu(np.full((sz, sz), -np.inf, like.tensor_type.dtype.np), 1))
