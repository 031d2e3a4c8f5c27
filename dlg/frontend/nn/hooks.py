"""Hooks on modules, as torch's: a pre-hook sees (and may replace) the positional inputs before
`forward`, a forward hook sees the inputs and the output (and may replace the output). Full
backward hooks see the gradients of the module's outputs (a backward pre-hook, which may replace
them) and then of its positional inputs (`hook(module, grad_input, grad_output)`, which may
replace grad_input), as torch's BackwardHook does: while grad mode is on, the tensor inputs and
outputs pass through identity copies whose gradients a `grad_hooks.Together` hook reads. A
load_state_dict pre-hook sees the state before it is copied. Each registration returns a
RemovableHandle."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from dlg.errors import DlgValueError
from dlg.frontend import engine, grad_hooks
from dlg.frontend.handles import RemovableHandle, add_hook
from dlg.frontend.tensor import Tensor


class Hooks:
    """The hook tables of a Module (a mixin: Module.__call__ runs `hooked_call` when any table
    holds a hook). Values are (hook, with_kwargs)."""

    _forward_pre_hooks: OrderedDict[int, tuple[Callable[..., Any], bool]]
    _forward_hooks: OrderedDict[int, tuple[Callable[..., Any], bool]]
    _backward_pre_hooks: OrderedDict[int, Callable[..., Any]]
    _backward_hooks: OrderedDict[int, Callable[..., Any]]
    _load_state_dict_pre_hooks: OrderedDict[int, Callable[..., Any]]

    def register_forward_pre_hook(self, hook: Callable[..., Any], *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """`hook(module, args)` (or `hook(module, args, kwargs)` with `with_kwargs`) before each
        forward; a result other than None replaces the args (a non-tuple is one argument), or
        with `with_kwargs` is an (args, kwargs) pair."""
        return add_hook(self._forward_pre_hooks, (hook, with_kwargs), prepend)

    def register_forward_hook(self, hook: Callable[..., Any], *, prepend: bool = False,
                              with_kwargs: bool = False) -> RemovableHandle:
        """`hook(module, args, output)` (or `hook(module, args, kwargs, output)`) after each
        forward; a result other than None replaces the output."""
        return add_hook(self._forward_hooks, (hook, with_kwargs), prepend)

    def register_full_backward_pre_hook(self, hook: Callable[..., Any], prepend: bool = False
                                        ) -> RemovableHandle:
        """`hook(module, grad_output)` when the gradients of the module's outputs are known (a
        tuple, one per output tensor, None where none flows); a result other than None replaces
        grad_output."""
        return add_hook(self._backward_pre_hooks, hook, prepend)

    def register_full_backward_hook(self, hook: Callable[..., Any], prepend: bool = False
                                    ) -> RemovableHandle:
        """`hook(module, grad_input, grad_output)` when the gradients of the module's positional
        inputs are known (one per argument, None for one that is not a tensor requiring grad);
        a result other than None replaces grad_input. Eager only: tracing ignores it."""
        return add_hook(self._backward_hooks, hook, prepend)

    def register_load_state_dict_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """`hook(module, state_dict, prefix, local_metadata, strict, missing_keys,
        unexpected_keys, error_msgs)` when load_state_dict is about to copy into this module
        (`prefix`: its names' start in state_dict, which the hook may change); a message
        appended to error_msgs makes the load an error (lazy modules size their placeholders
        so, as torch's)."""
        return add_hook(self._load_state_dict_pre_hooks, hook, False)

    def register_backward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        raise DlgValueError("register_backward_hook (torch's deprecated form, whose gradients "
                            "are the last op's) is not supported; use "
                            "register_full_backward_hook", engine.caller_span())

    def hooked_call(self, forward: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        """`forward(*args, **kwargs)` between the pre-hooks and the forward hooks, watched by
        the backward hooks when there are any."""
        for hook, with_kwargs in list(self._forward_pre_hooks.values()):
            result = hook(self, args, kwargs) if with_kwargs else hook(self, args)
            if result is None:
                continue
            if with_kwargs:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise DlgValueError(f"forward pre-hook must return None or a tuple of "
                                        f"(new_args, new_kwargs), but got {result}.",
                                        engine.caller_span())
                args, kwargs = result
            else:
                args = result if isinstance(result, tuple) else (result,)
        backward = ((self._backward_hooks or self._backward_pre_hooks)
                    and engine.grad_enabled() and engine.current_tracer() is None)
        if backward:
            watch = _BackwardCall(self)
            args = watch.inputs(args)
        out = forward(*args, **kwargs)
        for hook, with_kwargs in list(self._forward_hooks.values()):
            result = hook(self, args, kwargs, out) if with_kwargs else hook(self, args, out)
            if result is not None:
                out = result
        return watch.outputs(out) if backward else out


class _BackwardCall:
    """One call's backward hooks: the inputs' and outputs' copies, and grad_output between the
    outputs' gradients (backward reaches them first) and the inputs'."""

    def __init__(self, module: Hooks):
        self.module = module
        self.positions: list[int] = []  # the arguments copied
        self.count = 0
        self.grad_output: tuple[Any, ...] = ()

    def inputs(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        self.count = len(args)
        self.positions = [i for i, a in enumerate(args)
                          if isinstance(a, Tensor) and a.requires_grad]
        copies = list(args)
        for i in self.positions:
            copies[i] = args[i].clone()
        if self.positions:
            grad_hooks.register_together([copies[i] for i in self.positions], self.on_inputs)
        return tuple(copies)

    def outputs(self, out: Any) -> Any:
        many = isinstance(out, (tuple, list))
        items = list(out) if many else [out]
        positions = [i for i, o in enumerate(items) if isinstance(o, Tensor) and o.requires_grad]
        if not positions:
            return out
        for i in positions:
            items[i] = items[i].clone()
        grad_hooks.register_together([items[i] for i in positions], self.on_outputs)
        return type(out)(items) if many else items[0]

    def on_outputs(self, grads: tuple[Any, ...]) -> Any:
        given = grads
        for hook in list(self.module._backward_pre_hooks.values()):
            result = hook(self.module, grads)
            if result is not None:
                grads = tuple(result) if isinstance(result, (tuple, list)) else (result,)
        self.grad_output = grads
        if not self.positions:  # no input wants a gradient: the hooks run now, as torch's
            self.on_inputs(())
        return None if grads is given else grads

    def on_inputs(self, grads: tuple[Any, ...]) -> Any:
        grad_input: list[Any] = [None] * self.count
        for i, g in zip(self.positions, grads):
            grad_input[i] = g
        given = tuple(grad_input)
        current = given
        for hook in list(self.module._backward_hooks.values()):
            result = hook(self.module, current, self.grad_output)
            if result is not None:
                current = tuple(result) if isinstance(result, (tuple, list)) else (result,)
        if current is given or not self.positions:
            return None
        return tuple(current[i] for i in self.positions)
