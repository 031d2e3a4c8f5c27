"""The canonical text of a .dlg program, printed from its AST (`dlgc fmt`).

Four-space indents, one statement per line, the fewest parentheses that keep the tree, and
`parse(format_module(m)) == m`. Comments are not part of the AST, so formatting drops them.
Lines are not wrapped.
"""

from __future__ import annotations

import math
from typing import Any

from dlg.grammar import ast
from dlg.grammar.parser import is_name

INDENT = "    "
# binding strength of each operator (higher binds tighter), as layered in dlg.lark
_PREC = {"or": 1, "and": 2, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "+": 5, "-": 5,
         "*": 6, "/": 6, "//": 6, "%": 6, "@": 6, "**": 8}
_UNARY, _POSTFIX, _ATOM = 7, 9, 10


def format_module(module: ast.Module) -> str:
    return "\n".join(_item(item) for item in module.items)


def _item(item: Any) -> str:
    if isinstance(item, ast.Import):
        return f"import {quote(item.path)}\n"
    if isinstance(item, ast.ModelDef):
        head = f"model {item.name}"
    elif isinstance(item, ast.TrainDef):
        head = f"train {item.name}"
    elif isinstance(item, ast.LayerDef):
        head = f"layer {item.name}({_params(item.params)})"
    else:
        head = f"def {item.name}({_params(item.params)})"
    return "\n".join(_block(head, item.body, "")) + "\n"


def _params(params: tuple[ast.Param, ...]) -> str:
    out = []
    for p in params:
        text = p.name + (f": {p.annotation}" if p.annotation else "")
        if p.default is not None:
            text += f" = {expr(p.default)}"
        out.append(text)
    return ", ".join(out)


def _block(head: str, body: tuple[Any, ...], indent: str) -> list[str]:
    lines = [f"{indent}{head} {{"]
    for i, stmt in enumerate(body):
        lines.extend(_stmt(stmt, indent + INDENT))
        if isinstance(stmt, ast.Return) and not stmt.values and i + 1 < len(body):
            lines[-1] += ";"  # else the next statement's name would be read as the value
    lines.append(f"{indent}}}")
    return lines


def _stmt(s: Any, indent: str) -> list[str]:
    if isinstance(s, ast.If):
        lines = _block(f"if {expr(s.cond)}", s.body, indent)
        orelse = s.orelse
        while len(orelse) == 1 and isinstance(orelse[0], ast.If):
            nested = _block(f"else if {expr(orelse[0].cond)}", orelse[0].body, indent)
            lines[-1] = lines[-1] + " " + nested[0].lstrip()
            lines.extend(nested[1:])
            orelse = orelse[0].orelse
        if orelse:
            tail = _block("else", orelse, indent)
            lines[-1] = lines[-1] + " " + tail[0].lstrip()
            lines.extend(tail[1:])
        return lines
    if isinstance(s, ast.For):
        return _block(f"for {s.var} in {expr(s.iter)}", s.body, indent)
    if isinstance(s, ast.ForwardDef):
        return _block(f"forward({_params(s.params)})", s.body, indent)
    if isinstance(s, ast.Scan):
        parts = [f"{name} in {expr(seq)}" for name, seq in s.sequences]
        parts += [f"{k.name}={expr(k.value)}" for k in s.options]
        head = f"scan ({', '.join(parts)})"
        if s.carries:
            head += " carry (" + ", ".join(f"{k.name} = {expr(k.value)}" for k in s.carries) + ")"
        return _block(head, s.body, indent)
    return [indent + _simple(s)]


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
