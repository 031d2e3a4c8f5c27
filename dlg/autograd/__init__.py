"""`dlg.autograd`: torch.autograd's spellings for eager tensors: `grad` (gradients returned,
not accumulated), `backward` of several tensors at once, the grad-mode switches, and
`Function` (an op whose gradient the user writes, dlg.frontend.function)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.frontend import autograd, grad_hooks
from dlg.frontend.engine import (
    caller_span,
    enable_grad,
    inference_mode,
    no_grad,
    set_grad_enabled,
)
from dlg.frontend.function import Function, FunctionCtx, once_differentiable
from dlg.frontend.tensor import Tensor, foreign_tensors, run_graph
from dlg.ir.anomaly import detect_anomaly, set_anomaly as set_detect_anomaly


def grad(outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool | None = None,
         materialize_grads: bool = False) -> tuple[Tensor | None, ...]:
    """torch.autograd.grad: d sum(outputs * grad_outputs) / d each input, returned (not added
    to `.grad`); an input the outputs do not depend on is an error unless `allow_unused` (then
    None, or zeros with `materialize_grads`). The tape is kept whatever `retain_graph` says
    (a second backward through it works, where torch would ask for retain_graph=True). With
    `create_graph`, the gradients are recorded, so they can be differentiated again."""
    if create_graph:
        autograd.check_no_hooks("grad(create_graph=True)")
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    grad_outputs = foreign_tensors(grad_outputs)  # torch.ones_like(out) seeds: dlg's
    seeds = [None] * len(outs) if grad_outputs is None else (
        [grad_outputs] if isinstance(grad_outputs, Tensor) else list(grad_outputs))
    if len(seeds) != len(outs):
        raise DlgValueError(f"grad(): {len(seeds)} grad_outputs for {len(outs)} outputs",
                            caller_span())
    if create_graph and any(isinstance(s, Tensor) and s.requires_grad for s in seeds):
        # a seed requiring grad is part of the gradients' graph (torch's gradgradcheck and
        # double-vjp differentiate through it): d sum <out, seed> / d inputs, the sum recorded
        total = sum((out if s is None else (out * s).sum() for out, s in zip(outs, seeds)),
                    Tensor.of(np.zeros((), outs[0].tensor_type.dtype.np)))
        return grad(total, inputs, None, retain_graph, create_graph, allow_unused,
                    materialize_grads)
    roots = []
    for out, seed in zip(outs, seeds):
        array = None if seed is None else np.asarray(seed, out.tensor_type.dtype.np)
        array = autograd.check_root(out, array, "grad()")
        roots.append((out, array))
    wanted = autograd.requiring_grad("grad()", ins)
    results = []
    order = autograd.tape([out for out, _ in roots])
    roots = grad_hooks.with_hooks(roots, order, autograd.gradients)
    replay = run_graph if create_graph else None
    for t, value in zip(wanted, autograd.gradients(roots, order, wanted, replay)):
        if value is not None and t.record is None and not create_graph:
            value = grad_hooks.run(t, value)
        if value is None and not (allow_unused or materialize_grads):
            raise DlgValueError("grad(): one of the inputs was not used to compute the "
                                "outputs (pass allow_unused=True)", caller_span())
        if value is None and materialize_grads:
            value = np.zeros(t.tensor_type.shape, t.tensor_type.dtype.np)
        results.append(None if value is None else value if isinstance(value, Tensor)
                       else Tensor.of(value))
    return tuple(results)


def backward(tensors: Any, grad_tensors: Any = None, retain_graph: bool | None = None,
             create_graph: bool = False, inputs: Any = None) -> None:
    """`t.backward(g)` for each tensor and its gradient (None for a scalar)."""
    many = not isinstance(tensors, Tensor)
    outs = list(tensors) if many else [tensors]
    seeds = [None] * len(outs) if grad_tensors is None else (
        list(grad_tensors) if many else [grad_tensors])
    for out, seed in zip(outs, seeds, strict=True):
        out.backward(seed, retain_graph, create_graph, inputs)


def Variable(data: Any, requires_grad: bool = False, volatile: bool = False) -> Tensor:  # noqa: N802
    """torch.autograd.Variable, from before tensors carried gradients (PyTorch 0.3 code): a
    tensor sharing `data`'s storage, requiring grad if asked (`volatile` is ignored, as in
    torch since 0.4: use no_grad)."""
    out = data.detach() if isinstance(data, Tensor) else Tensor.of(np.asarray(data))
    return out.requires_grad_() if requires_grad else out


# torch.autograd.functional (jacobian, hessian, vjp, ...) and gradcheck, written on `grad` above,
# and torch.autograd.function's spelling of once_differentiable
from dlg.autograd import forward_ad, function, functional, profiler  # noqa: E402
from dlg.autograd.gradcheck import gradcheck, gradgradcheck  # noqa: E402

__all__ = ["Function", "FunctionCtx", "Variable", "backward", "detect_anomaly", "enable_grad",
           "forward_ad", "function", "functional", "grad", "gradcheck", "gradgradcheck",
           "inference_mode",
           "no_grad", "once_differentiable", "profiler", "set_detect_anomaly", "set_grad_enabled"]
