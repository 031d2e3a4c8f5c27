"""The .dlg syntax tree: frozen dataclasses, each with the span of the text it came from.

The parser only builds these; names, layers, imports and params are resolved in elaborate.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from dlg.errors import Span

_NOSPAN = Span("<unknown>", 0, 0)


@dataclass(frozen=True)
class Node:
    span: Span = field(default=_NOSPAN, compare=False, repr=False, kw_only=True)


# ---- expressions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Name(Node):
    id: str


@dataclass(frozen=True)
class TemplateName(Node):
    """`weight_ih_l{layer}`: a name completed by the value of another name."""

    template: str


@dataclass(frozen=True)
class Literal(Node):
    value: Any  # int, float, str, bool or None


@dataclass(frozen=True)
class TupleExpr(Node):
    items: tuple[Expr, ...]
    brackets: bool = False  # written [a, b] rather than (a, b)


@dataclass(frozen=True)
class BinOp(Node):
    op: str  # + - * / // % @ ** == != < <= > >= and or
    left: Expr
    right: Expr


@dataclass(frozen=True)
class UnaryOp(Node):
    op: str  # - + not
    operand: Expr


@dataclass(frozen=True)
class Keyword(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class Call(Node):
    func: Expr
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]


@dataclass(frozen=True)
class SliceExpr(Node):
    start: Expr | None
    stop: Expr | None
    step: Expr | None


@dataclass(frozen=True)
class EllipsisExpr(Node):
    pass


@dataclass(frozen=True)
class Subscript(Node):
    value: Expr
    items: tuple[Expr, ...]  # expressions, SliceExpr or EllipsisExpr


@dataclass(frozen=True)
class GetAttr(Node):
    value: Expr
    name: str


@dataclass(frozen=True)
class Comprehension(Node):
    """`[elt for var in iter]`: elt for each item, a tuple (or in a layer declaration, a layer
    list); written as a call's only argument, `f(elt for var in iter)`, the items are the
    call's arguments."""

    elt: Expr
    var: str
    iter: Expr
    brackets: bool = True


@dataclass(frozen=True)
class DictExpr(Node):
    """`{a: Linear(4, 4), b: ReLU()}`: named layers (PyTorch's ModuleDict)."""

    keys: tuple[str, ...]
    values: tuple[Expr, ...]


Expr = Union[Name, TemplateName, Literal, TupleExpr, BinOp, UnaryOp, Call, SliceExpr,
             EllipsisExpr, Subscript, GetAttr, Comprehension, DictExpr]


# ---- statements ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TensorTypeExpr(Node):
    dtype: str
    dims: tuple[Expr, ...]


@dataclass(frozen=True)
class Param(Node):
    """A parameter of a layer/def signature: `name: annotation = default`."""

    name: str
    annotation: str | None
    default: Expr | None


@dataclass(frozen=True)
class InputDecl(Node):
    name: str
    type: TensorTypeExpr


@dataclass(frozen=True)
class ParamDecl(Node):
    name: Name | TemplateName
    type: TensorTypeExpr
    init: Expr | None
    buffer: bool = False


@dataclass(frozen=True)
class LayerDecl(Node):
    name: Name | TemplateName
    value: Expr


@dataclass(frozen=True)
class OutputDecl(Node):
    names: tuple[str, ...]
    value: Expr | None


@dataclass(frozen=True)
class ForwardDef(Node):
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class MetricDecl(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class Update(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class Emit(Node):
    name: str
    value: Expr


Target = Union[str, tuple["Target", ...]]


@dataclass(frozen=True)
class Assign(Node):
    targets: tuple[Target, ...]
    value: Expr


@dataclass(frozen=True)
class Return(Node):
    values: tuple[Expr, ...]


@dataclass(frozen=True)
class If(Node):
    cond: Expr
    body: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...]


@dataclass(frozen=True)
class For(Node):
    var: str
    iter: Expr
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class Assert(Node):
    """`assert cond, "message"`: a static check with a user-facing message."""

    cond: Expr
    message: Expr | None


@dataclass(frozen=True)
class Scan(Node):
    sequences: tuple[tuple[str, Expr], ...]  # (step name, sequence)
    options: tuple[Keyword, ...]  # axis=, reverse=
    carries: tuple[Keyword, ...]  # carry name = initial value
    body: tuple[Stmt, ...]


Stmt = Union[InputDecl, ParamDecl, LayerDecl, OutputDecl, ForwardDef, MetricDecl, Update, Emit,
             Assign, Return, If, For, Scan, Assert]


# ---- top level
@dataclass(frozen=True)
class Import(Node):
    path: str


@dataclass(frozen=True)
class ModelDef(Node):
    name: str
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class TrainDef(Node):
    name: str
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class LayerDef(Node):
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class FuncDef(Node):
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]


TopLevel = Union[Import, ModelDef, TrainDef, LayerDef, FuncDef]


@dataclass(frozen=True)
class Module(Node):
    file: str
    items: tuple[TopLevel, ...]
