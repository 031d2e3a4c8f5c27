"""Syntax error messages in words: names for the grammar's terminals, and a table of labelled
malformed examples matched against the parser state (as lark's `match_examples`, STYLE §9)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from lark import Lark
from lark.exceptions import UnexpectedInput, UnexpectedToken

TERMINAL_WORDS = {
    "NAME": "a name", "TEMPLATE_NAME": "a name", "INT": "a number", "FLOAT": "a number",
    "STRING": "a string", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'",
    "LBRACE": "'{'", "RBRACE": "'}'", "COMMA": "','", "COLON": "':'", "EQUAL": "'='",
    "SEMICOLON": "';'", "DOT": "'.'", "ADD_OP": "'+' or '-'", "MUL_OP": "an operator",
    "COMP_OP": "a comparison", "__ANON_0": "'**'", "$END": "end of file",
}

# label -> malformed examples; the first label whose example fails in the same parser state wins.
EXAMPLES: dict[str, list[str]] = {
    "a model needs a name, then a block in braces": ["model {", "model M ("],
    "missing ':' and a type after the input name (e.g. `input x: f32[N, 10]`)": [
        "model M { input x f32[N] }", "model M { input x }"],
    "a tensor type is a dtype and dims in brackets, e.g. f32[N, 784]": [
        "model M { input x: f32 }", "model M { input x: f32 N }"],
    "missing operand: an operator needs a value on both sides": [
        "model M { y = x + }", "model M { y = x * }", "model M { y = }"],
    "unclosed '(' : a call or group needs its ')'": ["model M { y = f(x }", "model M { y = (x }"],
    "statements go inside braces; did you forget '{' ?": ["model M input x: f32[N]"],
}
# labels for one unexpected token in a common state (a name that starts a statement), so they
# apply only where that same token comes: Python's `def forward(self, x):` in a layer
TOKEN_EXAMPLES: dict[str, list[str]] = {
    "a layer's forward is written `forward(x) { ... }` (no def, no self, a block in braces)": [
        "layer L() { def forward(self, x): }"],
}


def describe_expected(expected: Iterable[str]) -> str:
    words = []
    for term in sorted(expected):
        word = TERMINAL_WORDS.get(term)
        if word is None:
            word = f"'{term.lower()}'" if term.isalpha() and term.isupper() else term
        if word not in words:
            words.append(word)
    if len(words) > 6:
        words = words[:6] + ["..."]
    return ", ".join(words)


def label_for(error: UnexpectedInput, parser: Lark) -> str | None:
    """The label of the example that fails like `error`: in the same LALR state (the one on top
    of the stack), preferring the same unexpected terminal. lark's `match_examples` also compares
    stack depths, so its labels only fired for mistakes in a block's first statement."""
    if not isinstance(error, UnexpectedToken):
        return None
    try:
        found = None
        for label, state, accepts, token_type, exact in _example_failures(parser):
            if state == error.state.position and accepts == frozenset(error.accepts):
                if token_type == error.token.type:
                    return label
                found = found or (None if exact else label)
        return found
    except Exception:  # noqa: BLE001 - a label is a nicety; never let it mask the real error
        return None


@cache
def _example_failures(parser: Lark) -> list[tuple[str, int, frozenset, str, bool]]:
    out = []
    for table, exact in ((EXAMPLES, False), (TOKEN_EXAMPLES, True)):
        for label, examples in table.items():
            for example in examples:
                try:
                    parser.parse(example)
                except UnexpectedToken as e:
                    out.append((label, e.state.position, frozenset(e.accepts), e.token.type,
                                exact))
    return out
