"""The IR text of `dlg.ir.printer` read back into a `Graph` (STYLE §7): the printer's one parser.

`format_graph(parse_ir(format_graph(g))) == format_graph(g)` for every graph whose arrays were
printed whole. The grammar is `ir.lark` (LALR). Nodes are rebuilt as the printer shows them:
a value printed `%v7` is the unnamed node 7, any other name is the node's name; arguments come
first, as printed. Every node is checked as the Builder checks it (attribute schema, `infer`
against the printed types), so a hand-edited golden file cannot hold an ill-typed graph. Every
mistake is a DlgError at the line and column of the offending text.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from lark import Lark, Token, Transformer, Tree
from lark.exceptions import UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from dlg.errors import DlgError, DlgNameError, DlgSyntaxError, DlgTypeError, Span
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.opdef import REGISTRY, OpDef
from dlg.ir.ops.source import INPUT, PARAM
from dlg.ir.printer import ARRAY_LIMIT
from dlg.ir.shapes import Dim, Sym
from dlg.ir.types import TensorType

GRAMMAR = Path(__file__).with_name("ir.lark")
_ANONYMOUS = re.compile(r"v(\d+)")  # the printer's name for a node without one
_SPAN = re.compile(r"(?:(.+):(\d+):(\d+))?\s*(backward)?")


@cache
def _lark() -> Lark:
    return Lark.open(str(GRAMMAR), parser="lalr", maybe_placeholders=False)


def parse_ir(text: str, file: str = "<ir>") -> Graph:
    """The graph `text` prints; raises a DlgError at the first problem."""
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(e, text, file) from None
    reader = _Reader(file, text)
    graph = tree.children[0]
    assert isinstance(graph, Tree)
    try:
        return reader.graph(graph)
    except VisitError as e:  # lark wraps what the value transformer raises
        if isinstance(e.orig_exc, DlgError):
            raise e.orig_exc from None
        raise


def _syntax_error(e: UnexpectedInput, text: str, file: str) -> DlgSyntaxError:
    line, col = max(getattr(e, "line", 1), 1), max(getattr(e, "column", 1), 1)
    width = 1
    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        message = "unexpected end of the IR text"
        line = text.rstrip().count("\n") + 1
        col = len(text.rstrip()) - text.rstrip().rfind("\n")
    elif isinstance(e, UnexpectedToken):
        expected = ", ".join(sorted(_describe(name) for name in e.expected))
        message = f"unexpected {str(e.token)!r} in the IR text; expected one of: {expected}"
        width = len(str(e.token))
    else:
        message = f"unexpected character {text[e.pos_in_stream or 0]!r} in the IR text"
    return DlgSyntaxError(message, Span(file, line, col, line, col + width, text))


_WORDS = {"VALUE": "a %value", "NAME": "a name", "STRING": "a string", "TYPE": "a type",
          "SPAN": "a # span", "INT": "an int", "FLOAT": "a float", "KIND": "param/buffer"}


def _describe(terminal: str) -> str:
    """A terminal as the reader knows it: its text ('return') or what it stands for."""
    pattern = _lark().get_terminal(terminal).pattern
    return repr(pattern.value) if pattern.type == "str" else _WORDS.get(terminal, terminal)


class _Bare(str):
    """A bare name in an attribute: a symbolic dim (`N`) or a dtype (`f32`), as its kind says."""


def _dim(v: Any) -> Any:
    return Sym.named(v) if isinstance(v, _Bare) else v


class _Values(Transformer):
    """Attribute values to Python: ints, floats, str, bool, None, lists, dims, arrays."""

    def __init__(self, reader: _Reader):
        super().__init__()
        self.reader = reader

    def INT(self, tok: Token) -> int:
        return int(tok)

    def FLOAT(self, tok: Token) -> float:
        return float(tok)

    def STRING(self, tok: Token) -> str:
        return json.loads(tok)

    def TRUE(self, tok: Token) -> bool:
        return True

    def FALSE(self, tok: Token) -> bool:
        return False

    def NONE(self, tok: Token) -> None:
        return None

    def name(self, c: list) -> _Bare:
        return _Bare(c[0])

    def add(self, c: list) -> Dim:
        return _dim(c[0]) + _dim(c[1])

    def sub(self, c: list) -> Dim:
        return _dim(c[0]) - _dim(c[1])

    def mul(self, c: list) -> Dim:
        return _dim(c[0]) * _dim(c[1])

    def neg(self, c: list) -> Any:
        return -_dim(c[0])

    def sequence(self, c: list) -> list:
        return c

    def array(self, c: list) -> np.ndarray:
        tok, items = c[0], c[1:]
        t = self.reader.type(tok)
        shape = tuple(d for d in t.shape if isinstance(d, int))
        if len(shape) != t.rank:
            raise DlgTypeError(f"an array's shape must be concrete, got {t}", self.reader.at(tok))
        parts = 2 if t.dtype.is_complex else 1  # a complex element: its real and imaginary parts
        if len(items) != parts * math.prod(shape):
            raise DlgTypeError(f"{t} holds {math.prod(shape)} elements"
                               f"{' (two numbers each)' if parts == 2 else ''}, {len(items)} "
                               f"given", self.reader.at(tok))
        if parts == 2:
            return np.array(items, dtype=t.dtype.real.np).view(t.dtype.np).reshape(shape)
        return np.array(items, dtype=t.dtype.np).reshape(shape)

    def elided_array(self, c: list) -> None:
        raise DlgSyntaxError(f"this array was elided when printed (over {ARRAY_LIMIT} elements), "
                             "so the text cannot rebuild it; use the JSON form "
                             "(dlg.ir.serialize)", self.reader.at(c[0]))


class _Reader:
    """Builds graphs from parse trees, checking every node as the Builder does."""

    def __init__(self, file: str, source: str):
        self.file = file
        self.source = source
        self.values = _Values(self)

    def at(self, tok: Token) -> Span:
        return Span(self.file, tok.line or 1, tok.column or 1, tok.end_line, tok.end_column,
                    self.source)

    def type(self, tok: Token) -> TensorType:
        try:
            return TensorType.parse(str(tok))
        except ValueError as e:  # an unknown dtype or a malformed dim
            raise DlgSyntaxError(f"bad type {str(tok)!r}: {e}", self.at(tok)) from None

    def graph(self, tree: Tree) -> Graph:
        label_tok, *children = _kids(tree)
        parts = {k: _trees(children, k) for k in ("argument", "result", "node", "updates",
                                                  "binding")}
        lines = parts["argument"] + parts["node"]
        ids = _Ids([self.base(line) for line in lines])
        scope = _Scope()
        nodes: dict[int, Node] = {}
        for line in lines:
            nid, name = ids.next()
            if line.data == "argument":
                node = self.argument(nid, line)
            else:
                node = self.node(nid, name, line, scope)
            nodes[nid] = node
            for v, t, tok in zip(node.outs, node.types, _defined(line)):
                if str(tok) in scope.values:
                    raise DlgNameError(f"{tok} is defined twice", self.at(tok))
                scope.values[str(tok)], scope.types[v] = v, t
        outputs = [self.binding(b, scope) for b in parts["binding"]]
        self.check_results(label_tok, parts["result"], outputs, scope)
        updates = [self.binding(b, scope) for u in parts["updates"] for b in _kids(u)]
        return Graph(_label(label_tok), nodes, outputs, updates)

    def base(self, line: Tree) -> str:
        """The name a node's values were printed from (`x` for `%x`, `v7` for `%v7_0, %v7_1`)."""
        toks = _defined(line)
        names = [str(t)[1:] for t in toks]
        if len(names) == 1:
            return names[0]
        base = names[0][:-len("_0")] if names[0].endswith("_0") else ""
        if not base or names != [f"{base}_{i}" for i in range(len(names))]:
            raise DlgSyntaxError("the values of a multi-output node are named %name_0, "
                                 "%name_1, ...", self.at(toks[0]))
        return base

    def argument(self, nid: int, tree: Tree) -> Node:
        value, *rest = _kids(tree)
        t = self.type(rest[-1])
        attrs: dict[str, Any] = {"dtype": t.dtype, "shape": t.shape}
        op = INPUT
        if len(rest) == 2:
            op, attrs["trainable"] = PARAM, str(rest[0]) == "param"
        return Node(nid, op, (), MappingProxyType(op.check_attrs(attrs)), (t,), str(value)[1:])

    def node(self, nid: int, name: str | None, tree: Tree, scope: _Scope) -> Node:
        defs = [c for c in _kids(tree) if isinstance(c, Tree) and c.data == "definition"]
        op_tok, *rest = _kids(tree)[len(defs):]
        op = REGISTRY.get(str(op_tok))
        if op is None:
            raise DlgNameError(f"unknown op {str(op_tok)!r}", self.at(op_tok))
        inputs = [scope.value(tok, self) for tok in _tokens(rest, "VALUE")]
        attrs = self.attrs(op, op_tok, rest)
        try:
            _check_arity(op, len(inputs))
            types = op.infer(*(scope.types[v] for v in inputs), **attrs)
        except DlgError as e:
            raise e.with_span(self.at(op_tok)) from None
        types = types if isinstance(types, tuple) else (types,)
        declared = tuple(self.type(_kids(d)[1]) for d in defs)
        if types != declared:
            raise DlgTypeError(f"{op.name}: printed types {[str(t) for t in declared]} but its "
                               f"inputs give {[str(t) for t in types]}", self.at(op_tok))
        span, backward = self.span(next(iter(_tokens(rest, "SPAN")), None))
        return Node(nid, op, tuple(inputs), MappingProxyType(attrs), types, name, span, backward)

    def attrs(self, op: OpDef, op_tok: Token, rest: list) -> dict[str, Any]:
        """The node's attributes, each converted as its kind in the op's schema says, and the
        graphs printed after it for its graph-valued attributes (in name order)."""
        given: dict[str, Any] = {}
        for key, raw in (_kids(a) for block in _trees(rest, "attrs") for a in _kids(block)):
            if str(key) in given:
                raise DlgSyntaxError(f"attribute {key} given twice", self.at(key))
            value = _kids(self.values.transform(Tree("value", [raw])))[0]
            spec = op.attrs.get(str(key))
            given[str(key)] = _as_kind(value, spec.kind if spec else "")
        bodies = sorted(k for k, a in op.attrs.items() if a.kind == "graph")
        graphs = [self.graph(t) for t in _trees(rest, "graph")]
        if len(graphs) != len(bodies):
            raise DlgSyntaxError(f"{op.name} takes {len(bodies)} nested graph(s) "
                                 f"({', '.join(bodies) or 'none'}), {len(graphs)} given",
                                 self.at(op_tok))
        given.update(zip(bodies, graphs))
        try:
            return op.check_attrs(given)
        except DlgError as e:
            raise e.with_span(self.at(op_tok)) from None

    def span(self, tok: Token | None) -> tuple[Span | None, bool]:
        """`# file:line:col`, `# file:line:col backward` or `# backward`."""
        if tok is None:
            return None, False
        m = _SPAN.fullmatch(str(tok)[1:].strip())
        if m is None:
            raise DlgSyntaxError("a node's comment is its span: file:line:col, then "
                                 "'backward' for a node of a gradient", self.at(tok))
        file, line, col, backward = m.groups()
        return (Span(file, int(line), int(col)) if file else None), backward is not None

    def binding(self, tree: Tree, scope: _Scope) -> tuple[str, Value]:
        name, tok = _kids(tree)
        return _label(name), scope.value(tok, self)

    def check_results(self, label_tok: Token, results: list[Tree],
                      outputs: list[tuple[str, Value]], scope: _Scope) -> None:
        """The header's `-> (name: type, ...)` says what `return` gives."""
        if len(results) != len(outputs):
            raise DlgSyntaxError(f"the header of graph {_label(label_tok)} lists {len(results)} "
                                 f"results, its return gives {len(outputs)}", self.at(label_tok))
        for tree, (name, v) in zip(results, outputs):
            label_tok, type_tok = _kids(tree)
            promised = (_label(label_tok), self.type(type_tok))
            if promised != (name, scope.types[v]):
                raise DlgTypeError(f"the header promises {promised[0]}: {promised[1]}, but "
                                   f"return gives {name}: {scope.types[v]}", self.at(type_tok))


class _Scope:
    """The values of one graph by printed name, and their types."""

    def __init__(self) -> None:
        self.values: dict[str, Value] = {}
        self.types: dict[Value, TensorType] = {}

    def value(self, tok: Token, reader: _Reader) -> Value:
        if str(tok) not in self.values:
            raise DlgNameError(f"{tok} is not defined before its use", reader.at(tok))
        return self.values[str(tok)]


class _Ids:
    """Node ids in printed order: a value printed `%v7` is node 7 (the first to claim 7);
    named nodes take the lowest ids left free."""

    def __init__(self, bases: list[str]):
        claimed: set[int] = set()
        self.order: list[tuple[int | None, str]] = []
        for base in bases:
            m = _ANONYMOUS.fullmatch(base)
            nid = int(m.group(1)) if m is not None and int(m.group(1)) not in claimed else None
            if nid is not None:
                claimed.add(nid)
            self.order.append((nid, base))
        self.claimed = claimed
        self.at = 0
        self.free = 0

    def next(self) -> tuple[int, str | None]:
        """The id and name (None: unnamed) of the next node."""
        nid, base = self.order[self.at]
        self.at += 1
        if nid is not None:
            return nid, None
        while self.free in self.claimed:
            self.free += 1
        self.free += 1
        return self.free - 1, base


def _as_kind(value: Any, kind: str) -> Any:
    """A parsed value as an attribute of `kind` holds it (the schema check follows): tuples for
    lists, a bare name as a dtype or a symbolic dim."""
    if isinstance(value, list):
        return tuple(_as_kind(v, kind) for v in value)
    if isinstance(value, _Bare):
        if kind.rstrip("?") != "dtype":
            return Sym.named(value)
        try:
            return DType.parse(value)
        except ValueError:
            return str(value)  # the schema check reports it
    return value


def _check_arity(op: OpDef, n: int) -> None:
    want = len(op.inputs) - op.variadic
    if n < want or (n > want and not op.variadic):
        raise DlgTypeError(f"{op.name} takes {'at least ' if op.variadic else ''}{want} "
                           f"input{'s' if want != 1 else ''} ({', '.join(op.inputs)}), got {n}")


def _label(tok: Token) -> str:
    return json.loads(tok) if tok.type == "STRING" else str(tok)


def _trees(children: list, kind: str) -> list[Tree]:
    return [c for c in children if isinstance(c, Tree) and c.data == kind]


def _tokens(children: list, kind: str) -> list[Token]:
    return [c for c in children if isinstance(c, Token) and c.type == kind]


def _defined(line: Tree) -> list[Token]:
    """The value tokens a node or argument line defines, in output order."""
    if line.data == "argument":
        return [_kids(line)[0]]
    return [_kids(d)[0] for d in _trees(_kids(line), "definition")]


def _kids(tree: Tree) -> list[Any]:
    """A parse tree's children: tokens and trees, as the grammar rule says."""
    return tree.children
