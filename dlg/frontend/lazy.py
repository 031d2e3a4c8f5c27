"""`dlg.compile(fn)` of a function without example inputs, as `torch.compile(fn)` is written (a
module gets frontend/compiled.py's OptimizedModule): the function is traced and compiled at its
first call, on that call's arguments, and again when a later call's arguments differ in what
the trace fixed (a dtype, a rank, a size other than the batch axis). The batch axis stays
symbolic (trace.batch_axes: axis 0, or the first axis of the batch's size, as an RNN state's),
so new batch sizes reuse the code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dlg import foreign
from dlg.frontend.tensor import Tensor, foreign_array
from dlg.frontend.trace import batch_axes, batch_size, trace
from dlg.runtime.executable import Executable

Signature = tuple[tuple[str, tuple[int | None, ...]] | int, ...]


class LazyExecutable:
    """A module or function compiled per argument signature at its first call with it."""

    def __init__(self, fn: Callable[..., Any], target: str):
        self.fn, self.target = fn, target
        self.compiled: dict[Signature, Executable] = {}

    def __call__(self, *args: Any) -> Any:
        arrays = [_leaves(a) for a in args]
        flat = [a for leaves in arrays for a in leaves]
        batch = batch_size(flat)
        key = tuple((str(a.dtype), _without(a.shape, batch_axes(a.shape, batch))) for a in flat)
        key += tuple(len(leaves) for leaves in arrays)
        exe = self.compiled.get(key)
        if exe is None:
            exe = self.compiled[key] = Executable(trace(self.fn, *args), self.target)
        return exe(*flat)

    def __repr__(self) -> str:
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        return f"<dlg.compile of {name}: {len(self.compiled)} compiled signature(s)>"


def _without(shape: tuple[int, ...], axes: dict[int, str]) -> tuple[int | None, ...]:
    """The sizes a trace fixes: the symbolic batch axis left out."""
    return tuple(None if a in axes else d for a, d in enumerate(shape))


def _leaves(value: Any) -> list[np.ndarray]:
    """An argument's arrays: a tuple or list of tensors is one input per element, as traced."""
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in _leaves(v)]
    if isinstance(value, Tensor):
        return [value.numpy_view()]
    return [foreign_array(value) if foreign.is_foreign(value) else np.asarray(value)]
