"""The IR text form (STYLE §7) on hand-built graphs: exact text, naming, nesting, arrays."""

from __future__ import annotations

import numpy as np

from dlg.ir import Builder, DType, Graph, TensorType
from dlg.ir.printer import ARRAY_LIMIT, format_around, format_graph
from tests.ir.sample_graphs import SPAN, N, f32, recurrent, tiny


def test_tiny_graph_exact_text():
    assert format_graph(tiny(), spans=False) == """\
graph tiny(%x: f32[N,3], %w: param f32[3]) -> (out: f32[N]) {
  %y: f32[N,3] = add(%x, %w)
  %v3: f32[N] = reduce_sum(%y) {axes=[1], keepdims=false}
  return out = %v3
}"""


def test_spans_are_trailing_comments():
    lines = format_graph(tiny()).splitlines()
    assert lines[1] == "  %y: f32[N,3] = add(%x, %w)  # m.dlg:3:5"
    assert lines[0].count("#") == 0 and lines[-1] == "}"


def test_scan_body_nests_and_updates_come_before_return():
    assert format_graph(recurrent(), spans=False) == """\
graph rnn(%xs: f32[T,N,4], %c: param f32[4], %steps: buffer f32[]) -> (h: f32[N,4], ys: f32[T,N,1]) {
  %v3: f32[N,4] = full() {dtype=f32, shape=[N, 4], value=0.0}
  %v4_0: f32[N,4], %v4_1: f32[T,N,1] = scan(%v3, %xs, %c) {axis=0, n_carry=1, n_seq=1, reverse=false}
    graph step(%h: f32[N,4], %x_t: f32[N,4], %c: f32[4]) -> (h: f32[N,4], y: f32[N,1]) {
      %v3: f32[N,4] = mul(%x_t, %c)
      %v4: f32[N,4] = add(%h, %v3)
      %h_1: f32[N,4] = tanh(%v4)
      %v6: f32[N,1] = reduce_sum(%h_1) {axes=[1], keepdims=true}
      return h = %h_1, y = %v6
    }
  %v5: f32[] = constant() {value=f32[]{1.0}}
  %v6: f32[] = add(%steps, %v5)
  updates {
    steps = %v6
  }
  return h = %v4_0, ys = %v4_1
}"""  # noqa: E501


def test_names_are_sanitised_and_unique():
    g = Graph("names")
    b = Builder(g)
    x = b.input("x", TensorType(f32, (2,)))
    a = b.neg(x, name="x")
    c = b.neg(a, name="x")
    d = b.neg(c, name="a b/c")
    e = b.neg(d, name="x_1")
    g.set_output("y", e)
    text = format_graph(g, spans=False)
    for line in ("%x_1: f32[2] = neg(%x)", "%x_2: f32[2] = neg(%x_1)",
                 "%a_b_c: f32[2] = neg(%x_2)", "%x_1_1: f32[2] = neg(%a_b_c)"):
        assert line in text


def test_arrays_print_with_their_type_and_elements_and_large_ones_elided():
    g = Graph("consts")
    b = Builder(g)
    s = b.constant(0.25, f32)
    m = b.constant(np.arange(12).reshape(3, 4) / 8, f32)
    t = b.constant(True, DType.bool)
    big = b.constant(np.zeros(ARRAY_LIMIT + 1), DType.f64)
    g.set_output("y", b.add(s, m))
    g.set_output("t", t)
    g.set_output("big", big)
    text = format_graph(g, spans=False)
    assert "constant() {value=f32[]{0.25}}" in text
    assert ("constant() {value=f32[3,4]{0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0, "
            "1.125, 1.25, 1.375}}") in text
    assert "constant() {value=bool[]{true}}" in text
    assert f"constant() {{value=f64[{ARRAY_LIMIT + 1}]{{...}}}}" in text


def test_gradient_nodes_are_marked_and_odd_names_quoted():
    g = Graph("x.vjp")
    x = Builder(g).input("x", TensorType(f32, (2,)))
    g.set_output("grad x", Builder(g, SPAN, backward=True).neg(x))
    text = format_graph(g)
    assert text.splitlines() == ['graph x.vjp(%x: f32[2]) -> ("grad x": f32[2]) {',
                                 "  %v1: f32[2] = neg(%x)  # m.dlg:3:5 backward",
                                 '  return "grad x" = %v1', "}"]


def test_symbolic_dim_expressions_are_parenthesised_in_attrs():
    g = Graph("dims")
    b = Builder(g)
    g.set_output("z", b.full(shape=(2 * N + 1, N), value=1.0))
    assert "shape=[(2*N + 1), N]" in format_graph(g, spans=False)


def test_printing_is_deterministic():
    assert format_graph(recurrent()) == format_graph(recurrent())


def test_format_around_marks_the_node_and_its_neighbours():
    g = recurrent()
    text = format_around(g, 5, context=1, spans=False)
    assert text.splitlines() == [
        "   %v4_0: f32[N,4], %v4_1: f32[T,N,1] = scan(%v3, %xs, %c) "
        "{axis=0, n_carry=1, n_seq=1, reverse=false}",
        ">> %v5: f32[] = constant() {value=f32[]{1.0}}",
        "   %v6: f32[] = add(%steps, %v5)",
    ]
