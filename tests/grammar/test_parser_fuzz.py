"""Random and mutated sources: parsing and loading may only ever raise DlgError, and syntax
errors point inside the text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dlg
from dlg.errors import DlgError, DlgSyntaxError
from dlg.grammar.format import format_module
from dlg.grammar.parser import parse

ROOT = Path(__file__).resolve().parent.parent.parent
SEEDS = [p.read_text() for p in sorted((ROOT / "models").glob("*.dlg"))]
TOKENS = ["{", "}", "(", ")", "[", "]", ",", ":", "=", "==", "**", "@", "-", ".", "...", "#",
          '"', "model", "layer", "param", "scan", "carry", "emit", "input", "output", "return",
          "if", "else", "for", "in", "x", "N", "f32", "1", "2.5", "w_l{l}", "\n", " "]


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = min(len(text), i + draw(st.integers(0, 12)))
        action = draw(st.sampled_from(["delete", "insert", "duplicate", "replace"]))
        if action == "delete":
            text = text[:i] + text[j:]
        elif action == "insert":
            text = text[:i] + draw(st.sampled_from(TOKENS)) + text[i:]
        elif action == "duplicate":
            text = text[:i] + text[i:j] + text[i:]
        else:
            text = text[:i] + draw(st.text(max_size=3)) + text[j:]
    return text


# words, numbers and strings (brackets and operators stay): edits at this grain mostly keep the
# text parsing, so they reach the elaborator with wrong names, values and types
WORD = re.compile(r'[A-Za-z_]\w*(?:\{\w+\}\w*)?|\d+\.\d*(?:e-?\d+)?|\d+|"[^"]*"')
VALUES = ["0", "-1", "1", "3", "17", "0.5", '"s"', "none", "true", "()", "[1, 2]", "(1, 2)",
          "x", "N", "f64", "i64", "bool", "axis=1"]


@st.composite
def token_mutated(draw):
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 3))):
        words = list(WORD.finditer(text))
        at = draw(st.sampled_from(words))
        action = draw(st.sampled_from(["value", "word", "swap", "delete"]))
        if action == "value":
            new = draw(st.sampled_from(VALUES))
        elif action == "word":
            new = draw(st.sampled_from(words)).group()
        elif action == "swap":  # exchange with a later word
            other = draw(st.sampled_from(words[words.index(at):]))
            if other is not at:
                text = (text[:at.start()] + other.group() + text[at.end():other.start()]
                        + at.group() + text[other.end():])
            continue
        else:
            new = ""
        text = text[:at.start()] + new + text[at.end():]
    return text


def check_parse(source: str) -> None:
    try:
        parse(source, "fuzz.dlg")
    except DlgSyntaxError as e:
        lines = source.split("\n")  # lines as lark counts them
        assert e.span is not None and 1 <= e.span.line <= len(lines)
        assert 1 <= e.span.col <= len(lines[e.span.line - 1]) + 2
    except DlgError:
        pass


def check_load(source: str) -> None:
    try:
        dlg.loads(source, file="fuzz.dlg")
    except DlgError:
        pass


QUICK = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
HEAVY = settings(max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("source, message", [
    # found by the fuzzer: the transformer's error came out wrapped in lark's VisitError
    ("model M { y = f(a=1, 2) }", "positional argument cannot follow"),
    # Python's literal_eval raised SyntaxError/ValueError through the transformer
    ('model M { y = "\\N" }', "bad escape in string"),
    ('import "\\x1"', "truncated"),
    ('model M { y = "\\q" }', "invalid escape"),
    ("model M { y = " + "9" * 5000 + " }", "integer literal too long"),
])
def test_regressions(source, message):
    with pytest.raises(DlgSyntaxError, match=message):
        parse(source)
    check_parse(source)


@pytest.mark.parametrize("source", ["model M\x0c{ y = $ }", "model M {\r y = (\x0c\n\n  "])
def test_error_lines_are_counted_like_lark(source):
    """Form feeds and lone carriage returns are not line breaks for the parser."""
    check_parse(source)


@QUICK
@given(st.text(max_size=200))
def test_random_text_only_raises_dlg_errors(source):
    check_parse(source)


@QUICK
@given(mutated())
def test_mutated_models_only_raise_dlg_errors(source):
    check_parse(source)


@QUICK
@given(st.one_of(mutated(), token_mutated()))
def test_loading_mutated_models_only_raises_dlg_errors(source):
    check_load(source)


@QUICK
@given(st.one_of(mutated(), token_mutated()))
def test_mutated_models_that_parse_format_back_to_themselves(source):
    try:
        module = parse(source, "fuzz.dlg")
    except DlgError:
        return
    text = format_module(module)
    assert parse(text, "fuzz.dlg") == module
    assert format_module(parse(text, "fuzz.dlg")) == text


@pytest.mark.fuzz
@HEAVY
@given(st.one_of(mutated(), token_mutated()))
def test_fuzz_campaign_load(source):
    check_load(source)


@pytest.mark.fuzz
@HEAVY
@given(st.one_of(mutated(), st.text(max_size=300)))
def test_fuzz_campaign_parse(source):
    check_parse(source)
