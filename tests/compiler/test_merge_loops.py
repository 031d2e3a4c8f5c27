"""Neighbouring elementwise kernels over the same loops merge into one loop nest only when each
iteration reads what the same iteration wrote; merged or not, results match the interpreter."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.compiler.kernel_ir import I64, Kernel, Load, Loop, Store, Var
from dlg.compiler.lower import Program
from dlg.compiler.merge_loops import merge_loops
from dlg.ir.dtypes import DType

LSTM_CELL = """
model Cell {
    input gates: f32[N, 512]
    input c: f32[N, 128]
    i, f, g, o = split(gates, 4, axis=1)
    c2 = sigmoid(f) * c + sigmoid(i) * tanh(g)
    output h = sigmoid(o) * tanh(c2)
    output cn = c2
}"""
TRANSPOSED_READ = """
model T {
    input x: f32[N, N]
    y = exp(x)
    output a = y
    output b = transpose(y, 0, 1) + 1.0
}"""


def kernels(source: str) -> list[str]:
    return [k.name for k in dlg.compile(dlg.loads(source)).native.program.kernels]


@pytest.mark.parametrize("source,shapes,merged", [
    (LSTM_CELL, {"gates": ("N", 512), "c": ("N", 128)}, True),
    (TRANSPOSED_READ, {"x": ("N", "N")}, False)], ids=["lstm-cell", "transposed-read"])
@pytest.mark.parametrize("n", [1, 7, 64])
def test_merged_or_not_the_results_are_the_interpreters(source, shapes, merged, n):
    m = dlg.loads(source)
    rng = np.random.default_rng(n)
    feeds = {name: rng.standard_normal([n if d == "N" else d for d in shape]).astype(np.float32)
             for name, shape in shapes.items()}
    names = kernels(source)
    assert any("+" in name for name in names) == merged, names
    got, want = dlg.compile(m)(**feeds), m(**feeds)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def nest(name: str, store: Store, reads: tuple[str, ...]) -> Kernel:
    body = (Loop("i.0", Var(I64, "N"), (store,), parallel=True),)
    return Kernel(name, body, reads, (store.buffer,))


def at(i: str = "i.0") -> Var:
    return Var(I64, i)


def load(buffer: str, index=None) -> Load:
    return Load(DType.f32, buffer, index if index is not None else at())


def test_a_kernel_reading_what_the_next_one_writes_stays_apart():
    """b overwrites x, which a reads: in one loop, a's next iteration could read b's value."""
    a = nest("k0", Store("y", at(), load("x")), ("x",))
    b = nest("k1", Store("x", at(), load("y")), ("y",))
    p = merge_loops(Program("p", kernels=[a, b]))
    assert [k.name for k in p.kernels] == ["k0", "k1"]


def test_a_chain_merges_into_one_nest_with_every_store_in_order():
    a = nest("k0", Store("y", at(), load("x")), ("x",))
    b = nest("k1", Store("z", at(), load("y")), ("y",))
    c = nest("k2", Store("w", at(), load("z")), ("z",))
    (k,) = merge_loops(Program("p", kernels=[a, b, c])).kernels
    assert k.name == "k0+k1+k2" and k.writes == ("y", "z", "w") and k.reads == ("x",)
    assert [s.buffer for s in k.body[0].body] == ["y", "z", "w"]
