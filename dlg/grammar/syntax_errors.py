"""Syntax error messages in words: names for the grammar's terminals, and a table of labelled
malformed examples matched against the parser state (lark's `match_examples`, STYLE §9)."""

from __future__ import annotations

from collections.abc import Iterable

from lark import Lark
from lark.exceptions import UnexpectedInput

TERMINAL_WORDS = {
    "NAME": "a name", "TEMPLATE_NAME": "a name", "INT": "a number", "FLOAT": "a number",
    "STRING": "a string", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'",
    "LBRACE": "'{'", "RBRACE": "'}'", "COMMA": "','", "COLON": "':'", "EQUAL": "'='",
    "SEMICOLON": "';'", "DOT": "'.'", "ADD_OP": "'+' or '-'", "MUL_OP": "an operator",
    "COMP_OP": "a comparison", "__ANON_0": "'**'",
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
    """The label of the example that fails like `error`, if any."""
    try:
        return error.match_examples(parser.parse, EXAMPLES, use_accepts=True)
    except Exception:  # noqa: BLE001 - a label is a nicety; never let it mask the real error
        return None
