"""Findings of the fuzz campaigns (tools/fuzz, docs/fuzzing.md), each minimised to a fast case
with an independent oracle: the NumPy interpreter on the same graph, or NumPy itself."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.ir import Builder, DType, Graph, TensorType
from dlg.runtime.native import NativeGraph

RTOL, ATOL = 1e-4, 1e-5
F32 = DType.f32


def assert_compiled_matches(source: str, **inputs: np.ndarray) -> None:
    m = dlg.loads(source)
    want, got = m(**inputs), dlg.compile(m)(**inputs)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_recurrent_forward_compiles_with_its_projection_hoisted():
    """parse campaign, every recurrent model: hoist read a projection's rows (a bias added to
    the hoisted matmul) from the wrong table (`rows.get(v, outer[v])` evaluates `outer[v]`
    first), so no RNN/GRU/LSTM compiled for inference: KeyError in pass 'hoist'."""
    source = """
    model M {
        input x: f32[N, 5, 3]
        layer rnn = RNN(3, 4)
        seq, h = rnn(x)
        output y = seq
    }
    """
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    assert_compiled_matches(source, x=x)


def reduced(term: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """sum over the last axis of `term` (of a = x1 + x0, [2, 3, n]; x1 constant along it),
    compiled, and NumPy's."""
    rng = np.random.default_rng(n)
    x0 = rng.standard_normal((3, n)).astype(np.float32)
    x1 = rng.standard_normal((2, 1, 1)).astype(np.float32)
    g = Graph("m")
    b = Builder(g)
    v0, v1 = b.input("x0", TensorType(F32, (3, n))), b.input("x1", TensorType(F32, (2, 1, 1)))
    a = b.add(v1, v0)
    value = {"a": a, "a*x1": b.mul(a, v1), "exp(a)": b.exp(a)}[term]
    g.set_output("y", b.reduce_sum(value, axes=(-1,), keepdims=False))
    want = {"a": x1 + x0, "a*x1": (x1 + x0) * x1, "exp(a)": np.exp(x1 + x0)}[term].sum(-1)
    return NativeGraph(g)({"x0": x0, "x1": x1}, {})["y"], want


@pytest.mark.parametrize("term", ["a", "a*x1", "exp(a)"])
@pytest.mark.parametrize("n", [1, 5, 17])
def test_sum_tiles_mask_terms_constant_along_the_sum(term, n):
    """graphs campaign, layer_norm(x1 + x0) over a broadcast x1: a register tile along the
    sum masked only its loads in the remainder vector, so a term constant along the sum (x1
    broadcast to every lane) was added once per lane past the end."""
    got, want = reduced(term, n)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL * max(1, np.abs(want).max()))


DEEP = "model M {{\n    input x: f32[N, 3]\n    output y = {}\n}}"


@pytest.mark.parametrize("expr", [
    "-" * 1000 + "x", "relu(" * 300 + "x" + ")" * 300, " + ".join(["x"] * 1000),
    " ** ".join(["x"] * 1000), "not " * 1000 + "x", "[" * 1000 + "]" * 1000])
def test_deep_nesting_is_a_syntax_error(expr):
    """parse campaign (deep sources): expressions nested hundreds deep raised RecursionError
    (or lark's VisitError around one) from the transformer and the elaborator."""
    with pytest.raises(dlg.DlgSyntaxError, match="nested too deeply"):
        dlg.loads(DEEP.format(expr))


def test_nesting_below_the_limit_still_loads():
    m = dlg.loads(DEEP.format(" + ".join(["x"] * 150) + " + " + "relu(" * 40 + "x" + ")" * 40))
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(m(x=x), 151 * x)


@pytest.mark.parametrize("source", [
    "def f(x) { return f(x) }\nmodel M { input x: f32[N]\n output y = f(x) }",
    "def f(n) { if n == 0 { return 0 } else { return f(n - 1) } }\n"
    "model M { input x: f32[N]\n output y = x * f(5000) }",
    "layer A() { layer a = A()\n forward(x) { return a(x) } }\n"
    "model M { input x: f32[N]\n layer a = A()\n output y = a(x) }"])
def test_a_def_or_layer_using_itself_without_end_is_an_error(source):
    """Recursion without end in a def or a layer's body was a RecursionError."""
    with pytest.raises(dlg.DlgNameError, match="uses itself without end"):
        dlg.loads(source)


def test_the_layer_that_uses_itself_is_the_one_named():
    """A layer holding itself beside other layers: the error names it at its own line (it named
    the Linear made inside, the last call before the limit)."""
    with pytest.raises(dlg.DlgNameError, match="layer Block uses itself") as info:
        dlg.loads("layer Block(d: int) {\n    layer fc = Linear(d, d)\n    layer inner = Block(d)\n"
                  "    forward(x) { return inner(fc(x)) }\n}\n"
                  "model M { input x: f32[N, 4]\n layer b = Block(4)\n output y = b(x) }")
    assert info.value.span.line == 3


def test_bounded_recursion_in_a_def_still_runs():
    m = dlg.loads("def f(n) { if n == 0 { return 0 } else { return 1 + f(n - 1) } }\n"
                  "model M { input x: f32[N]\n output y = x * f(20) }")
    np.testing.assert_allclose(m(x=np.ones(2, np.float32)), [20, 20])
