"""`dlg.use_deterministic_algorithms` / `are_deterministic_algorithms_enabled`: torch's switch
that refuses nondeterministic CUDA kernels. Eager dlg computes with NumPy on the CPU, the same
numbers at every run, so there is nothing to refuse: the setting is kept so a program (a
set_seed helper) reads back what it set; only torch's values are taken."""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgTypeError
from dlg.frontend.engine import caller_span

_state = {"mode": False, "warn_only": False}


def use_deterministic_algorithms(mode: Any, *, warn_only: Any = False) -> None:
    for name, value in (("mode", mode), ("warn_only", warn_only)):
        if not isinstance(value, bool):
            raise DlgTypeError(f"use_deterministic_algorithms: {name} must be a bool, got "
                               f"{type(value).__name__}", caller_span())
    _state.update(mode=mode, warn_only=warn_only)


def are_deterministic_algorithms_enabled() -> bool:
    return _state["mode"]


def is_deterministic_algorithms_warn_only_enabled() -> bool:
    return _state["warn_only"]
