"""Small graphs built by hand with the Builder, shared by the printer, JSON and verifier tests."""

from __future__ import annotations

import numpy as np

from dlg.errors import Span
from dlg.ir import Builder, DType, Graph, Sym, TensorType

N, T = Sym.named("N"), Sym.named("T")
f32 = DType.f32
SPAN = Span("m.dlg", 3, 5, 3, 12, source="model M {\n\n    y = x + w\n}\n")


def tiny() -> Graph:
    """x + w, summed over axis 1: two arguments and two computed nodes."""
    g = Graph("tiny")
    b = Builder(g, span=SPAN)
    x = b.input("x", TensorType(f32, (N, 3)))
    w = b.param("w", TensorType(f32, (3,)))
    y = b.add(x, w, name="y")
    g.set_output("out", b.reduce_sum(y, axes=(1,)))
    return g


def step_body() -> Graph:
    """One RNN step: carry h, slice x_t, constant c -> (new h, per-step output)."""
    body = Graph("step")
    b = Builder(body)
    h = b.input("h", TensorType(f32, (N, 4)))
    x_t = b.input("x_t", TensorType(f32, (N, 4)))
    c = b.input("c", TensorType(f32, (4,)))
    h_new = b.tanh(b.add(h, b.mul(x_t, c)), name="h")
    body.set_output("h", h_new)
    body.set_output("y", b.reduce_sum(h_new, axes=(1,), keepdims=True))
    return body


def recurrent() -> Graph:
    """A scan over T steps with a buffer update: the nested-body and updates cases."""
    g = Graph("rnn")
    b = Builder(g)
    xs = b.input("xs", TensorType(f32, (T, N, 4)))
    c = b.param("c", TensorType(f32, (4,)))
    steps = b.param("steps", TensorType(f32, ()), trainable=False)
    h0 = b.full(shape=(N, 4), value=0.0)
    h, ys = b.scan(h0, xs, c, body=step_body(), n_carry=1, n_seq=1)
    g.set_output("h", h)
    g.set_output("ys", ys)
    g.updates.append(("steps", b.add(steps, b.constant(1.0, f32))))
    return g


def every_attr_kind() -> Graph:
    """One node for each attribute kind the registry's ops use, symbolic dims included."""
    g = recurrent()
    b = Builder(g)
    x = b.input("x", TensorType(f32, (2 * N + 1, 3)))
    table = b.constant(np.arange(6, dtype=np.float32).reshape(2, 3), f32)  # array
    flags = b.constant(np.array([True, False]), DType.bool)
    y = b.transpose(b.add(x, b.reduce_sum(table, axes=(0,), keepdims=True)), perm=(1, 0))  # ints
    y = b.pad(y, pads=((0, 1), (2, 0)), value=-1.5)  # pads, float
    y = b.gelu(y, approximate="tanh")  # str
    g.set_output("y", b.cast(y, dtype=DType.f64))  # dtype
    g.set_output("k", b.argmax(y, axis=None, keepdims=False))  # int? (None)
    g.set_output("k1", b.argmax(y, axis=1))  # int?
    g.set_output("f", b.logical_not(flags))
    g.set_output("z", b.full(shape=(N * T - 1, 2), value=0.5, dtype=DType.f16))  # dims
    return g
