"""Adjacent reduction axes merged into one loop (compiler/merge_axes.py): which pairs merge, and
compiled reductions over adjacent, non-adjacent, kept and all axes, with symbolic dims, against
the interpreter; the loops of elementwise nests over contiguous memory merged the same way."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.compiler import indexing as ix
from dlg.compiler.kernel_ir import I64, Load, Loop, Op, Reduce, Store, Var, walk
from dlg.compiler.merge_axes import merge_axes
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import ADD, LT, MUL, WHERE
from dlg.runtime.native import NativeGraph
from dlg.runtime.training import TrainStep

F32 = DType.f32
A, B, ROW = Var(I64, "r.a"), Var(I64, "r.b"), Var(I64, "i.0")


def _sum(body, extents=(4, 5)):
    return Reduce(F32, ADD, (("r.a", ix.const(extents[0])), ("r.b", ix.const(extents[1]))),
                  body, 0.0)


def _load(index, buffer="x"):
    return Load(F32, buffer, index)


@pytest.mark.parametrize("body, merged", [
    (_load(ix.add(ix.mul(ix.add(ix.mul(ROW, ix.const(4)), A), ix.const(5)), B)), True),  # x[i,a,b]
    (_load(ix.add(ix.mul(A, ix.const(5)), B)), True),
    (Op(F32, MUL, (_load(ix.add(ix.mul(A, ix.const(5)), B)),
                   _load(ix.add(ix.mul(A, ix.const(10)), ix.mul(B, ix.const(2))), "y"))), True),
    (_load(ix.add(ix.mul(B, ix.const(4)), A)), False),  # transposed: b is the outer stride
    (_load(ix.add(ix.mul(A, ix.const(6)), B)), False),  # a padded row: 6 != 5
    (Op(F32, MUL, (_load(ix.add(ix.mul(A, ix.const(5)), B)), _load(A, "bias"))), False),
    (_load(ix.add(ix.mul(A, ix.const(5)), ix.mod(B, ix.const(3)))), False),
    (_load(ix.add(ix.mul(A, Var(I64, "N")), B)), False),  # a symbolic stride
    (Op(F32, WHERE, (Op(DType.bool, LT, (B, ix.const(2))), _load(ix.add(ix.mul(A, ix.const(5)), B)),
                     _load(ix.ZERO))), False),  # b used outside an index
    (_load(_load(ix.add(ix.mul(A, ix.const(5)), B), "idx")), False),  # an index read from memory
])
def test_which_pairs_merge(body, merged):
    r = _sum(body)
    out = merge_axes(r)
    if not merged:
        assert out is r
        return
    assert isinstance(out, Reduce) and out.axes == (("r.b", ix.const(20)),)
    assert not any(isinstance(e, Var) and e.name == "r.a" for e in walk(out.body))
    # every load reads what the nest read: r = a*5 + b
    for a in range(4):
        for b in range(5):
            for before, after in zip(_loads(r.body), _loads(out.body)):
                env = {"r.a": a, "r.b": b, "i.0": 3}
                assert _value(before.index, env) == _value(after.index, {**env, "r.b": a * 5 + b})


def test_a_symbolic_outer_extent_merges_and_runs_of_three_become_one():
    index = ix.add(ix.mul(ix.add(ix.mul(Var(I64, "r.n"), ix.const(4)), A), ix.const(5)), B)
    r = Reduce(F32, ADD, (("r.n", Var(I64, "N")), ("r.a", ix.const(4)), ("r.b", ix.const(5))),
               _load(index), 0.0)
    out = merge_axes(r)
    assert isinstance(out, Reduce) and out.axes == (("r.b", ix.mul(Var(I64, "N"), ix.const(20))),)
    assert out.body == _load(Var(I64, "r.b"))


def _loads(e):
    return [x for x in walk(e) if isinstance(x, Load) and x.buffer != "idx"]


def _value(e, env):
    return ix._evaluate(e, env, 7)


# ---- compiled against the interpreter ------------------------------------------------------------
CASES = [
    ("sum(x, axis=(2, 3))", (3, 4, 5, 6)),
    ("sum(x, axis=(0, 2, 3), keepdims=true)", (3, 4, 5, 6)),  # the bias gradient's sum
    ("sum(x, axis=(1, 3))", (3, 4, 5, 6)),  # not adjacent
    ("sum(x, axis=(0, 1))", (7, 1, 13, 2)),
    ("sum(x)", (3, 4, 5, 6)),
    ("mean(x, axis=(-2, -1), keepdims=true)", (2, 3, 7, 11)),
    ("amax(x, axis=(1, 2))", (3, 4, 5, 6)),
    ("amin(x, axis=(2, 3), keepdims=true)", (2, 3, 1, 17)),
    ("prod(x, axis=(2, 3))", (2, 3, 2, 3)),
    ("argmax(x)", (3, 4, 5, 6)),
    ("sum(relu(x) * 2.0, axis=(1, 2))", (5, 3, 31, 1)),
    ("sum(x * b, axis=(1, 2))", (4, 3, 5, 2)),  # b indexed by one of the pair: not merged
]


@pytest.mark.parametrize("expr, shape", CASES)
def test_reductions_over_adjacent_axes_match_the_interpreter(expr, shape):
    rest = ", ".join(str(d) for d in shape[1:])
    m = dlg.loads(f"""
model R {{
    input x: f32[N, {rest}]
    param b: f32[{shape[1]}, 1, 1] = uniform(-1.0, 1.0)
    output y = {expr}
}}
""")
    native = NativeGraph(m.graph)
    for n in (1, shape[0]):
        x = np.random.default_rng(n).standard_normal((n, *shape[1:])).astype(np.float32)
        if "prod" in expr:
            x = 1.0 + 0.1 * x
        expected = m(x=x)
        got = native({"x": x}, m.params)["y"]
        assert got.shape == expected.shape and got.dtype == expected.dtype
        np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-5)


def test_the_bias_gradient_sum_is_one_loop():
    m = dlg.loads("""
model R {
    input x: f32[N, 4, 10, 10]
    output y = sum(x, axis=(0, 2, 3), keepdims=true)
}
""")
    native = NativeGraph(m.graph)
    (kernel,) = native.program.kernels
    (total,) = [e for e in _exprs(kernel.body) if isinstance(e, Reduce)]
    assert [ix.int_value(n) for _, n in total.axes] == [None, 100]
    x = np.random.default_rng(0).standard_normal((3, 4, 10, 10)).astype(np.float32)
    np.testing.assert_allclose(native({"x": x}, {})["y"], m(x=x), rtol=1e-6, atol=1e-6)


def test_a_weight_update_is_one_loop_a_broadcast_keeps_its_rows():
    """An SGD-with-momentum update of a [6, 4, 3, 3] weight (under the finite-loss check) runs
    as one loop of 216; adding a per-channel offset to [N, 4, 5, 5] keeps the channel loop
    apart while the batch and the 5 x 5 rows merge; both compute what the interpreter does."""
    source = """
model W {
    input x: f32[N, 4, 5, 5]
    input c: f32[4, 1, 1]
    layer conv = Conv2d(4, 6, 3, bias=false)
    output y = conv(x)
    output z = relu(x) + c
}
train W {
    loss = mean(y * y)
    optimizer = SGD(lr=0.01, momentum=0.9)
}
"""
    m, twin = dlg.loads(source), dlg.loads(source)
    twin.params.update({name: value.copy() for name, value in m.params.items()})
    step = TrainStep(m, compiled=True)
    nests = {k.name: [ix.int_value(lp.extent) for lp in _loops(k.body)]
             for k in step.native.program.kernels}
    assert [216] in [loops for name, loops in nests.items() if "sub_mul" in name], nests
    native = NativeGraph(m.graph)
    (offset,) = [k for k in native.program.kernels if "relu" in k.name]
    assert [ix.int_value(lp.extent) for lp in _loops(offset.body)][1:] == [4, 25]
    ref = TrainStep(twin, compiled=False)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5, 5)).astype(np.float32)
    c = rng.standard_normal((4, 1, 1)).astype(np.float32)
    np.testing.assert_allclose(native({"x": x, "c": c}, m.params)["z"],
                               m(x=x, c=c)[1], rtol=1e-6)
    for _ in range(3):
        batch = {"x": rng.standard_normal((3, 4, 5, 5)).astype(np.float32), "c": c}
        np.testing.assert_allclose(step(**batch)["loss"], ref(**batch)["loss"], rtol=1e-5)
    for name in m.params:
        np.testing.assert_allclose(m.params[name], twin.params[name], rtol=1e-5, atol=1e-6)


def _loops(stmts):
    while stmts and not isinstance(stmts[0], Loop) and hasattr(stmts[0], "body"):
        stmts = stmts[0].body
    loops = []
    while len(stmts) == 1 and isinstance(stmts[0], Loop):
        loops.append(stmts[0])
        stmts = stmts[0].body
    return loops


def _exprs(stmts):
    for s in stmts:
        if isinstance(s, Loop):
            yield from _exprs(s.body)
        elif isinstance(s, Store):
            yield from walk(s.value)
