"""torch.utils.checkpoint's `checkpoint` and `checkpoint_sequential`: activation recomputation.

Eagerly, `checkpoint(fn, *args)` is one `autograd.Function` (frontend/function.py): forward
runs fn with recording off, so the tape holds only the block's inputs and outputs and fn's
intermediate tensors are freed; the Function's backward, called when backward reaches the
block, runs fn again with recording on (on detached copies of the inputs, dlg's random draws
restored to where the first run started, so dropout draws the same mask) and backpropagates the
incoming gradients through that recomputed tape. That inner backward adds into the parameters'
`.grad` itself, as torch's reentrant checkpoint does, so parameters fn reads without taking them
as arguments get their gradients; the inputs' gradients are the Function's. A placeholder leaf
that requires grad makes the block recorded even when no input needs a gradient (torch's
non-reentrant behaviour, which gives the parameters theirs there too). As with torch's
reentrant variant, `dlg.autograd.grad` through a block (parameters' gradients would go to
`.grad`, not to the result) and a second derivative are refused.

Traced (`dlg.trace`) or without grad, fn simply runs: recomputation is a memory choice of the
gradient computation, and a compiled model's memory is planned by the compiler.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.function import Function, FunctionCtx, once_differentiable
from dlg.frontend.nn.module import Module
from dlg.frontend.tensor import Tensor


def checkpoint(function: Callable[..., Any], *args: Any, use_reentrant: bool | None = None,
               context_fn: Callable[[], Any] | None = None, determinism_check: str = "default",
               debug: bool = False, preserve_rng_state: bool = True, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)`, its intermediate activations recomputed at backward instead
    of kept. Values and gradients are those of calling `function`; `use_reentrant` may be
    either (dlg's one implementation serves both), keyword arguments need `use_reentrant=False`
    as torch's, and `context_fn`, `determinism_check` and `debug` are accepted at their
    defaults only."""
    if context_fn is not None or determinism_check != "default" or debug:
        raise DlgValueError("checkpoint: context_fn, determinism_check and debug are not "
                            "supported (leave them at their defaults)", engine.caller_span())
    if not callable(function):
        raise DlgTypeError(f"checkpoint: the function must be callable, got "
                           f"{type(function).__name__}", engine.caller_span())
    if kwargs and use_reentrant is not False:
        raise DlgValueError("checkpoint: keyword arguments to the function need "
                            "use_reentrant=False (torch's reentrant variant refuses them)",
                            engine.caller_span())
    run = (lambda *a: function(*a, **kwargs)) if kwargs else function
    if not engine.grad_enabled() or engine.current_tracer() is not None:
        return run(*args)
    placeholder = Tensor.of(0.0, requires_grad=True)
    state = copy.deepcopy(engine.rng()) if preserve_rng_state else None
    return _Checkpoint.apply(run, state, placeholder, *args)


class _Checkpoint(Function):
    """The block as one op: forward unrecorded, backward recomputes and backpropagates."""

    @staticmethod
    def forward(ctx: FunctionCtx, run: Callable[..., Any], state: Any, placeholder: Tensor,
                *args: Any) -> Any:
        ctx.run, ctx.state, ctx.args = run, state, args
        return run(*args)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, *grads: Tensor | None) -> tuple[Tensor | None, ...]:
        inputs = [a.detach().requires_grad_(a.requires_grad) if isinstance(a, Tensor) else a
                  for a in ctx.args]
        with engine.enable_grad():
            with engine.drawing_from(copy.deepcopy(ctx.state)):
                out = ctx.run(*inputs)
            outs = [o for o in (out if isinstance(out, tuple) else (out,))
                    if isinstance(o, Tensor)]
            terms = [(o * g).sum() for o, g in zip(outs, grads)
                     if o.requires_grad and g is not None]
            if terms:
                sum(terms[1:], terms[0]).backward()
        return (None, None, None, *(a.grad if isinstance(a, Tensor) else None for a in inputs))


def checkpoint_sequential(functions: Module | Sequence[Callable[..., Any]], segments: int,
                          input: Any, use_reentrant: bool | None = None,
                          preserve_rng_state: bool = True) -> Any:
    """torch's: the modules split into `segments` runs of len // segments, each but the last
    checkpointed; the last runs directly (its activations are needed at once)."""
    layers = list(functions.children()) if isinstance(functions, Module) else list(functions)
    if not isinstance(segments, int) or segments < 1:
        raise DlgValueError(f"checkpoint_sequential: segments must be a positive int, got "
                            f"{segments!r}", engine.caller_span())
    size = len(layers) // segments
    end = -1
    for start in range(0, size * (segments - 1), size):
        end = start + size - 1
        input = checkpoint(_run(layers[start:end + 1]), input, use_reentrant=use_reentrant,
                           preserve_rng_state=preserve_rng_state)
    return _run(layers[end + 1:])(input)


def _run(layers: list[Callable[..., Any]]) -> Callable[[Any], Any]:
    def forward(x: Any) -> Any:
        for layer in layers:
            x = layer(x)
        return x
    return forward
