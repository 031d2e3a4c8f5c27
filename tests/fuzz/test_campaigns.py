"""The fuzz campaigns of tools/fuzz (docs/fuzzing.md): a few cases of each in the normal suite,
so the generators and checks keep working; `pytest -m fuzz` runs each at a campaign's scale in
worker processes under its per-case deadline (`python -m tools.fuzz` runs any scale)."""

from __future__ import annotations

import random

import pytest

from dlg.errors import DlgError, DlgSyntaxError
from dlg.grammar.format import format_module
from dlg.grammar.parser import parse
from tools.fuzz import dlg_sources, graphs, nets, sources
from tools.fuzz.campaign import run, run_case


def test_grammar_derivations_parse_and_format_back():
    """Derivations of dlg.lark are syntax: all but the few the transformer refuses (a keyword
    argument before a positional one) or that put a statement's `(` after an expression (the
    grammar's documented limit) parse, and print back to the same module."""
    parsed = 0
    for i in range(200):
        text = sources.derived(random.Random(i))
        try:
            module = parse(text, "fuzz.dlg")
        except DlgSyntaxError:
            continue
        parsed += 1
        assert parse(format_module(module), "fuzz.dlg") == module
    assert parsed >= 180


@pytest.mark.parametrize("kind", sorted(sources.GENERATORS))
def test_every_generator_makes_sources_that_only_raise_dlg_errors(kind):
    for i in range(30):
        text = sources.GENERATORS[kind](random.Random(f"{kind}:{i}"))
        try:
            dlg_sources.load(text)
        except DlgError:
            pass


@pytest.mark.parametrize("index", [0, 1, 4, 202])
def test_random_nets_agree_eager_traced_and_compiled(index):
    """202: GroupNorm over a constant channel: the conv bias gradient is 0 in float64 and
    ~1e-4 in float32 for the oracle and compiled alike (rounding scaled by 1/sqrt(eps))."""
    assert run_case(nets.check, 0, index)[1] == ""


def test_a_finding_is_reported_with_its_case_and_traceback():
    def check(seed: int, index: int) -> str:
        raise KeyError(index)
    outcome, sig, tb = run_case(check, 0, 7)
    assert outcome == "finding" and sig.startswith("KeyError") and "KeyError: 7" in tb


@pytest.mark.fuzz
def test_parse_campaign():
    summary = run("parse", dlg_sources.check, seed=3, cases=5000, workers=2,
                  timeout=dlg_sources.TIMEOUT)
    assert not summary.findings, summary.text()


@pytest.mark.fuzz
def test_graphs_campaign():
    summary = run("graphs", graphs.check, seed=4, cases=1000, workers=2, timeout=graphs.TIMEOUT)
    assert not summary.findings, summary.text()


@pytest.mark.fuzz
def test_nn_campaign():
    summary = run("nn", nets.check, seed=5, cases=100, workers=2, timeout=nets.TIMEOUT)
    assert not summary.findings, summary.text()
