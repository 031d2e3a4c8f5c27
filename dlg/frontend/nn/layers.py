"""Layers with parameters or options of their own: Identity, Linear (and LazyLinear), Bilinear,
Flatten, Unflatten, Dropout (and the channel-wise Dropout1d/2d/3d, the alpha dropouts), Embedding.
Names, shapes and initialisers follow torch.nn (and prelude.dlg)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend import functional as F
from dlg.frontend import stateful
from dlg.frontend.factory import on_cpu
from dlg.frontend.nn.module import Module, init_parameter
from dlg.frontend.nn.uninitialized import UninitializedParameter, held, load_hook, materialize
from dlg.frontend.tensor import Tensor, call


class Identity(Module):
    """Returns its input (arguments given when it is made are ignored, as in torch)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


class Linear(Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.out_features = out_features
        self._draw(in_features, bias)

    def _draw(self, in_features: int, bias: bool) -> None:
        """The parameters for `in_features` inputs, drawn as torch draws them."""
        self.in_features = in_features
        out_features = self.out_features
        self.weight = init_parameter("kaiming_uniform", (out_features, in_features), a=math.sqrt(5))
        k = 1 / math.sqrt(in_features) if in_features > 0 else 0.0  # torch's bound for no inputs
        self.bias = init_parameter("uniform", (out_features,), -k, k) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class NonDynamicallyQuantizableLinear(Linear):
    """torch's class of MultiheadAttention's out_proj (a Linear its dynamic quantization leaves
    alone): named so that print(model) and pickled modules say what torch's do."""


class LazyLinear(Linear):
    """A Linear whose in_features is the last dim of its first input: the first call draws the
    parameters into its uninitialized ones and makes the module a plain Linear, as torch
    does (an optimizer given the parameters before that call trains the drawn ones)."""

    def __init__(self, out_features: int, bias: bool = True, device: Any = None,
                 dtype: Any = None):
        Module.__init__(self)
        on_cpu(device)
        self.in_features, self.out_features, self._lazy_bias = 0, out_features, bias
        self.weight = UninitializedParameter(dtype=dtype)
        self.bias = UninitializedParameter(dtype=dtype) if bias else None
        self.register_load_state_dict_pre_hook(load_hook)

    def forward(self, x: Tensor) -> Tensor:
        before = held(self)
        self._draw(x.shape[-1], self._lazy_bias)
        materialize(self, before)
        del self._lazy_bias
        self.__class__ = Linear  # type: ignore[assignment]
        return self.forward(x)

    def extra_repr(self) -> str:
        return f"in_features=0, out_features={self.out_features}, bias={self._lazy_bias}"


class Bilinear(Module):
    """y = x1^T A x2 + b per output feature: weight [out, in1, in2] and bias drawn from
    U(-1/sqrt(in1), 1/sqrt(in1)), as torch draws them."""

    def __init__(self, in1_features: int, in2_features: int, out_features: int,
                 bias: bool = True):
        super().__init__()
        self.in1_features, self.in2_features = in1_features, in2_features
        self.out_features = out_features
        k = 1 / math.sqrt(in1_features)
        self.weight = init_parameter("uniform", (out_features, in1_features, in2_features), -k, k)
        self.bias = init_parameter("uniform", (out_features,), -k, k) if bias else None

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return call("bilinear", x1, x2, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Axis `dim` split into `unflattened_size` (one entry may be -1)."""

    def __init__(self, dim: int, unflattened_size: Any):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x: Tensor) -> Tensor:
        axis = self.dim + x.ndim if self.dim < 0 else self.dim
        return x.reshape(*x.shape[:axis], *self.unflattened_size, *x.shape[axis + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Dropout(Module):
    """Zeroes elements with probability p while training, scaling the rest by 1/(1-p)."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0 <= p <= 1:
            raise DlgValueError(f"dropout probability has to be between 0 and 1, but got {p}",
                                engine.caller_span())
        self.p, self.inplace = p, inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(Dropout):
    """Zeroes whole channels ([N, C, L] or unbatched [C, L]) while training."""

    def forward(self, x: Tensor) -> Tensor:
        return call("dropout1d", x, self.p, self.training)


class Dropout2d(Dropout):
    """Zeroes whole channels ([N, C, H, W]; a 3-d input is read as [N, C, L], as torch does)."""

    def forward(self, x: Tensor) -> Tensor:
        return call("dropout2d", x, self.p, self.training)


class Dropout3d(Dropout):
    """Zeroes whole channels ([N, C, D, H, W] or unbatched [C, D, H, W]) while training."""

    def forward(self, x: Tensor) -> Tensor:
        return call("dropout3d", x, self.p, self.training)


class AlphaDropout(Dropout):
    """Dropout for SELU networks: keeps the mean and variance of its input (F.alpha_dropout)."""

    def forward(self, x: Tensor) -> Tensor:
        return call("alpha_dropout", x, self.p, self.training)


class FeatureAlphaDropout(Dropout):
    """Alpha dropout of whole channels (F.feature_alpha_dropout)."""

    def forward(self, x: Tensor) -> Tensor:
        return call("feature_alpha_dropout", x, self.p, self.training)


class Embedding(Module):
    """Rows of `weight` [num_embeddings, embedding_dim], drawn from N(0, 1). The row
    `padding_idx` starts at zero and gets no gradient; `max_norm` renormalises the rows looked
    up (in place, before the lookup, as torch does: eager only)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, sparse: bool = False):
        super().__init__()
        if sparse:
            raise DlgValueError("Embedding: sparse gradients are not supported (dlg has no "
                                "sparse tensors); sparse=False gives the same values densely",
                                engine.caller_span())
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise DlgValueError(f"Embedding: padding_idx must be within num_embeddings "
                                    f"({num_embeddings}), got {padding_idx}", engine.caller_span())
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse  # F.embedding's too
        self.weight = init_parameter("normal", (num_embeddings, embedding_dim), 0.0, 1.0)
        if padding_idx is not None:
            self.weight.numpy_view()[padding_idx] = 0

    @classmethod
    def from_pretrained(cls, embeddings: Any, freeze: bool = True, padding_idx: int | None = None,
                        max_norm: float | None = None, norm_type: float = 2.0) -> Embedding:
        """An Embedding holding `embeddings` [num, dim] (not trained when `freeze`)."""
        rows = np.asarray(embeddings.numpy_view() if isinstance(embeddings, Tensor)
                          else embeddings)
        module = cls(*rows.shape, padding_idx, max_norm, norm_type)
        np.copyto(module.weight.numpy_view(), rows, casting="same_kind")
        module.weight.requires_grad_(not freeze)
        return module

    def forward(self, indices: Any) -> Tensor:
        return stateful.embedding(indices, self.weight, self.padding_idx, self.max_norm,
                                  self.norm_type, self.scale_grad_by_freq)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        return s


class EmbeddingBag(Embedding):
    """Embedding's rows reduced per bag by `mode` (F.embedding_bag): bags are the rows of a 2-d
    input, or runs of a 1-d input starting at `offsets`."""

    def __init__(self, num_embeddings: int, embedding_dim: int, max_norm: float | None = None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, mode: str = "mean",
                 sparse: bool = False, _weight: Any = None, include_last_offset: bool = False,
                 padding_idx: int | None = None):
        super().__init__(num_embeddings, embedding_dim, padding_idx, max_norm, norm_type,
                         scale_grad_by_freq, sparse)
        if mode not in ("sum", "mean", "max"):
            raise DlgValueError(f"EmbeddingBag: mode must be 'sum', 'mean' or 'max', got "
                                f"{mode!r}", engine.caller_span())
        self.mode, self.include_last_offset = mode, include_last_offset
        if _weight is not None:
            np.copyto(self.weight.numpy_view(), np.asarray(
                _weight.numpy_view() if isinstance(_weight, Tensor) else _weight),
                casting="same_kind")

    @classmethod
    def from_pretrained(cls, embeddings: Any, freeze: bool = True,  # type: ignore[override]
                        max_norm: float | None = None, norm_type: float = 2.0,
                        scale_grad_by_freq: bool = False, mode: str = "mean",
                        sparse: bool = False, include_last_offset: bool = False,
                        padding_idx: int | None = None) -> EmbeddingBag:
        rows = np.asarray(embeddings.numpy_view() if isinstance(embeddings, Tensor)
                          else embeddings)
        module = cls(*rows.shape, max_norm, norm_type, scale_grad_by_freq, mode, sparse, rows,
                     include_last_offset, padding_idx)
        module.weight.requires_grad_(not freeze)
        return module

    def forward(self, input: Any, offsets: Any = None,  # type: ignore[override]  # noqa: A002
                per_sample_weights: Any = None) -> Tensor:
        return stateful.embedding_bag(input, self.weight, offsets, self.max_norm, self.norm_type,
                                      False, self.mode, False, per_sample_weights,
                                      self.include_last_offset, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        s += f", mode='{self.mode}'"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s
