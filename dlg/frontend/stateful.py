"""torch.nn.functional's one_hot, embedding and batch_norm as Python calls them: the parts that
read index values or change tensors in place, which only the eager front door can do (one_hot's
class count and range check, embedding's max_norm, batch_norm's running statistics). The rest
is the shared user-facing function of `dlg.functions`."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor, call, checked
from dlg.functions.norms import batch_statistics
from dlg.ir.dtypes import DType


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def one_hot(tensor: Any, num_classes: int = -1) -> Tensor:
    """torch's F.one_hot: int64; num_classes=-1 counts to the largest index; indices outside
    0..num_classes-1 are an error (checked on the values, so eagerly only)."""
    tensor = _t(tensor)
    if tensor.graph_value is None and tensor.dtype in (DType.i32, DType.i64):
        values = tensor.numpy_view()
        if num_classes == -1:
            if not values.size:
                raise DlgValueError("one_hot: cannot infer num_classes from an empty tensor",
                                    engine.caller_span())
            num_classes = int(values.max()) + 1
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise DlgValueError(f"one_hot: class values must be in 0..{num_classes - 1}, got "
                                f"{values.min()}..{values.max()}", engine.caller_span())
    return call("one_hot", tensor, num_classes, dtype=DType.i64)


def _renormalize(indices: Tensor, weight: Tensor, max_norm: float, norm_type: float) -> None:
    """Scale the rows of `weight` that `indices` pick to norm `max_norm` at most, in place."""
    if indices.graph_value is not None or weight.graph_value is not None:
        raise DlgValueError("embedding(max_norm=...) rescales rows in place by index values: it "
                            "runs eagerly only", engine.caller_span())
    w = weight.numpy_view()
    picked = np.unique(indices.numpy_view())
    norms = np.linalg.norm(w[picked], ord=norm_type, axis=1, keepdims=True)
    w[picked] *= np.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).astype(w.dtype)


def embedding(input: Any, weight: Tensor, padding_idx: int | None = None,  # noqa: A002
              max_norm: float | None = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """torch's F.embedding: the row `padding_idx` gets no gradient; `max_norm` rescales the
    rows looked up to that norm at most, in place before the lookup, as torch."""
    if scale_grad_by_freq or sparse:
        raise DlgValueError("embedding: scale_grad_by_freq and sparse gradients are not "
                            "supported", engine.caller_span())
    input = _t(input)
    if max_norm is not None:
        _renormalize(input, weight, max_norm, norm_type)
    if padding_idx is not None:
        rows = weight.shape[0]
        if not -rows <= padding_idx < rows:
            raise DlgValueError(f"embedding: padding_idx must be within num_embeddings "
                                f"({rows}), got {padding_idx}", engine.caller_span())
        row = np.arange(rows)[:, None] == padding_idx % rows
        weight = call("where", row, weight.detach(), weight)
    return call("embedding", input, weight)


def assign(buffer: Tensor, value: Tensor, what: str) -> None:
    """Overwrite a running statistic in place (a graph update while tracing)."""
    tracer = engine.current_tracer()
    if tracer is not None:
        tracer.update(buffer, value, what)
    else:
        np.copyto(buffer.numpy_view(), value.numpy_view())


def batch_norm(input: Tensor, running_mean: Tensor | None,  # noqa: A002
               running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """torch's F.batch_norm: training normalises with the batch statistics and moves the
    running ones given in place by `momentum` (with the unbiased variance), as torch."""
    if not training:
        return call("batch_norm", input, running_mean, running_var, weight, bias, eps=eps)
    mean, var = checked(batch_statistics, input)
    n = input.numel() // input.shape[1]
    if n == 1:
        raise DlgValueError(f"batch_norm: training needs more than one value per channel, got "
                            f"input {list(input.shape)}", engine.caller_span())
    y = call("batch_norm", input, mean, var, weight, bias, eps=eps)
    with engine.no_grad():
        if running_mean is not None:
            assign(running_mean, running_mean * (1 - momentum) + mean.detach() * momentum,
                    "batch_norm: running_mean")
        if running_var is not None:
            assign(running_var, running_var * (1 - momentum)
                    + var.detach() * (momentum * n / (n - 1)), "batch_norm: running_var")
    return y
