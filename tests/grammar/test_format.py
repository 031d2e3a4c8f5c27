"""`dlgc fmt`: the canonical form parses back to the same AST and is a fixed point."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlg.grammar import ast
from dlg.grammar.format import format_module
from dlg.grammar.loader import PRELUDE
from dlg.grammar.parser import parse

ROOT = Path(__file__).resolve().parent.parent.parent
SOURCES = sorted((ROOT / "models").glob("*.dlg")) + [PRELUDE]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_format_round_trips_and_is_stable(path):
    module = parse(path.read_text(), path.name)
    text = format_module(module)
    again = parse(text, path.name)
    assert again == module
    assert format_module(again) == text


@pytest.mark.parametrize("src", [
    "y = (a - b) - c", "y = a - (b - c)", "y = -x ** 2", "y = (-x) ** 2", "y = a ** b ** c",
    "y = (a ** b) ** c", "y = not a == b", "y = (not a) == b", "y = (a, b)[0]",
    "y = f(x)[1:2, ...]", "y = x[::2, :3, 1:]", "a, (b, c) = f(x, axis=1)", "y = (a + b) * c @ d",
    "y = a or b and c",
    "y = (a or b) and c", "y = x.shape[0] // 2 % 3", "y = (1,)", "y = [1, 2]", "y = ()",
    'y = "a\\"b"', "y = 1e-05 + 2.5", "y = -(a + b)", "y = w_l{i}",
    "y = 1 .shape", "y = (1).shape[0]", "y = 1.5 .x", "y = 1e999", "y = 1e16 * 0.01",
    "y = (a < b) == c", "y = a < (b == c)", "y = not not a", "y = -(not a)", "y = +a - -b",
    "y = f(x)(y).z[0](w=1)", "y = (a)", "a, b = 1, 2",
    'y = "tab\\t nl\\n bell\\x07 \\u00e9 é \\U0001F600 back\\\\slash"',
])
def test_expression_cases_round_trip(src):
    module = parse(f"model M {{ {src} }}")
    assert parse(format_module(module)) == module


def test_parentheses_are_minimal():
    cases = {"y = ((a - b)) - c": "y = a - b - c", "y = a - (b - c)": "y = a - (b - c)",
             "y = (-x) ** 2": "y = (-x) ** 2", "y = -(x ** 2)": "y = -x ** 2",
             "y = (a ** b) ** c": "y = (a ** b) ** c", "y = a ** (b ** c)": "y = a ** b ** c",
             "y = a ** -b": "y = a ** -b", "y = not (a == b)": "y = not a == b",
             "y = ((a, b))[0]": "y = (a, b)[0]", "y = (x.T)": "y = x.T"}
    for src, want in cases.items():
        assert format_module(parse(f"model M {{ {src} }}")) == f"model M {{\n    {want}\n}}\n"


def test_layout_and_comments():
    src = "# header\nmodel A { y = x # trailing\n}\ndef f(x) { if x { return; y = 1 } return x }"
    assert format_module(parse(src)) == (
        "model A {\n    y = x\n}\n\n"
        "def f(x) {\n    if x {\n        return;\n        y = 1\n    }\n    return x\n}\n")


def test_statements_round_trip():
    src = """
    import "other.dlg"
    layer L(n: int, bias: bool = true) {
        k = 1 / sqrt(n)
        param w_l{n}: f32[n, 2 * n] = uniform(-k, k)
        buffer count: i64[]
        layer inner = Linear(n, n)
        forward(x, h = none) {
            assert x.ndim == 2, "rank 2"
            if bias { x = x + 1.0 } else if n > 2 { x = x * 2.0 } else { x = -x }
            for i in range(n) { x = inner(x) }
            scan (x_t in x, axis=1, reverse=true) carry (h = h0, c = c0) { h = x_t + h  emit o = h }
            update count = count + 1
            return x, o
        }
    }
    def f(x) { return }
    model M { input x: f32[N, 3]  output a, b = f(x)  output c }
    train M { input y: i64[N]  loss = a  metric acc = b  optimizer = SGD(lr=0.1) }
    """
    module = parse(src)
    text = format_module(module)
    assert parse(text) == module and format_module(parse(text)) == text


NAMES = st.sampled_from(["a", "b", "x", "w_l{i}"])
LEAVES = st.one_of(NAMES.map(lambda n: ast.TemplateName(n) if "{" in n else ast.Name(n)),
                   st.integers(0, 10**20).map(ast.Literal),
                   st.sampled_from([True, False, None]).map(ast.Literal),
                   st.floats(0, allow_nan=False).map(ast.Literal),
                   st.text(max_size=4).map(ast.Literal))
BINOPS = st.sampled_from(["or", "and", "==", "!=", "<", ">=", "+", "-", "*", "/", "//", "%", "@",
                          "**"])


def _slice(children):
    part = st.none() | children
    return st.tuples(part, part, part).map(lambda t: ast.SliceExpr(*t))


def _extend(children):
    keywords = st.lists(st.tuples(st.sampled_from(["axis", "k"]), children), max_size=2)
    return st.one_of(
        st.tuples(BINOPS, children, children).map(lambda t: ast.BinOp(*t)),
        st.tuples(st.sampled_from(["-", "+", "not"]), children).map(lambda t: ast.UnaryOp(*t)),
        st.tuples(children, st.lists(children, max_size=2), keywords).map(
            lambda t: ast.Call(t[0], tuple(t[1]), tuple(ast.Keyword(*k) for k in t[2]))),
        st.tuples(children, st.lists(children | _slice(children) | st.just(ast.EllipsisExpr()),
                                     min_size=1, max_size=3)).map(
            lambda t: ast.Subscript(t[0], tuple(t[1]))),
        st.tuples(children, st.sampled_from(["shape", "T"])).map(lambda t: ast.GetAttr(*t)),
        st.tuples(st.lists(children, max_size=3), st.booleans()).map(
            lambda t: ast.TupleExpr(tuple(t[0]), brackets=t[1])),
        st.tuples(children, st.sampled_from(["i", "a"]), children, st.booleans()).map(
            lambda t: ast.Comprehension(*t[:3]) if t[3] else  # or a call's only argument
            ast.Call(ast.Name("f"), (ast.Comprehension(*t[:3], brackets=False),), ())),
        st.lists(st.tuples(st.sampled_from(["a", "in", "b-c", ""]), children), max_size=2,
                 unique_by=lambda kv: kv[0]).map(
            lambda kv: ast.DictExpr(tuple(k for k, _ in kv), tuple(v for _, v in kv))),
    )


@settings(max_examples=200, deadline=None)
@given(st.recursive(LEAVES, _extend, max_leaves=8))
def test_random_expressions_round_trip(e):
    module = ast.Module("<string>", (ast.ModelDef("M", (ast.Assign(("y",), e),)),))
    text = format_module(module)
    assert parse(text) == module
    assert format_module(parse(text)) == text


# ---- comments and blank lines -------------------------------------------------------------------
COMMENTED = '''# models/tiny.dlg: a header, then a blank line

layer Tiny(n: int) {  # a layer
    param w: f32[n] = zeros()   # trailing, realigned
    # above forward

    forward(x) {
        y = x * w # "a # inside a comment"
        s = "# not a comment"


        return y + 0 * len(s)
        # before the closing brace
    }
}
# between the items
model M {
    input x: f32[N, 3]
    layer t = Tiny(3)
    if true { z = t(x) } else {  # else
        z = x
    }
    output y = z
}
# at the end
'''

WANT = '''# models/tiny.dlg: a header, then a blank line

layer Tiny(n: int) {  # a layer
    param w: f32[n] = zeros()  # trailing, realigned
    # above forward

    forward(x) {
        y = x * w  # "a # inside a comment"
        s = "# not a comment"

        return y + 0 * len(s)
        # before the closing brace
    }
}

# between the items
model M {
    input x: f32[N, 3]
    layer t = Tiny(3)
    if true {
        z = t(x)
    } else {  # else
        z = x
    }
    output y = z
}
# at the end
'''


def test_comments_and_blank_lines_come_back_where_they_stood():
    text = format_module(parse(COMMENTED), COMMENTED)
    assert text == WANT
    assert format_module(parse(text), text) == text  # a fixed point
    assert parse(text) == parse(COMMENTED)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_formatting_a_source_keeps_every_comment(path):
    source = path.read_text()
    text = format_module(parse(source, path.name), source)
    comments = [line[line.index("#"):].rstrip() for line in source.splitlines()
                if "#" in line and '"' not in line]
    assert all(c in text for c in comments)
    assert parse(text, path.name) == parse(source, path.name)
    assert format_module(parse(text, path.name), text) == text
