"""`dlg.from_torch`'s constructor options for the torch.nn modules that do not keep them as
attributes of the same name: the Transformer family (read back from their submodules, the
activation and the stacked layers converted) and PairwiseDistance (its p is kept as `norm`).
Every other module's options are its attributes (`from_torch._leaf`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# converts a torch submodule or function, named by its attribute, to dlg's
Convert = Callable[[Any, str], Any]
Reader = Callable[[Any, Convert], dict[str, Any]]


def _layer(t: Any, convert: Convert) -> dict[str, Any]:
    return {"d_model": t.linear1.in_features, "nhead": t.self_attn.num_heads,
            "dim_feedforward": t.linear1.out_features, "dropout": t.dropout.p,
            "activation": convert(t.activation, "activation"), "layer_norm_eps": t.norm1.eps,
            "batch_first": t.self_attn.batch_first, "norm_first": t.norm_first,
            "bias": t.linear1.bias is not None}


def _stack(layer: str) -> Reader:
    """An encoder or decoder stack: its first layer (the others are copies), count and norm."""
    def read(t: Any, convert: Convert) -> dict[str, Any]:
        return {layer: convert(t.layers[0], "layers.0"), "num_layers": t.num_layers,
                "norm": None if t.norm is None else convert(t.norm, "norm")}
    return read


def _transformer(t: Any, convert: Convert) -> dict[str, Any]:
    return {"d_model": t.d_model, "nhead": t.nhead, "batch_first": t.batch_first,
            "custom_encoder": convert(t.encoder, "encoder"),
            "custom_decoder": convert(t.decoder, "decoder")}


OPTIONS: dict[str, Reader] = {
    "TransformerEncoderLayer": _layer, "TransformerDecoderLayer": _layer,
    "TransformerEncoder": _stack("encoder_layer"), "TransformerDecoder": _stack("decoder_layer"),
    "Transformer": _transformer,
    "PairwiseDistance": lambda t, convert: {"p": t.norm, "eps": t.eps, "keepdim": t.keepdim},
}
