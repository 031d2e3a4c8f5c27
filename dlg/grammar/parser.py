"""Parse .dlg text into the AST (grammar/ast.py). Syntax errors become DlgSyntaxError with words,
not Lark terminal names."""

from __future__ import annotations

import ast as pyast
import re
import warnings
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark import __version__ as lark_version
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from dlg.disk_cache import cache_dir
from dlg.errors import DlgSyntaxError, Span
from dlg.grammar import ast
from dlg.grammar.syntax_errors import describe_expected, label_for

GRAMMAR = Path(__file__).with_name("dlg.lark")
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
MAX_DEPTH = 200  # parse-tree levels: ~200 unary ops or binary operands, ~95 nested calls


@cache
def _lark() -> Lark:
    """The LALR parser; its tables come from dlg's cache folder when an entry there was made
    from this grammar (Lark checks its hash), which takes a fifth of the time of building them
    (0.04 vs 0.18 s of every process that reads a .dlg file)."""
    return Lark.open(str(GRAMMAR), parser="lalr", propagate_positions=True,
                     maybe_placeholders=True, cache=_tables_file() or False)


def _tables_file() -> str | None:
    folder = cache_dir()
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return str(folder / f"lark-{lark_version}-tables.pickle")


@cache
def keywords() -> frozenset[str]:
    """The words the grammar reserves (`for`, `layer`, `true`, ...): not usable as names."""
    return frozenset(t.pattern.value for t in _lark().terminals
                     if t.pattern.type == "str" and IDENTIFIER.fullmatch(t.pattern.value))


def is_name(text: str) -> bool:
    """Whether `text` reads back as a name (an identifier that is not a keyword)."""
    return IDENTIFIER.fullmatch(text) is not None and text not in keywords()


def parse(source: str, file: str = "<string>") -> ast.Module:
    """Parse one .dlg file; raises DlgSyntaxError with the location of the first problem."""
    try:
        tree = _lark().parse(source)
    except UnexpectedInput as e:
        raise _syntax_error(e, source, file) from None
    _check_depth(tree, file, source)
    try:
        return _ToAst(file, source).transform(tree)
    except VisitError as e:  # lark wraps what the transformer raises
        if isinstance(e.orig_exc, DlgSyntaxError):
            raise e.orig_exc from None
        raise


def _check_depth(tree: Tree, file: str, source: str) -> None:
    """Parse trees deeper than MAX_DEPTH are refused before anything walks them recursively
    (the transformer, the elaborator): a DlgSyntaxError rather than a RecursionError."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise DlgSyntaxError(f"nested too deeply (over {MAX_DEPTH} levels of expressions "
                                 f"or blocks); split it with intermediate names",
                                 _span(node.meta, file, source))
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))


def _syntax_error(e: UnexpectedInput, source: str, file: str) -> DlgSyntaxError:
    line, col = max(getattr(e, "line", 1), 1), max(getattr(e, "column", 1), 1)
    if isinstance(e, UnexpectedCharacters):
        char = source[e.pos_in_stream] if e.pos_in_stream < len(source) else "?"
        message = f"unexpected character {char!r}"
        if char == '"':
            message = "unterminated string: a string needs its closing '\"' on the same line"
        end = col + 1
    elif isinstance(e, UnexpectedEOF):
        line, col = _end_of_text(source)
        message = "unexpected end of file"
        if e.expected:
            message += f"; expected {describe_expected(e.expected)}"
        end = col + 1
    else:
        assert isinstance(e, UnexpectedToken)
        token = e.token
        if token.type == "$END":
            line, col = _end_of_text(source)
            message = "unexpected end of file"
            end = col + 1
        else:
            message = f"unexpected {_token_words(token)}"
            end = col + max(len(str(token)), 1)
        label = label_for(e, _lark())
        if label:
            message += f": {label}"
        elif e.expected:
            message += f"; expected {describe_expected(e.expected)}"
    return DlgSyntaxError(message, Span(file, line, col, line, end, source))


def _end_of_text(source: str) -> tuple[int, int]:
    """Line and column just after the last non-blank character, counting lines by '\\n' as lark
    does (str.splitlines also splits at form feeds and other separators)."""
    text = source.rstrip()
    start = text.rfind("\n") + 1
    return text.count("\n") + 1, len(text) - start + 1


def _token_words(token: Token) -> str:
    if token.type in ("NAME", "TEMPLATE_NAME"):
        return f"name {str(token)!r}"
    if token.type in ("INT", "FLOAT"):
        return f"number {token!s}"
    if token.type == "STRING":
        return f"string {token!s}"
    return repr(str(token))


def _span(meta: Any, file: str, source: str) -> Span:
    if getattr(meta, "empty", True):
        return Span(file, 1, 1, source=source)
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column, source)


@v_args(meta=True)
class _ToAst(Transformer):
    """Builds AST nodes; one method per grammar rule or alias."""

    def __init__(self, file: str, source: str):
        super().__init__()
        self.file = file
        self.source = source

    def _s(self, meta: Any) -> Span:
        return _span(meta, self.file, self.source)

    def _tok_span(self, tok: Token) -> Span:
        return Span(self.file, tok.line, tok.column, tok.end_line, tok.end_column, self.source)

    # -- top level
    def start(self, meta, items):
        return ast.Module(self.file, tuple(i for i in items if isinstance(i, ast.Node)),
                          span=self._s(meta))

    def import_stmt(self, meta, c):
        return ast.Import(_string(c[0], self._tok_span(c[0])), span=self._s(meta))

    def model_def(self, meta, c):
        return ast.ModelDef(str(c[0]), c[1], span=self._s(meta))

    def train_def(self, meta, c):
        return ast.TrainDef(str(c[0]), c[1], span=self._s(meta))

    def layer_def(self, meta, c):
        return ast.LayerDef(str(c[0]), c[1] or (), c[2], span=self._s(meta))

    def func_def(self, meta, c):
        return ast.FuncDef(str(c[0]), c[1] or (), c[2], span=self._s(meta))

    def params(self, meta, c):
        return tuple(c)

    def param(self, meta, c):
        return ast.Param(str(c[0]), None if c[1] is None else str(c[1]), c[2], span=self._s(meta))

    # -- statements
    def block(self, meta, c):
        return tuple(s for s in c if isinstance(s, ast.Node))

    def input_decl(self, meta, c):
        return ast.InputDecl(str(c[0]), c[1], span=self._s(meta))

    def param_decl(self, meta, c):
        return ast.ParamDecl(c[0], c[1], c[2], False, span=self._s(meta))

    def buffer_decl(self, meta, c):
        return ast.ParamDecl(c[0], c[1], c[2], True, span=self._s(meta))

    def layer_decl(self, meta, c):
        return ast.LayerDecl(c[0], c[1], span=self._s(meta))

    def output_decl(self, meta, c):
        value = None if c[-1] is None else self._tuple_or_single(c[-1], meta)
        return ast.OutputDecl(tuple(str(t) for t in c[:-1]), value, span=self._s(meta))

    def forward_def(self, meta, c):
        return ast.ForwardDef(c[0] or (), c[1], span=self._s(meta))

    def metric_decl(self, meta, c):
        return ast.MetricDecl(str(c[0]), c[1], span=self._s(meta))

    def update_stmt(self, meta, c):
        return ast.Update(str(c[0]), c[1], span=self._s(meta))

    def emit_stmt(self, meta, c):
        return ast.Emit(str(c[0]), c[1], span=self._s(meta))

    def assign(self, meta, c):
        return ast.Assign(c[0], self._tuple_or_single(c[1], meta), span=self._s(meta))

    def _tuple_or_single(self, exprs: tuple, meta: Any) -> ast.Expr:
        """`a, b = 1, 2`: several right-hand values form a tuple."""
        if len(exprs) == 1:
            return exprs[0]
        first, last = exprs[0].span, exprs[-1].span
        return ast.TupleExpr(tuple(exprs), span=Span(self.file, first.line, first.col,
                                                      last.end_line, last.end_col, self.source))

    def return_stmt(self, meta, c):
        return ast.Return(c[0] or (), span=self._s(meta))

    def if_stmt(self, meta, c):
        orelse = c[2]
        if isinstance(orelse, ast.If):
            orelse = (orelse,)
        return ast.If(c[0], c[1], orelse or (), span=self._s(meta))

    def else_if(self, meta, c):
        return c[0]

    def assert_stmt(self, meta, c):
        return ast.Assert(c[0], c[1], span=self._s(meta))

    def for_stmt(self, meta, c):
        return ast.For(str(c[0]), c[1], c[2], span=self._s(meta))

    def scan_stmt(self, meta, c):
        seqs = tuple(x for x in c if isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str))
        options = tuple(x for x in c if isinstance(x, ast.Keyword))
        carries = next((x for x in c if isinstance(x, list)), [])
        return ast.Scan(seqs, options, tuple(carries), c[-1], span=self._s(meta))

    def scan_seq(self, meta, c):
        return (str(c[0]), c[1])

    def carries(self, meta, c):
        return list(c)

    def pname(self, meta, c):
        tok = c[0]
        if tok.type == "TEMPLATE_NAME":
            return ast.TemplateName(str(tok), span=self._s(meta))
        return ast.Name(str(tok), span=self._s(meta))

    def targets(self, meta, c):
        return tuple(c)

    def target_name(self, meta, c):
        return str(c[0])

    def tensor_type(self, meta, c):
        return ast.TensorTypeExpr(str(c[0]), c[1] or (), span=self._s(meta))

    # -- expressions
    def exprlist(self, meta, c):
        return tuple(c)

    def or_op(self, meta, c):
        return ast.BinOp("or", c[0], c[1], span=self._s(meta))

    def and_op(self, meta, c):
        return ast.BinOp("and", c[0], c[1], span=self._s(meta))

    def not_op(self, meta, c):
        return ast.UnaryOp("not", c[0], span=self._s(meta))

    def compare(self, meta, c):
        return ast.BinOp(str(c[1]), c[0], c[2], span=self._s(meta))

    def binop(self, meta, c):
        return ast.BinOp(str(c[1]), c[0], c[2], span=self._s(meta))

    def unary(self, meta, c):
        return ast.UnaryOp(str(c[0]), c[1], span=self._s(meta))

    def pow_op(self, meta, c):
        return ast.BinOp("**", c[0], c[1], span=self._s(meta))

    def call(self, meta, c):
        args = c[1] or ()
        pos = tuple(a for a in args if not isinstance(a, ast.Keyword))
        kws = tuple(a for a in args if isinstance(a, ast.Keyword))
        return ast.Call(c[0], pos, kws, span=self._s(meta))

    def call_comp(self, meta, c):
        return ast.Call(c[0], (c[1],), (), span=self._s(meta))

    def comprehension(self, meta, c):
        return ast.Comprehension(c[0], str(c[1]), c[2], brackets=False, span=self._s(meta))

    def arguments(self, meta, c):
        seen_kw = False
        for a in c:
            if isinstance(a, ast.Keyword):
                seen_kw = True
            elif seen_kw:
                raise DlgSyntaxError("a positional argument cannot follow keyword arguments",
                                     a.span)
        return tuple(c)

    def kwarg(self, meta, c):
        return ast.Keyword(str(c[0]), c[1], span=self._s(meta))

    def subscript(self, meta, c):
        return ast.Subscript(c[0], c[1], span=self._s(meta))

    def subscripts(self, meta, c):
        return tuple(c)

    def slice_(self, meta, c):
        return ast.SliceExpr(c[0], c[1], c[2], span=self._s(meta))

    def ellipsis(self, meta, c):
        return ast.EllipsisExpr(span=self._s(meta))

    def getattr(self, meta, c):
        return ast.GetAttr(c[0], str(c[1]), span=self._s(meta))

    def name(self, meta, c):
        return ast.Name(str(c[0]), span=self._s(meta))

    def template_name(self, meta, c):
        return ast.TemplateName(str(c[0]), span=self._s(meta))

    def int_lit(self, meta, c):
        try:
            value = int(c[0])
        except ValueError:  # more digits than Python will convert
            raise DlgSyntaxError(f"integer literal too long ({len(c[0])} digits)",
                                 self._s(meta)) from None
        return ast.Literal(value, span=self._s(meta))

    def float_lit(self, meta, c):
        return ast.Literal(float(c[0]), span=self._s(meta))

    def string_lit(self, meta, c):
        return ast.Literal(_string(c[0], self._s(meta)), span=self._s(meta))

    def true_lit(self, meta, c):
        return ast.Literal(True, span=self._s(meta))

    def false_lit(self, meta, c):
        return ast.Literal(False, span=self._s(meta))

    def none_lit(self, meta, c):
        return ast.Literal(None, span=self._s(meta))

    def empty_tuple(self, meta, c):
        return ast.TupleExpr((), span=self._s(meta))

    def tuple_lit(self, meta, c):
        return ast.TupleExpr(tuple(c), span=self._s(meta))

    def list_lit(self, meta, c):
        return ast.TupleExpr(c[0] or (), brackets=True, span=self._s(meta))

    def list_comp(self, meta, c):
        return replace(c[0], brackets=True, span=self._s(meta))

    def dict_lit(self, meta, c):
        items = c[0] or ()
        seen: set[str] = set()
        for key, value in items:
            if key in seen:
                raise DlgSyntaxError(f"key {key!r} is given twice", value.span)
            seen.add(key)
        return ast.DictExpr(tuple(k for k, _ in items), tuple(v for _, v in items),
                            span=self._s(meta))

    def dict_items(self, meta, c):
        return tuple(c)

    def dict_item(self, meta, c):
        key = c[0]
        return (_string(key, self._tok_span(key)) if key.type == "STRING" else str(key), c[1])


def _string(tok: Token, span: Span) -> str:
    """The value of a string literal; escapes are Python's, and an unknown one is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Python only warns about "\\q"
        try:
            return pyast.literal_eval(str(tok))
        except (SyntaxError, ValueError, Warning) as e:
            reason = (getattr(e, "msg", None) or str(e)).rsplit(": ", 1)[-1]
            raise DlgSyntaxError(f"bad escape in string {tok!s}: {reason}", span) from None
