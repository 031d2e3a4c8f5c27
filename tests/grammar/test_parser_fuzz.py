"""Random and mutated sources: parsing and loading may only ever raise DlgError, and syntax
errors point inside the text."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dlg
from dlg.errors import DlgError, DlgSyntaxError
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


def check_parse(source: str) -> None:
    try:
        parse(source, "fuzz.dlg")
    except DlgSyntaxError as e:
        lines = source.splitlines() or [""]
        assert e.span is not None and 1 <= e.span.line <= max(len(lines), 1)
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


@pytest.mark.parametrize("source", [
    "model M { y = f(a=1, 2) }",  # found by the fuzzer: the transformer's error came out wrapped
])
def test_regressions(source):
    with pytest.raises(DlgSyntaxError, match="positional argument cannot follow"):
        parse(source)


@QUICK
@given(st.text(max_size=200))
def test_random_text_only_raises_dlg_errors(source):
    check_parse(source)


@QUICK
@given(mutated())
def test_mutated_models_only_raise_dlg_errors(source):
    check_parse(source)


@QUICK
@given(mutated())
def test_loading_mutated_models_only_raises_dlg_errors(source):
    check_load(source)


@pytest.mark.fuzz
@HEAVY
@given(mutated())
def test_fuzz_campaign_load(source):
    check_load(source)
