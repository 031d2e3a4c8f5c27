"""Initialiser names in `param w: f32[...] = uniform(-k, k)`: they record the call (an InitSpec)
and dlg.ir.init fills the tensor once the param's shape is known."""

from __future__ import annotations

from typing import Any

from dlg.grammar.values import Builtin, InitSpec
from dlg.ir.init import INITIALIZERS


def _spec(name: str) -> Builtin:
    def make(E: Any, *args: Any, **kwargs: Any) -> InitSpec:
        return InitSpec(name, tuple(args), tuple(sorted(kwargs.items())), E.user_span)
    return Builtin(name, make)


INITIALIZER_NAMES = {name: _spec(name) for name in INITIALIZERS}
