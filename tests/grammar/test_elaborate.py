"""Elaboration: layers, names, static control flow, scan, imports, modes; checked by running the
graph with the interpreter against NumPy written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.errors import DlgImportError, DlgNameError, DlgTypeError

RNG = np.random.default_rng(0)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def test_layer_attributes_and_static_arithmetic():
    m = dlg.loads("""
    layer Gates(hidden: int) {
        k = 1 / sqrt(hidden)
        param w: f32[4 * hidden, hidden] = uniform(-k, k)
        forward(x) { return x @ T(w) }
    }
    model M { input x: f32[N, 3]  layer g = Gates(3)  output y = g(x) }
    """)
    w = m.params["g.w"]
    assert w.shape == (12, 3)
    assert np.abs(w).max() <= 1 / np.sqrt(3)
    x = rand(5, 3)
    np.testing.assert_allclose(m(x=x), x.astype(np.float64) @ w.T, rtol=1e-6, atol=1e-7)


def test_nested_layers_get_hierarchical_names():
    m = dlg.loads("""
    layer Inner(n: int) { param weight: f32[n] = ones()  forward(x) { return x * weight } }
    layer Outer(n: int) {
        layer first = Inner(n)
        layer second = Inner(n)
        forward(x) { return second(first(x)) }
    }
    model M { input x: f32[2]  layer block = Outer(2)  output y = block(x) }
    """)
    assert list(m.params) == ["block.first.weight", "block.second.weight"]
    m.params["block.first.weight"] = np.array([2, 3], np.float32)
    np.testing.assert_array_equal(m(x=np.ones(2, np.float32)), [2, 3])


def test_template_names_static_for_and_if():
    m = dlg.loads("""
    layer Stack(n: int, depth: int, bias: bool = true) {
        for l in range(depth) {
            param w_l{l}: f32[n, n] = ones()
            if bias { param b_l{l}: f32[n] = zeros() }
        }
        forward(x) {
            for l in range(depth) {
                x = x @ w_l{l}
                if bias { x = x + b_l{l} }
            }
            return x
        }
    }
    model M { input x: f32[N, 2]  layer s = Stack(2, 3, bias=false)  output y = s(x) }
    """)
    assert list(m.params) == ["s.w_l0", "s.w_l1", "s.w_l2"]
    x = rand(4, 2)
    np.testing.assert_allclose(m(x=x), x @ np.ones((2, 2)) @ np.ones((2, 2)) @ np.ones((2, 2)),
                               rtol=1e-5)


def test_defs_with_defaults_keywords_and_tuples():
    m = dlg.loads("""
    def affine(x, scale = 2.0, shift = 0.0) { return x * scale + shift, scale }
    model M {
        input x: f32[N]
        a, s = affine(x, shift=1.0)
        c, (b, _) = 7, affine(x, 3.0)
        output y = a + b * c
    }
    """)
    x = rand(6)
    np.testing.assert_allclose(m(x=x), (2 * x + 1) + (3 * x) * 7, rtol=1e-6)


def test_scan_matches_a_python_loop_and_stays_one_node():
    src = """
    model M {
        input x: f32[N, T, 3]
        param w: f32[3, 3] = normal(0, 0.5)
        h0 = zeros(shape(x, 0), 3)
        scan (x_t in x, axis=1) carry (h = h0) {
            h = tanh(x_t + h @ w)
            emit hs = h
        }
        output last = h
        output all = hs
    }
    """
    m = dlg.loads(src)
    assert m.graph.op_counts()["scan"] == 1
    w = m.params["w"]
    x = rand(2, 5, 3)
    last, hs = m(x=x)
    h = np.zeros((2, 3), np.float32)
    steps = []
    for t in range(5):
        h = np.tanh(x[:, t] + h @ w)
        steps.append(h)
    np.testing.assert_allclose(last, h, rtol=1e-5)
    np.testing.assert_allclose(hs, np.stack(steps, axis=1), rtol=1e-5)
    # a different length runs through the same graph: T is symbolic
    assert m(x=rand(2, 9, 3))[1].shape == (2, 9, 3)


def test_scan_reverse_and_empty_sequence():
    m = dlg.loads("""
    model M {
        input x: f32[T, 2]
        scan (x_t in x, reverse=true) carry (acc = zeros(2)) {
            acc = acc * 0.5 + x_t
            emit partial = acc
        }
        output y = partial
    }
    """)
    x = rand(4, 2)
    acc, out = np.zeros(2, np.float32), [None] * 4
    for t in reversed(range(4)):
        acc = acc * 0.5 + x[t]
        out[t] = acc
    np.testing.assert_allclose(m(x=x), np.stack(out), rtol=1e-6)
    assert m(x=np.zeros((0, 2), np.float32)).shape == (0, 2)


def test_symbolic_batch_binds_per_call():
    m = dlg.loads("model M { input x: f32[N, 2]  input y: f32[N, 2]  output z = x * y }")
    assert m(x=rand(3, 2), y=rand(3, 2)).shape == (3, 2)
    with pytest.raises(dlg.DlgValueError, match="dim N is 3"):
        m(x=rand(3, 2), y=rand(4, 2))
    with pytest.raises(dlg.DlgValueError, match="expected dtype f32"):
        m(x=rand(3, 2).astype(np.float64), y=rand(3, 2))


def test_seed_makes_initialisation_reproducible():
    src = "model M { input x: f32[2]  param w: f32[2, 2] = normal(0, 1)  output y = x @ w }"
    a, b, c = dlg.loads(src, seed=1), dlg.loads(src, seed=1), dlg.loads(src, seed=2)
    np.testing.assert_array_equal(a.params["w"], b.params["w"])
    assert not np.array_equal(a.params["w"], c.params["w"])


def test_imports_bring_definitions(tmp_path):
    (tmp_path / "blocks.dlg").write_text(
        "def twice(x) { return x * 2.0 }\n"
        "layer Scale(n: int) { param s: f32[n] = full(3.0)  forward(x) { return x * s } }\n")
    (tmp_path / "main.dlg").write_text(
        'import "blocks.dlg"\n'
        "model M { input x: f32[2]  layer sc = Scale(2)  output y = twice(sc(x)) }\n")
    m = dlg.load(tmp_path / "main.dlg")
    np.testing.assert_allclose(m(x=np.ones(2, np.float32)), [6, 6])


def test_recursive_and_missing_imports(tmp_path):
    (tmp_path / "a.dlg").write_text('import "b.dlg"\nmodel M { input x: f32[1] output y = x }\n')
    (tmp_path / "b.dlg").write_text('import "a.dlg"\n')
    with pytest.raises(DlgImportError, match="recursive import: a.dlg -> b.dlg -> a.dlg"):
        dlg.load(tmp_path / "a.dlg")
    (tmp_path / "c.dlg").write_text('import "nope.dlg"\n')
    with pytest.raises(DlgImportError, match="no such file") as info:
        dlg.load(tmp_path / "c.dlg")
    assert (info.value.span.line, info.value.span.col) == (1, 1)


def test_tensor_condition_in_if_is_an_error():
    with pytest.raises(DlgTypeError, match="known when the model is built"):
        dlg.loads("model M { input x: f32[2]  if x { y = x }  output z = x }")


def test_several_models_need_a_choice():
    src = "model A { input x: f32[1] output y = x }  model B { input x: f32[1] output y = -x }"
    with pytest.raises(DlgNameError, match=r"several models \(A, B\); choose one") as info:
        dlg.loads(src)
    assert info.value.span is not None and info.value.span.col == 43  # at the second model
    assert dlg.loads(src, model="B")(x=np.ones(1, np.float32))[0] == -1


def test_training_flag_switches_the_graph():
    m = dlg.loads("""
    model M {
        input x: f32[N, 4]
        output y = dropout(x, 0.5)
    }
    train M { input t: f32[N, 4]  loss = mean((y - t) ** 2) }
    """)
    x = np.ones((64, 4), np.float32)
    np.testing.assert_array_equal(m(x=x), x)  # eval mode: identity
    train = m.train_graph
    assert train is not None and [n for n, _ in train.outputs] == ["y", "loss"]
    assert m.train_spec.labels == ("t",)
