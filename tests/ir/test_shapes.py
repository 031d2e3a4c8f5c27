"""Symbolic dims against integer arithmetic: every identity is checked by substituting random
integers for the symbols (STYLE §12), plus printing/parsing, exact division and binding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlg.errors import DlgTypeError
from dlg.ir.shapes import (Sym, bind_dims, evaluate_dim, exact_div, numel, parse_dim,
                           shape_str)

NAMES = ("N", "T", "B")
N, T, B = (Sym.named(s) for s in NAMES)

# A dim and the integer expression it stands for, both built by the same random steps.
small_ints = st.integers(-6, 6)
leaves = st.one_of(small_ints, st.sampled_from([N, T, B]))
dims = st.recursive(
    leaves,
    lambda sub: st.one_of(st.tuples(sub, sub).map(lambda p: p[0] + p[1]),
                          st.tuples(sub, sub).map(lambda p: p[0] - p[1]),
                          st.tuples(sub, sub).map(lambda p: p[0] * p[1]),
                          sub.map(lambda d: -d)),
    max_leaves=6)
envs = st.fixed_dictionaries({s: st.integers(-50, 50) for s in NAMES})
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@settings(max_examples=200, deadline=None)
@given(dims, dims, st.sampled_from(sorted(OPS)), envs)
def test_arithmetic_commutes_with_substitution(a, b, op, env):
    result = OPS[op](a, b)
    assert evaluate_dim(result, env) == OPS[op](evaluate_dim(a, env), evaluate_dim(b, env))


@settings(max_examples=200, deadline=None)
@given(dims, envs)
def test_constant_results_are_plain_ints(d, env):
    assert isinstance(d - d, int) and d - d == 0
    if not isinstance(d, int):
        assert d.symbols and d != evaluate_dim(d, env)


@settings(max_examples=200, deadline=None)
@given(dims)
def test_printed_dims_parse_back(d):
    assert parse_dim(str(d)) == d
    assert parse_dim(str(d).replace(" ", "")) == d


@settings(max_examples=200, deadline=None)
@given(dims, st.one_of(st.integers(1, 5), st.sampled_from([N, 3 * T, N * B, -2 * N * N])), envs)
def test_exact_div_undoes_a_monomial_product(a, b, env):
    assert exact_div(a * b, b) == a
    assert (a * b) // b == a
    q = exact_div(a, b)
    if q is not None:
        assert evaluate_dim(q * b, env) == evaluate_dim(a, env)


@pytest.mark.parametrize("a, b, expected", [
    (12, 4, 3), (12, 5, None), (5, 0, None), (4 * N + 8, 4, N + 2), (4 * N + 6, 4, None),
    (N * T, N, T), (N * T, B, None), (2 * N + 2 * T, N + T, None),
    (N + T, N + T, 1),
    (6, N, None),
])
def test_exact_div_cases(a, b, expected):
    assert exact_div(a, b) == expected


def test_floor_div_refuses_inexact_division():
    with pytest.raises(ValueError, match="not divisible"):
        (N + 1) // 2
    with pytest.raises(ValueError, match="not divisible"):
        6 // N


@pytest.mark.parametrize("divide", [lambda n: n * 4 / 4.0, lambda n: 2 / n, lambda n: n / n],
                         ids=["sym/float", "int/sym", "sym/sym"])
def test_true_division_of_a_symbol_is_a_dlg_error_at_the_users_line(divide):
    """Swin's `int(windows.shape[0] / (H * W / ws / ws))` under dlg.compile: the message names
    // and the span is this file's line, not a bare TypeError from inside dlg."""
    with pytest.raises(DlgTypeError, match="symbolic size.*//") as caught:
        divide(Sym.named("N"))
    assert caught.value.span is not None and caught.value.span.file == __file__


def test_printing_and_numel():
    assert str(3 * N * T - N + 1) == "3*N*T - N + 1"
    assert str(-N) == "-N"
    assert shape_str((N, 2 * T, 3)) == "[N, 2*T, 3]"
    assert numel((N, 4, T)) == 4 * N * T and numel(()) == 1


@pytest.mark.parametrize("text", ["", "N +", "2N", "N**2", "N*", "(N)", "+"])
def test_parse_dim_rejects_malformed_text(text):
    with pytest.raises(ValueError):
        parse_dim(text)


@pytest.mark.parametrize("pattern, actual, env, error, bound", [
    ((N, 3), (5, 3), {}, None, {"N": 5}),
    ((N, N), (5, 5), {}, None, {"N": 5}),
    ((N, N), (5, 6), {}, "dim N is 5 elsewhere but 6 at axis 1", None),
    ((N,), (4,), {"N": 3}, "dim N is 3 elsewhere but 4 at axis 0", None),
    ((N, 3), (5, 4), {}, "axis 1 should be 3, got 4", None),
    ((N,), (5, 1), {}, "expected rank 1, got rank 2", None),
    ((2 * N, N), (8, 4), {}, None, {"N": 4}),
    ((2 * N, N), (9, 4), {}, "axis 0 should be 2*N = 8, got 9", None),
    ((N * T, N), (12, 4), {}, None, {"N": 4}),  # T unknown: N*T cannot be checked yet
])
def test_bind_dims(pattern, actual, env, error, bound):
    env = dict(env)
    assert bind_dims(pattern, actual, env) == error
    if bound is not None:
        assert env == bound
