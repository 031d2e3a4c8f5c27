"""Differential fuzzing: random valid graphs (elementwise chains with broadcasting, reductions,
movement, matmul, softmax, conv and pooling, and their gradients), compiled vs the interpreter.
The quick profile runs in CI; `pytest -m fuzz` runs thousands. Every bug found here becomes a
regression test in test_native.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlg.compiler.passes.autodiff import grad
from dlg.ir import Builder, DType, Graph, TensorType
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph

F32 = DType.f32
UNARY = ["neg", "abs", "tanh", "sigmoid", "relu", "sin", "cos", "gelu", "leaky_relu"]
BINARY = ["add", "sub", "mul", "maximum", "minimum"]


@st.composite
def graphs(draw) -> tuple[Graph, dict[str, np.ndarray]]:
    g = Graph("fuzz")
    b = Builder(g)
    inputs: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))

    def fresh(shape: tuple[int, ...]):
        name = f"x{len(inputs)}"
        inputs[name] = rng.standard_normal(shape).astype(np.float32)
        return b.input(name, TensorType(F32, shape))

    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    values = [fresh(shape)]
    for _ in range(draw(st.integers(1, 7))):
        v = draw(st.sampled_from(values))
        t = g.type_of(v)
        kind = draw(st.sampled_from(["unary", "binary", "reduce", "transpose", "reshape", "slice",
                                     "pad", "concat", "matmul", "softmax", "where", "pool"]))
        if kind == "unary":
            v = getattr(b, draw(st.sampled_from(UNARY)))(v)
        elif kind == "binary":
            other = tuple(1 if draw(st.booleans()) else d for d in t.shape)
            other = other[draw(st.integers(0, len(other))):]
            w = fresh(other)
            v = getattr(b, draw(st.sampled_from(BINARY)))(*((v, w) if draw(st.booleans())
                                                              else (w, v)))
        elif kind == "reduce" and t.rank:
            axes = tuple(sorted(draw(st.sets(st.integers(0, t.rank - 1), min_size=1))))
            op = draw(st.sampled_from(["reduce_sum", "reduce_max", "reduce_min", "reduce_mean"]))
            v = getattr(b, op)(v, axes=axes, keepdims=draw(st.booleans()))
        elif kind == "transpose" and t.rank > 1:
            v = b.transpose(v, perm=tuple(draw(st.permutations(range(t.rank)))))
        elif kind == "reshape":
            v = b.reshape(v, shape=(int(np.prod(t.shape)),) if t.rank != 1 else (1, t.shape[0]))
        elif kind == "slice" and t.rank:
            axis = draw(st.integers(0, t.rank - 1))
            size = int(t.shape[axis])
            start = draw(st.integers(0, size - 1))
            stop = draw(st.integers(start + 1, size))
            v = b.slice(v, axes=(axis,), starts=(start,), stops=(stop,),
                        steps=(draw(st.integers(1, 3)),))
        elif kind == "pad" and t.rank:
            pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in t.shape)
            v = b.pad(v, pads=pads, value=draw(st.sampled_from([0.0, -1.5])))
        elif kind == "concat" and t.rank:
            v = b.concat(v, b.neg(v), axis=draw(st.integers(0, t.rank - 1)))
        elif kind == "matmul" and t.rank:
            v = b.matmul(v, fresh((int(t.shape[-1]), draw(st.integers(1, 4)))))
        elif kind == "softmax" and t.rank:
            op = draw(st.sampled_from(["softmax", "log_softmax"]))
            v = getattr(b, op)(v, axis=draw(st.integers(0, t.rank - 1)))
        elif kind == "where":
            v = b.where(b.gt(v, b.full(shape=(), value=0.0)), v, b.mul(v, v))
        elif kind == "pool" and t.rank == 3 and min(t.shape[1:]) >= 2:
            x = b.reshape(v, shape=(1,) + t.shape)
            if draw(st.booleans()):
                w = fresh((2, int(t.shape[0]), 2, 2))
                v = b.conv(x, w, stride=(1, 1), padding=((1, 0), (0, 1)), dilation=(1, 1),
                           groups=1)
            else:
                op = draw(st.sampled_from(["max_pool", "avg_pool"]))
                v = getattr(b, op)(x, kernel=(2, 2), stride=(1, 2), padding=(1, 0),
                                   ceil_mode=draw(st.booleans()))
        values.append(v)
    g.set_output("y", values[-1])
    if draw(st.booleans()):  # and the gradient of a weighted sum, wrt every input
        weights = fresh(tuple(int(d) for d in g.type_of(values[-1]).shape))
        g.set_output("loss", b.reduce_sum(b.mul(values[-1], weights)))
        g = grad(g, "loss", wrt=list(inputs))
    return g, inputs


def check(case: tuple[Graph, dict[str, np.ndarray]]) -> None:
    g, inputs = case
    expected, _ = Interpreter().run(g, inputs, {})
    got = NativeGraph(g)(inputs, {})
    for k, want in expected.items():
        assert got[k].shape == want.shape, k
        scale = max(1.0, float(np.abs(want).max(initial=0)))
        np.testing.assert_allclose(got[k], want, rtol=1e-4, atol=1e-5 * scale, err_msg=k)


QUICK = settings(max_examples=200, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@QUICK
@given(graphs())
def test_random_graphs_compile_to_the_interpreters_results(case):
    check(case)


@pytest.mark.fuzz
@settings(max_examples=3000, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(graphs())
def test_random_graphs_long_campaign(case):
    check(case)
