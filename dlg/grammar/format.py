"""The canonical text of a .dlg program, printed from its AST (`dlgc fmt`).

Four-space indents, one statement per line, the fewest parentheses that keep the tree, and
`parse(format_module(m)) == m`. Lines are not wrapped. Comments are not part of the AST: given
the source, each comes back where it stood relative to the statements (`_Comments`): a comment
line above the statement that followed it (a blank line after it kept), a comment after code at
the end of that statement's line, one before a block's `}` inside the block, the rest at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dlg.grammar import ast
from dlg.grammar.parser import is_name

INDENT = "    "
# binding strength of each operator (higher binds tighter), as layered in dlg.lark
_PREC = {"or": 1, "and": 2, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "+": 5, "-": 5,
         "*": 6, "/": 6, "//": 6, "%": 6, "@": 6, "**": 8}
_UNARY, _POSTFIX, _ATOM = 7, 9, 10


def format_module(module: ast.Module, source: str | None = None) -> str:
    """The canonical text; with the module's `source`, its comments kept."""
    notes = _Comments(source)
    items = ["".join(f"{line}\n" for line in notes.before(item.span.line, "", opening=True))
             + _item(item, notes) for item in module.items]
    return "\n".join(items) + "".join(f"{line}\n" for line in notes.before(None, ""))


@dataclass(frozen=True)
class _Comment:
    line: int
    col: int  # 0-based, where the # stands
    text: str
    alone: bool  # nothing but the comment on its line


class _Comments:
    """The comments of a source in line order, handed out as the printer reaches their
    places, and its blank lines: one is kept where the source had any between two
    statements or comments."""

    def __init__(self, source: str | None):
        lines = self.lines = (source or "").split("\n")
        self.blank = {k + 1 for k, text in enumerate(lines) if not text.strip()}
        self.pending = [_Comment(k + 1, at, text[at:].rstrip(), not text[:at].strip())
                        for k, text in enumerate(lines) if (at := _comment_start(text)) is not None]

    def before(self, line: int | None, indent: str, opening: bool = False) -> list[str]:
        """The comments above `line` (all, with None) as lines at `indent`, and the blank lines
        before them and before `line`; none first thing in a block (`opening`)."""
        out: list[str] = []
        while self.pending and (line is None or self.pending[0].line < line):
            c = self.pending.pop(0)
            out += self._gap(c.line, opening and not out) + [indent + c.text]
        return out + ([] if line is None else self._gap(line, opening and not out))

    def _gap(self, line: int, opening: bool) -> list[str]:
        return [""] if line - 1 in self.blank and not opening else []

    def after(self, first: int, last: int | None, end_col: int | None = None) -> str:
        """The comments that follow code on lines first..last, for the end of its line; with
        `end_col`, one on the last line only when no other code follows that column."""
        last = first if last is None else last

        def ends_there(c: _Comment) -> bool:
            if end_col is None or c.line != last:
                return True
            return not self.lines[c.line - 1][end_col - 1:c.col].strip(" ;")
        found = [c for c in self.pending
                 if first <= c.line <= last and not c.alone and ends_there(c)]
        self.pending = [c for c in self.pending if c not in found]
        return "".join(f"  {c.text}" for c in found)


def _comment_start(line: str) -> int | None:
    """Where a comment starts in a line (a # outside a string literal), or None."""
    quoted = escaped = False
    for k, ch in enumerate(line):
        if quoted:
            quoted, escaped = (not (ch == '"' and not escaped),
                               ch == "\\" and not escaped)
        elif ch == '"':
            quoted = True
        elif ch == "#":
            return k
    return None


def _item(item: Any, notes: _Comments) -> str:
    span = item.span
    if isinstance(item, ast.Import):
        return f"import {quote(item.path)}{notes.after(span.line, span.end_line)}\n"
    if isinstance(item, ast.ModelDef):
        head = f"model {item.name}"
    elif isinstance(item, ast.TrainDef):
        head = f"train {item.name}"
    elif isinstance(item, ast.LayerDef):
        head = f"layer {item.name}({_params(item.params)})"
    else:
        head = f"def {item.name}({_params(item.params)})"
    return "\n".join(_block(head, item.body, "", notes, span.line, span.end_line)) + "\n"


def _params(params: tuple[ast.Param, ...]) -> str:
    out = []
    for p in params:
        text = p.name + (f": {p.annotation}" if p.annotation else "")
        if p.default is not None:
            text += f" = {expr(p.default)}"
        out.append(text)
    return ", ".join(out)


def _block(head: str, body: tuple[Any, ...], indent: str, notes: _Comments, first: int,
           last: int | None, head_lines: tuple[int, int] | None = None) -> list[str]:
    """`head { body }`, spanning source lines first..last; a comment after the head's line
    (or one of `head_lines`) belongs to it unless the body goes on on that line."""
    own_line = not body or body[0].span.line > first
    after = notes.after(*head_lines) if head_lines else (
        notes.after(first, first) if own_line else "")
    lines = [f"{indent}{head} {{{after}"]
    for i, stmt in enumerate(body):
        lines.extend(notes.before(stmt.span.line, indent + INDENT, opening=i == 0))
        lines.extend(_stmt(stmt, indent + INDENT, notes))
        if isinstance(stmt, ast.Return) and not stmt.values and i + 1 < len(body):
            lines[-1] += ";"  # else the next statement's name would be read as the value
    if last is not None:
        lines.extend(notes.before(last, indent + INDENT, opening=not body))
    lines.append(f"{indent}}}" + ("" if last is None else notes.after(last, last)))
    return lines


def _stmt(s: Any, indent: str, notes: _Comments) -> list[str]:
    first, last = s.span.line, s.span.end_line
    if isinstance(s, ast.If):
        lines = _block(f"if {expr(s.cond)}", s.body, indent, notes, first, None)
        orelse = s.orelse
        while len(orelse) == 1 and isinstance(orelse[0], ast.If):
            inner = orelse[0]
            nested = _block(f"else if {expr(inner.cond)}", inner.body, indent, notes,
                            inner.span.line, None)
            lines[-1] = lines[-1] + " " + nested[0].lstrip()
            lines.extend(nested[1:])
            orelse = inner.orelse
        if orelse:
            ended = s.body[-1].span.end_line if s.body else first  # `} else {` lies between
            tail = _block("else", orelse, indent, notes, orelse[0].span.line, last,
                          (ended, orelse[0].span.line - 1))
            lines[-1] = lines[-1] + " " + tail[0].lstrip()
            lines.extend(tail[1:])
        return lines
    if isinstance(s, ast.For):
        return _block(f"for {s.var} in {expr(s.iter)}", s.body, indent, notes, first, last)
    if isinstance(s, ast.ForwardDef):
        return _block(f"forward({_params(s.params)})", s.body, indent, notes, first, last)
    if isinstance(s, ast.Scan):
        parts = [f"{name} in {expr(seq)}" for name, seq in s.sequences]
        parts += [f"{k.name}={expr(k.value)}" for k in s.options]
        head = f"scan ({', '.join(parts)})"
        if s.carries:
            head += " carry (" + ", ".join(f"{k.name} = {expr(k.value)}" for k in s.carries) + ")"
        return _block(head, s.body, indent, notes, first, last)
    return [indent + _simple(s) + notes.after(first, last, s.span.end_col)]


def _simple(s: Any) -> str:
    if isinstance(s, ast.InputDecl):
        return f"input {s.name}: {_type(s.type)}"
    if isinstance(s, ast.ParamDecl):
        text = f"{'buffer' if s.buffer else 'param'} {_pname(s.name)}: {_type(s.type)}"
        return text + (f" = {expr(s.init)}" if s.init is not None else "")
    if isinstance(s, ast.LayerDecl):
        return f"layer {_pname(s.name)} = {expr(s.value)}"
    if isinstance(s, ast.OutputDecl):
        text = "output " + ", ".join(s.names)
        return text + (f" = {expr(s.value)}" if s.value is not None else "")
    if isinstance(s, ast.MetricDecl):
        return f"metric {s.name} = {expr(s.value)}"
    if isinstance(s, ast.Update):
        return f"update {s.name} = {expr(s.value)}"
    if isinstance(s, ast.Emit):
        return f"emit {s.name} = {expr(s.value)}"
    if isinstance(s, ast.Assign):
        return f"{_targets(s.targets)} = {expr(s.value)}"
    if isinstance(s, ast.Return):
        return "return" + (" " + ", ".join(expr(v) for v in s.values) if s.values else "")
    if isinstance(s, ast.Assert):
        return f"assert {expr(s.cond)}" + (f", {expr(s.message)}" if s.message is not None else "")
    raise AssertionError(f"no format for {type(s).__name__}")


def _targets(targets: tuple[Any, ...]) -> str:
    return ", ".join(t if isinstance(t, str) else f"({_targets(t)})" for t in targets)


def _pname(n: ast.Name | ast.TemplateName) -> str:
    return n.id if isinstance(n, ast.Name) else n.template


def _type(t: ast.TensorTypeExpr) -> str:
    return f"{t.dtype}[{', '.join(expr(d) for d in t.dims)}]"


def quote(value: str) -> str:
    """A double-quoted literal that the parser (Python escapes) reads back as `value`."""
    return '"' + "".join(_ESCAPES.get(c) or _char(c) for c in value) + '"'


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _char(c: str) -> str:
    code = ord(c)
    if code < 0x20 or 0x7F <= code < 0xA0:
        return f"\\x{code:02x}"
    if 0xD800 <= code < 0xE000:  # a lone surrogate cannot be written to a UTF-8 file
        return f"\\u{code:04x}"
    return c


def expr(e: Any, need: int = 0) -> str:
    """`e` as text, parenthesised if it binds looser than `need`."""
    text, prec = _expr(e)
    return f"({text})" if prec < need else text


def _expr(e: Any) -> tuple[str, int]:
    if isinstance(e, ast.Literal):
        return _literal(e.value)
    if isinstance(e, ast.Name):
        return e.id, _ATOM
    if isinstance(e, ast.TemplateName):
        return e.template, _ATOM
    if isinstance(e, ast.TupleExpr):
        items = [expr(x) for x in e.items]
        if e.brackets:
            return "[" + ", ".join(items) + "]", _ATOM
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")", _ATOM
    if isinstance(e, ast.BinOp):
        p = _PREC[e.op]
        if e.op == "**":
            return f"{expr(e.left, _POSTFIX)} ** {expr(e.right, _UNARY)}", p
        if p == 4:  # comparisons do not chain
            return f"{expr(e.left, p + 1)} {e.op} {expr(e.right, p + 1)}", p
        return f"{expr(e.left, p)} {e.op} {expr(e.right, p + 1)}", p
    if isinstance(e, ast.UnaryOp):
        if e.op == "not":
            return f"not {expr(e.operand, 3)}", 3
        return f"{e.op}{expr(e.operand, _UNARY)}", _UNARY
    if isinstance(e, ast.Comprehension):
        text = f"{expr(e.elt)} for {e.var} in {expr(e.iter)}"
        return (f"[{text}]" if e.brackets else text), _ATOM
    if isinstance(e, ast.DictExpr):
        items = [f"{dict_key(k)}: {expr(v)}" for k, v in zip(e.keys, e.values)]
        return "{" + ", ".join(items) + "}", _ATOM
    if isinstance(e, ast.Call):
        args = [expr(a) for a in e.args] + [f"{k.name}={expr(k.value)}" for k in e.kwargs]
        return f"{expr(e.func, _POSTFIX)}({', '.join(args)})", _POSTFIX
    if isinstance(e, ast.Subscript):
        return f"{expr(e.value, _POSTFIX)}[{', '.join(_index(i) for i in e.items)}]", _POSTFIX
    if isinstance(e, ast.GetAttr):
        value = expr(e.value, _POSTFIX)
        if isinstance(e.value, ast.Literal) and isinstance(e.value.value, int):
            value = f"({value})"  # `1.shape` would read as the float `1.` then a name
        return f"{value}.{e.name}", _POSTFIX
    raise AssertionError(f"no format for {type(e).__name__}")


def dict_key(key: str) -> str:
    """A dict key: bare when it reads back as a name, else a string."""
    return key if is_name(key) else quote(key)


def _index(item: Any) -> str:
    if isinstance(item, ast.EllipsisExpr):
        return "..."
    if isinstance(item, ast.SliceExpr):
        parts = ["" if p is None else expr(p) for p in (item.start, item.stop)]
        text = ":".join(parts)
        return text + (f":{expr(item.step)}" if item.step is not None else "")
    return expr(item)


def _literal(value: Any) -> tuple[str, int]:
    if value is True:
        return "true", _ATOM
    if value is False:
        return "false", _ATOM
    if value is None:
        return "none", _ATOM
    if isinstance(value, str):
        return quote(value), _ATOM
    text = float_literal(value) if isinstance(value, float) else repr(value)
    return text, (_UNARY if text.startswith("-") else _ATOM)


def float_literal(value: float) -> str:
    """A float as .dlg source that reads back as it: inf as 1e999 (what parses to inf), NaN as
    an expression that folds to one (.dlg has no literal for either)."""
    if math.isnan(value):
        return "(1e999 - 1e999)"
    if math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    text = repr(value)
    return text if any(c in text for c in ".en") else text + ".0"
