"""torch.nn.functional's one_hot, embedding, embedding_bag and batch_norm as Python calls them:
the parts that read index values or change tensors in place, which only the eager front door can
do (one_hot's class count and range check, embedding's max_norm and scale_grad_by_freq,
embedding_bag's offsets check, batch_norm's running statistics). The rest is the shared
user-facing functions of `dlg.functions`."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.function import Function, FunctionCtx
from dlg.frontend.tensor import Tensor, call, checked
from dlg.functions.norms import batch_statistics
from dlg.ir.dtypes import DType


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor.of(x)


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


class _FrequencyScaled(Function):
    """The rows `indices` look up, each row's gradient divided by how often its index occurs in
    `indices` (torch's scale_grad_by_freq: frequent words do not dominate a step)."""

    @staticmethod
    def forward(ctx: FunctionCtx, weight: Tensor, indices: Tensor) -> Tensor:
        ctx.save_for_backward(indices)
        ctx.rows = weight.shape[0]
        return call("embedding", indices, weight)

    @staticmethod
    def backward(ctx: FunctionCtx, g: Tensor) -> tuple[Tensor, None]:
        (indices,) = ctx.saved_tensors
        flat = indices.reshape(-1)
        counts = call("zeros", (ctx.rows,), dtype=g.dtype).index_add(
            0, flat, call("ones", (flat.shape[0],), dtype=g.dtype))
        rows = g.reshape(-1, g.shape[-1]) / counts[flat].unsqueeze(-1)
        return call("zeros", (ctx.rows, g.shape[-1]), dtype=g.dtype).index_add(0, flat, rows), None


def embedding(input: Any, weight: Tensor, padding_idx: int | None = None,  # noqa: A002
              max_norm: float | None = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """torch's F.embedding: the row `padding_idx` gets no gradient; `max_norm` rescales the
    rows looked up to that norm at most, in place before the lookup; `scale_grad_by_freq`
    divides each row's gradient by its index's count in `input`, as torch."""
    if sparse:
        raise DlgValueError("embedding: sparse gradients are not supported (dlg has no sparse "
                            "tensors); sparse=False gives the same values densely",
                            engine.caller_span())
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
    if scale_grad_by_freq:
        return _FrequencyScaled.apply(weight, input)
    return call("embedding", input, weight)


_BAG_REDUCE = {"sum": "sum", "mean": "mean", "max": "amax"}


def embedding_bag(input: Any, weight: Tensor, offsets: Any = None,  # noqa: A002
                  max_norm: float | None = None, norm_type: float = 2.0,
                  scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False,
                  per_sample_weights: Any = None, include_last_offset: bool = False,
                  padding_idx: int | None = None) -> Tensor:
    """torch's F.embedding_bag: the rows each bag looks up, reduced by `mode` (sum, mean, max;
    an empty bag is zeros) into one row per bag. Bags are the rows of a 2-d input, or the runs of
    a 1-d input starting at `offsets` (its last entry the end with `include_last_offset`);
    `per_sample_weights` scale the rows (sum only); `padding_idx` entries are left out (nor
    counted by mean). Composed of embedding and scatter_reduce over each entry's bag number, so
    it differentiates, traces and compiles as they do."""
    where = "embedding_bag"
    if scale_grad_by_freq or sparse:
        raise DlgValueError(f"{where}: scale_grad_by_freq and sparse gradients are not "
                            "supported", engine.caller_span())
    if mode not in _BAG_REDUCE:
        raise DlgValueError(f"{where}: mode must be 'sum', 'mean' or 'max', got {mode!r}",
                            engine.caller_span())
    input, rows = _t(input), weight.shape[0]
    if per_sample_weights is not None:
        per_sample_weights = _t(per_sample_weights)
        if mode != "sum":
            raise DlgValueError(f"{where}: per_sample_weights is only supported for "
                                f"mode='sum' (got mode={mode!r})", engine.caller_span())
        if per_sample_weights.shape != input.shape:
            raise DlgValueError(f"{where}: per_sample_weights {list(per_sample_weights.shape)} "
                                f"must have the input's shape {list(input.shape)}",
                                engine.caller_span())
    if max_norm is not None:
        _renormalize(input, weight, max_norm, norm_type)
    if input.ndim == 2:
        if offsets is not None:
            raise DlgValueError(f"{where}: with a 2-d input (one bag per row), offsets must be "
                                "None", engine.caller_span())
        bags, length = input.shape
        bag = call("arange", bags).unsqueeze(1).expand(bags, length).reshape(-1)
        input = input.reshape(-1)
        valid = None
    elif input.ndim == 1:
        bag, valid, bags = _bags(input, offsets, include_last_offset)
    else:
        raise DlgValueError(f"{where}: input must be 1-d (with offsets) or 2-d, got "
                            f"{list(input.shape)}", engine.caller_span())
    if padding_idx is not None:
        if not -rows <= padding_idx < rows:
            raise DlgValueError(f"{where}: padding_idx must be within num_embeddings ({rows}), "
                                f"got {padding_idx}", engine.caller_span())
        kept = input != padding_idx % rows
        valid = kept if valid is None else valid & kept
    if valid is not None:  # left-out entries go to one more bag, dropped at the end
        bag = call("where", valid, bag, call("zeros_like", bag) + bags)  # (bags: maybe N)
    looked_up = call("embedding", input, weight)
    if per_sample_weights is not None:
        looked_up = looked_up * per_sample_weights.reshape(-1).unsqueeze(1)
    dim = weight.shape[1]
    zeros = call("zeros", (bags + 1, dim), dtype=weight.dtype)
    out = call("scatter_reduce", zeros, 0, bag.unsqueeze(1).expand(-1, dim), looked_up,
               _BAG_REDUCE[mode], include_self=False)
    return out[:bags]


def _bags(input: Tensor, offsets: Any, include_last_offset: bool) -> tuple[Tensor, Any, Any]:
    """Each entry's bag number (the count of offsets at or before it, less one), which entries
    are in a bag (those before the last offset, with include_last_offset), and the bag count."""
    if offsets is None:
        raise DlgValueError("embedding_bag: a 1-d input needs offsets (where each bag starts)",
                            engine.caller_span())
    offsets = _t(offsets)
    if offsets.ndim != 1 or offsets.dtype not in (DType.i32, DType.i64):
        raise DlgValueError(f"embedding_bag: offsets must be a 1-d integer tensor, got "
                            f"{offsets.tensor_type}", engine.caller_span())
    n = input.shape[0]
    if offsets.graph_value is None:  # the data is here: torch's checks
        values = offsets.numpy_view()
        if values.size and (values[0] != 0 or (np.diff(values) < 0).any() or values[-1] > n):
            raise DlgValueError(f"embedding_bag: offsets must start at 0 and not decrease "
                                f"nor pass the input's length {n}, got {values.tolist()}",
                                engine.caller_span())
        if include_last_offset and (not values.size or values[-1] != n):
            # torch sums up to the last offset but divides a mean by the count to the end
            raise DlgValueError(f"embedding_bag: with include_last_offset, the last offset "
                                f"ends the last bag: it must be the input's length {n}, got "
                                f"{values.tolist()}", engine.caller_span())
    positions = call("arange", n)
    starts = offsets[:-1] if include_last_offset else offsets
    bag = (starts.unsqueeze(0) <= positions.unsqueeze(1)).to(DType.i64).sum(1) - 1
    valid = positions < offsets[-1] if include_last_offset else None
    return bag, valid, starts.shape[0]


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
