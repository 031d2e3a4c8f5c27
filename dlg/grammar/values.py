"""The values that .dlg code computes with during elaboration.

Static values are plain Python (int, float, bool, str, None, tuples), symbolic dims (`Sym`) and
dtypes. Tensors are IR values (`GraphTensor`). Definitions are `LayerClass`, `Function`, `Builtin`;
an instantiated layer is a `LayerInstance` holding its parameters and sub-layers by name.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dlg.errors import DlgNameError, DlgShapeError, DlgTypeError, Span
from dlg.grammar import ast
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph, Value
from dlg.ir.types import TensorType


@dataclass(frozen=True, eq=False)
class GraphTensor:
    """An IR value, remembering which graph (main graph or a scan body) it lives in."""

    value: Value
    graph: Graph
    type: TensorType

    def __repr__(self) -> str:
        return f"<tensor {self.type}>"


@dataclass(frozen=True, eq=False)
class Function:
    """A `def` from some module; its body runs in that module's scope."""

    node: ast.FuncDef
    scope: Scope


@dataclass(frozen=True, eq=False)
class LayerClass:
    """A `layer` definition; calling it in a `layer NAME = ...` declaration instantiates it."""

    node: ast.LayerDef
    scope: Scope


@dataclass(eq=False)
class LayerInstance:
    """An instantiated layer: its attributes, params and sub-layers live in `scope`."""

    cls: LayerClass
    prefix: str  # "fc1." ; "" for the model itself
    scope: Scope
    forward: ast.ForwardDef | None = None
    params: dict[str, str] = field(default_factory=dict)  # short name -> full name

    def __repr__(self) -> str:
        return f"<layer {self.prefix.rstrip('.')}: {self.cls.node.name}>"


@dataclass(frozen=True, eq=False)
class Builtin:
    """A function of the language implemented in Python (see builtins.py)."""

    name: str
    fn: Callable[..., Any]
    static_only: bool = False  # usable in attribute arithmetic (sqrt, range, ...)


@dataclass(frozen=True)
class InitSpec:
    """An initialiser call (`uniform(-k, k)`) waiting for the param's shape."""

    name: str
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]
    span: Span | None = None


# Python's spellings of the .dlg literals, which PyTorch code brings along (`batch_first=True`)
_PYTHON_LITERALS = {"True": "true", "False": "false", "None": "none"}


class Scope:
    """Names visible at one point; lookups fall back to the parent scope."""

    def __init__(self, parent: Scope | None = None, names: dict[str, Any] | None = None):
        self.parent = parent
        self.names: dict[str, Any] = dict(names or {})

    def lookup(self, name: str, span: Span | None) -> Any:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        hint = (f"; did you mean {_PYTHON_LITERALS[name]}? (.dlg spells booleans true/false "
                f"and none)" if name in _PYTHON_LITERALS else suggest(name, self.visible()))
        raise DlgNameError(f"unknown name {name!r}{hint}", span)

    def has(self, name: str) -> bool:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return True
            scope = scope.parent
        return False

    def visible(self) -> Iterator[str]:
        scope: Scope | None = self
        while scope is not None:
            yield from scope.names
            scope = scope.parent

    def __setitem__(self, name: str, value: Any) -> None:
        self.names[name] = value


def suggest(name: str, candidates: Any) -> str:
    """A ' (did you mean ...?)' suffix when a close name exists."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def describe(value: Any) -> str:
    """A short phrase naming the kind of a value, for error messages."""
    if isinstance(value, GraphTensor):
        return f"a tensor {value.type}"
    if isinstance(value, LayerInstance):
        return f"layer {value.prefix.rstrip('.')} ({value.cls.node.name})"
    if isinstance(value, LayerClass):
        return f"the layer definition {value.node.name}"
    if isinstance(value, Function):
        return f"the function {value.node.name}"
    if isinstance(value, Builtin):
        return f"the builtin {value.name}"
    if isinstance(value, bool):
        return f"the bool {str(value).lower()}"
    if isinstance(value, DType):
        return f"the dtype {value.value}"
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    return f"{type(value).__name__} {value!r}"


def index_tuple(value: Any, items: list[Any], span: Span) -> Any:
    """`t[i]` and `t[a:b]` on a static tuple such as `shape(x)` (tensors: dlg.functions)."""
    if not isinstance(value, tuple):
        raise DlgTypeError(f"{describe(value)} cannot be indexed", span)
    if len(items) != 1 or items[0] is Ellipsis:
        raise DlgTypeError("a tuple takes one index or slice", span)
    (item,) = items
    if isinstance(item, slice):
        parts = (item.start, item.stop, item.step)
        if item.step == 0 or not all(v is None or isinstance(v, int) for v in parts):
            raise DlgTypeError("a tuple slice takes int bounds and a nonzero step", span)
        return value[item]
    if isinstance(item, bool) or not isinstance(item, int):
        raise DlgTypeError(f"a tuple index must be an int, got {describe(item)}", span)
    if not -len(value) <= item < len(value):
        raise DlgShapeError(f"index {item} is out of range for a tuple of {len(value)}", span)
    return value[item]
