"""ParameterList and ParameterDict: parameters held by position or by name, so a model with a
variable number of weights keeps torch's state_dict keys ("0", "1", ... or the names given). A
tensor or array put in becomes a Parameter, as in torch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dlg.frontend.nn.module import Module, NamedTable, Parameter


def _parameter(value: Any) -> Parameter:
    return value if isinstance(value, Parameter) else Parameter(value)


class ParameterList(Module):
    def __init__(self, values: Any = None):
        super().__init__()
        if values is not None:
            self.extend(values)

    def _key(self, i: int) -> str:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} is out of range for ParameterList of {len(self)}")
        return str(i % len(self))

    def __getitem__(self, i: int) -> Parameter:
        return self._parameters[self._key(i)]

    def __setitem__(self, i: int, value: Any) -> None:
        self._parameters[self._key(i)] = _parameter(value)

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self._parameters.values())

    def append(self, value: Any) -> ParameterList:
        self._parameters[str(len(self))] = _parameter(value)
        return self

    def extend(self, values: Any) -> ParameterList:
        for v in values:
            self.append(v)
        return self


class ParameterDict(NamedTable):
    """Parameters by name, in insertion order."""

    TABLE = "_parameters"

    def entry(self, value: Any) -> Parameter:
        return _parameter(value)
