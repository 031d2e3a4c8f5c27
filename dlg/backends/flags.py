"""A torch.backends switch: a settable bool with torch's default, kept on the module (or object)
that declares it. It only records the setting: nothing in eager dlg reads it."""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

from dlg.errors import DlgTypeError
from dlg.frontend.engine import caller_span


class Flag:
    """A bool attribute with a default; any other value is torch's TypeError (torch refuses
    even 0 and 1)."""

    def __init__(self, default: bool):
        self.default = default

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.slot = name, f"_flag_{name}"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj.__dict__.get(self.slot, self.default)

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = checked_bool(self.name, value)


def checked_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise DlgTypeError(f"{name} expects a bool, got {type(value).__name__} {value!r}",
                           caller_span())
    return value


def module_with_flags(name: str, flags: type[ModuleType]) -> None:
    """Give module `name` the data descriptors of class `flags` (a ModuleType subclass), so
    `dlg.backends.cudnn.benchmark = 1` is checked as torch checks it."""
    sys.modules[name].__class__ = flags
