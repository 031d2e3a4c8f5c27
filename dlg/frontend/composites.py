"""Functional forms written in Python over dlg.Tensor's operations, because one of their
arguments is Python code (triplet_margin_with_distance_loss's distance function), they draw
noise from dlg's generator (gumbel_softmax) or they write in place (relu_, elu_, ..., and the
activations' `inplace=True`: recorded and traced as the other in-place ops, frontend/inplace.py).
Traced, they are the ops they call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dlg.errors import DlgValueError
from dlg.frontend import engine, inplace
from dlg.frontend.tensor import Tensor, call
from dlg.ir.ops.losses import REDUCTIONS

Distance = Callable[[Tensor, Tensor], Tensor]


def _reduced(loss: Tensor, reduction: str, name: str) -> Tensor:
    if reduction not in REDUCTIONS:
        raise DlgValueError(f"{name}: reduction must be one of {', '.join(REDUCTIONS)}, got "
                            f"{reduction!r}", engine.caller_span())
    return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.mean()


def triplet_margin_with_distance_loss(anchor: Tensor, positive: Tensor, negative: Tensor, *,
                                      distance_function: Distance | None = None,
                                      margin: float = 1.0, swap: bool = False,
                                      reduction: str = "mean") -> Tensor:
    """max(0, margin + d(anchor, positive) - d(anchor, negative)) for any distance d
    (pairwise_distance when None); `swap` uses the smaller of d(a, n) and d(p, n)."""
    if margin <= 0:
        raise DlgValueError(f"triplet_margin_with_distance_loss: expected margin to be greater "
                            f"than 0, got {margin} instead", engine.caller_span())
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise DlgValueError(f"triplet_margin_with_distance_loss: anchor, positive and negative "
                            f"must have the same number of dimensions, got {anchor.ndim}, "
                            f"{positive.ndim} and {negative.ndim}", engine.caller_span())

    def distance(a: Tensor, b: Tensor) -> Tensor:
        return (call("pairwise_distance", a, b) if distance_function is None
                else distance_function(a, b))
    far = distance(anchor, negative)
    if swap:
        far = call("minimum", far, distance(positive, negative))
    loss = call("clamp_min", margin + distance(anchor, positive) - far, 0.0)
    return _reduced(loss, reduction, "triplet_margin_with_distance_loss")


def gumbel_softmax(logits: Tensor, tau: float = 1.0, hard: bool = False, eps: float = 1e-10,
                   dim: int = -1) -> Tensor:
    """softmax((logits + g) / tau) along `dim`, g ~ Gumbel(0, 1) drawn from dlg's generator
    (dlg.manual_seed); `hard` gives the one-hot of the sample's argmax, with the soft sample's
    gradient (straight-through). `eps` is unused, as in torch."""
    exponential = -call("log1p", -call("rand_like", logits))  # Exp(1) from U[0, 1)
    soft = call("softmax", (logits - call("log", exponential)) / tau, dim)
    if not hard:
        return soft
    one_hot = call("zeros_like", logits).scatter(dim, soft.argmax(dim, keepdim=True), 1.0)
    return one_hot - soft.detach() + soft


def _in_place(name: str) -> Callable[..., Tensor]:
    def write(input: Tensor, *args: Any, **kwargs: Any) -> Tensor:  # noqa: A002 (torch's)
        return inplace.update(input, lambda x: call(name, x, *args, **kwargs))
    write.__name__ = write.__qualname__ = f"{name}_"
    write.__doc__ = f"{name}, written into `input` (frontend/inplace.py)."
    return write


IN_PLACE = {f"{name}_": _in_place(name)
            for name in ("relu", "elu", "leaky_relu", "hardtanh", "selu", "celu", "threshold",
                         "rrelu")}

# torch.nn.functional's activations that take `inplace` (after this many options, so
# F.leaky_relu(x, 0.2, True) binds it as torch does)
INPLACE_OPTIONS = {"relu": 0, "relu6": 0, "selu": 0, "silu": 0, "mish": 0, "hardswish": 0,
                   "hardsigmoid": 0, "elu": 1, "celu": 1, "leaky_relu": 1, "hardtanh": 2,
                   "rrelu": 3}


def with_inplace(fn: Callable[..., Tensor], n_options: int) -> Callable[..., Tensor]:
    """`fn` (an activation of dlg.nn.functional) taking torch's `inplace` argument:
    `inplace=True` writes the result into the input, as torch and the nn modules do."""
    def run(input: Tensor, *args: Any, **kwargs: Any) -> Tensor:  # noqa: A002 (torch's)
        write = kwargs.pop("inplace", False)
        if len(args) > n_options:
            write, args = args[n_options], args[:n_options] + args[n_options + 1:]
        if write:
            return inplace.update(input, lambda x: fn(x, *args, **kwargs))
        return fn(input, *args, **kwargs)
    run.__name__ = run.__qualname__ = fn.__name__
    run.__doc__ = f"{fn.__doc__}\n\n`inplace=True` writes the result into `input`."
    return run
