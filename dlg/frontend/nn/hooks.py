"""Forward hooks on modules, as torch's: a pre-hook sees (and may replace) the positional
inputs before `forward`, a forward hook sees the inputs and the output (and may replace the
output). Each registration returns a RemovableHandle."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.handles import RemovableHandle, add_hook


class Hooks:
    """The hook tables of a Module (a mixin: Module.__call__ runs `hooked_call` when any table
    holds a hook). Values are (hook, with_kwargs)."""

    _forward_pre_hooks: OrderedDict[int, tuple[Callable[..., Any], bool]]
    _forward_hooks: OrderedDict[int, tuple[Callable[..., Any], bool]]

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

    def hooked_call(self, forward: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        """`forward(*args, **kwargs)` between the pre-hooks and the forward hooks."""
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
        out = forward(*args, **kwargs)
        for hook, with_kwargs in list(self._forward_hooks.values()):
            result = hook(self, args, kwargs, out) if with_kwargs else hook(self, args, out)
            if result is not None:
                out = result
        return out
