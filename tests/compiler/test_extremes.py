"""Monotone functions taken out of max/min reductions (compiler/extremes.py): which terms move,
and a compiled pool over relu(conv + bias) against the interpreter, NaNs included."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.compiler import indexing as ix
from dlg.compiler.extremes import extremes_first
from dlg.compiler.kernel_ir import (
    I64,
    MAX,
    MIN,
    SELECT,
    Const,
    Load,
    Op,
    Reduce,
    Var,
    format_stmt,
)
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import ADD, EXP, LT, MUL, RELU, SUB
from dlg.runtime.native import NativeGraph

F32 = DType.f32
R, ROW = Var(I64, "r.0"), Var(I64, "i.0")
TERM = Load(F32, "x", ix.add(ix.mul(ROW, ix.const(4)), R))
BIAS = Load(F32, "b", ROW)


def _max(body, combine=MAX, extent=4):
    return Reduce(F32, combine, (("r.0", ix.const(extent)),), body, float("-inf"))


@pytest.mark.parametrize("combine", [MAX, MIN])
def test_relu_of_a_biased_term_leaves_the_reduction(combine):
    got = extremes_first(_max(Op(F32, RELU, (Op(F32, ADD, (BIAS, TERM)),)), combine))
    assert got == Op(F32, RELU, (Op(F32, ADD, (BIAS, _max(TERM, combine))),))


@pytest.mark.parametrize("body", [
    Op(F32, SUB, (BIAS, TERM)),                            # c - x decreases in x
    Op(F32, MUL, (TERM, BIAS)),                            # a scale of unknown sign
    Op(F32, ADD, (TERM, TERM)),                            # both arguments vary
    Op(F32, SELECT, (Op(DType.bool, LT, (R, ix.const(3))), TERM, Const(F32, float("-inf")))),
])
def test_terms_that_are_not_monotone_in_one_varying_argument_stay(body):
    assert extremes_first(_max(body)) == _max(body)


def test_a_reduction_that_may_be_empty_keeps_its_terms():
    body = Op(F32, EXP, (TERM,))
    empty = Reduce(F32, MAX, (("r.0", Var(I64, "N")),), body, float("-inf"))
    assert extremes_first(empty) == empty


def test_a_pool_after_a_biased_relu_computes_what_the_interpreter_does():
    """CNN's conv (a GEMM over im2col) then bias, ReLU and a 2x2 pool in one kernel, with the
    ReLU and bias outside the window's max; a NaN in the input still reaches the output."""
    m = dlg.loads("""
model P {
    input x: f32[N, 3, 10, 10]
    layer conv = Conv2d(3, 64, 3, padding=1)
    output y = max_pool2d(relu(conv(x)), 2)
}
""")
    native = NativeGraph(m.graph)
    pools = ["\n".join(format_stmt(s, 0)) for k in native.program.kernels
             if "max_pool" in k.name for s in k.body]
    assert pools and "relu(add(max[" in pools[0]  # the conv's GEMM, then one pool kernel
    x = np.random.default_rng(0).standard_normal((5, 3, 10, 10)).astype(np.float32)
    x[1, :, 2, 3] = np.nan
    got = native({"x": x}, m.params)["y"]
    np.testing.assert_allclose(got, m(x=x), rtol=1e-5, atol=1e-6)
    assert np.isnan(got[1]).any()
