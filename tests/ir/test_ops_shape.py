"""Movement ops against hand-written loop oracles and PyTorch; symbolic shape rules; errors."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from dlg.errors import DlgAttributeError, DlgShapeError, DlgTypeError, DlgValueError
from dlg.ir.builder import Builder
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph
from dlg.ir.ops import REGISTRY
from dlg.ir.shapes import Sym
from dlg.ir.types import TensorType
from dlg.runtime.interp import Interpreter

RNG = np.random.default_rng(0)
N, T, M = Sym.named("N"), Sym.named("T"), Sym.named("M")


def run_op(op: str, *arrays: np.ndarray, **attrs) -> np.ndarray | tuple[np.ndarray, ...]:
    """One-op graph through the interpreter; also checks infer's types against the result."""
    g = Graph(op)
    b = Builder(g)
    ins = [b.input(f"x{i}", TensorType(DType.of(a), a.shape)) for i, a in enumerate(arrays)]
    outs = getattr(b, op)(*ins, **attrs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    for i, v in enumerate(outs):
        g.set_output(f"y{i}", v)
    got, _ = Interpreter().run(g, {f"x{i}": a for i, a in enumerate(arrays)}, {})
    for i, v in enumerate(outs):
        t = g.type_of(v)
        assert got[f"y{i}"].shape == t.shape and got[f"y{i}"].dtype == t.dtype.np
    results = tuple(got[f"y{i}"] for i in range(len(outs)))
    return results if op == "split" else results[0]


def infer(op: str, *types: TensorType, **attrs) -> TensorType | tuple[TensorType, ...]:
    opdef = REGISTRY[op]
    return opdef.infer(*types, **opdef.check_attrs(attrs))


def rand(*shape: int, dtype=np.float32) -> np.ndarray:
    return (RNG.standard_normal(shape) * 4).astype(dtype)


def f32(*shape) -> TensorType:
    return TensorType(DType.f32, tuple(shape))


# ---- reshape ----------------------------------------------------------------------------------
@pytest.mark.parametrize("src,dst", [((2, 3, 4), (4, 6)), ((2, 3), (6,)), ((), (1, 1)),
                                     ((0, 3), (3, 0)), ((4,), (2, 1, 2))])
def test_reshape_keeps_row_major_order(src, dst):
    x = rand(*src)
    y = run_op("reshape", x, shape=dst)
    assert y.shape == dst
    assert list(y.flat) == list(x.flat)


@pytest.mark.parametrize("src,dst,ok", [
    ((N, 2, 3), (N, 6), True), ((N, 2, 3), (2, N, 3), True), ((N, 2, 3), (N * 2, 3), True),
    ((N, T), (N * T,), True), ((N, 2, 3), (N, 5), False), ((N, 2), (M, 2), False),
])
def test_reshape_symbolic_numel(src, dst, ok):
    if ok:
        assert infer("reshape", f32(*src), shape=dst).shape == dst
    else:
        with pytest.raises(DlgShapeError, match="reshape: cannot reshape"):
            infer("reshape", f32(*src), shape=dst)


def test_reshape_error_message():
    message = "reshape: cannot reshape f32[N,3,4] to [N,5]"
    with pytest.raises(DlgShapeError, match=re.escape(message)):
        infer("reshape", f32(N, 3, 4), shape=(N, 5))
    with pytest.raises(DlgShapeError, match="negative dim"):
        infer("reshape", f32(2, 3), shape=(-2, -3))


# ---- transpose --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,perm", [((2, 3), (1, 0)), ((2, 3, 4), (2, 0, 1)),
                                        ((2, 3, 4), (-1, 0, -2)), ((), ()), ((0, 2), (1, 0))])
def test_transpose_against_loops(shape, perm):
    x = rand(*shape)
    y = run_op("transpose", x, perm=perm)
    axes = [p % x.ndim for p in perm]
    assert y.shape == tuple(x.shape[a] for a in axes)
    for out_idx in itertools.product(*map(range, y.shape)):
        src = [0] * x.ndim
        for k, a in enumerate(axes):
            src[a] = out_idx[k]
        assert y[out_idx] == x[tuple(src)]


@pytest.mark.parametrize("perm", [(0,), (0, 0), (0, 2), (0, 1, 2), (1, -1)])
def test_transpose_bad_perm(perm):
    with pytest.raises(DlgShapeError, match="transpose: perm .* is not a permutation"):
        infer("transpose", f32(2, 3), perm=perm)


def test_transpose_symbolic():
    assert infer("transpose", f32(N, T, 4), perm=(1, 0, 2)).shape == (T, N, 4)


# ---- broadcast_to -----------------------------------------------------------------------------
@pytest.mark.parametrize("src,dst", [((3,), (2, 3)), ((2, 1), (2, 4)), ((), (2, 2)),
                                     ((1, 0), (3, 0)), ((1, 3, 1), (2, 1, 3, 2))])
def test_broadcast_to_against_loops(src, dst):
    x = rand(*src)
    y = run_op("broadcast_to", x, shape=dst)
    lead = len(dst) - x.ndim
    for idx in itertools.product(*map(range, dst)):
        src_idx = tuple(0 if x.shape[k] == 1 else idx[lead + k] for k in range(x.ndim))
        assert y[idx] == x[src_idx]


@pytest.mark.parametrize("src,dst", [((3,), (4,)), ((2, 3), (3,)), ((2, 1), (3, 1)),
                                     ((N, 3), (M, 3)), ((N,), (1,))])
def test_broadcast_to_errors(src, dst):
    with pytest.raises(DlgShapeError, match="broadcast_to: cannot broadcast"):
        infer("broadcast_to", f32(*src), shape=dst)


def test_broadcast_to_symbolic():
    assert infer("broadcast_to", f32(1, 3), shape=(N, 3)).shape == (N, 3)
    assert infer("broadcast_to", f32(N, 1), shape=(2, N, T)).shape == (2, N, T)


# ---- slice ------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,axes,starts,stops,steps", [
    ((5,), (0,), (1,), (4,), (1,)),
    ((6, 4), (0, 1), (0, 1), (6, 3), (2, 1)),
    ((7, 3), (-2,), (1,), (7,), (3,)),
    ((4, 5), (1, 0), (4, 1), (2, 3), (1, 1)),  # start > stop: empty
    ((0, 3), (0,), (0,), (0,), (1,)),
    ((3, 4, 5), (2, 0), (0, 2), (5, 3), (4, 1)),
    ((5,), (0,), (4,), (-1,), (-1,)),  # negative steps: bounds as slice.indices gives them
    ((7, 3), (0, 1), (5, 2), (0, -1), (-2, -3)),
    ((4,), (0,), (1,), (3,), (-1,)),  # start < stop: empty
    ((0,), (0,), (-1,), (-1,), (-1,)),
])
def test_slice_against_ranges(shape, axes, starts, stops, steps):
    x = rand(*shape)
    y = run_op("slice", x, axes=axes, starts=starts, stops=stops, steps=steps)
    picks = [list(range(d)) for d in shape]
    for a, s, e, st in zip(axes, starts, stops, steps):
        picks[a % len(shape)] = list(range(s, e, st))
    assert y.shape == tuple(len(p) for p in picks)
    for idx in itertools.product(*map(range, y.shape)):
        assert y[idx] == x[tuple(p[i] for p, i in zip(picks, idx))]


def test_slice_symbolic_infer_and_run():
    assert infer("slice", f32(N, T), axes=(1,), starts=(0,), stops=(T - 1,), steps=(1,)).shape \
        == (N, T - 1)
    assert infer("slice", f32(N, T), axes=(1,), starts=(T - 1,), stops=(T,), steps=(1,)).shape \
        == (N, 1)
    assert infer("slice", f32(N, T), axes=(1,), starts=(0,), stops=(2,), steps=(2,)).shape == (N, 1)
    assert infer("slice", f32(N, T), axes=(1,), starts=(T - 1,), stops=(-1,), steps=(-1,)).shape \
        == (N, T)
    g = Graph("s")
    b = Builder(g)
    x = b.input("x", f32(N, T))
    g.set_output("y", b.slice(x, axes=(1,), starts=(1,), stops=(T,), steps=(1,)))
    xs = rand(2, 5)
    np.testing.assert_array_equal(Interpreter().run(g, {"x": xs}, {})[0]["y"], xs[:, 1:])


@pytest.mark.parametrize("attrs,phrase", [
    ({"axes": (0,), "starts": (0,), "stops": (2,), "steps": (0,)}, "step must not be 0"),
    ({"axes": (0,), "starts": (4,), "stops": (1,), "steps": (-1,)}, r"outside -1..3"),
    ({"axes": (1,), "starts": (T - 1,), "stops": (-1,), "steps": (-2,)}, "needs concrete bounds"),
    ({"axes": (1,), "starts": (0,), "stops": (T,), "steps": (2,)}, "needs concrete bounds"),
    ({"axes": (0,), "starts": (0,), "stops": (5,), "steps": (1,)}, "outside 0..4"),
    ({"axes": (0,), "starts": (-1,), "stops": (2,), "steps": (1,)}, "outside 0..4"),
    ({"axes": (0, 1), "starts": (0,), "stops": (2,), "steps": (1,)}, "differ in length"),
    ({"axes": (0, -2), "starts": (0, 0), "stops": (1, 1), "steps": (1, 1)}, "repeated axis"),
    ({"axes": (2,), "starts": (0,), "stops": (1,), "steps": (1,)}, "out of range"),
])
def test_slice_errors(attrs, phrase):
    with pytest.raises(DlgShapeError, match=phrase):
        infer("slice", f32(4, T), **attrs)


def test_slice_ref_rejects_bounds_that_went_negative():
    g = Graph("s")
    b = Builder(g)
    x = b.input("x", f32(T))
    g.set_output("y", b.slice(x, axes=(0,), starts=(0,), stops=(T - 1,), steps=(1,)))
    with pytest.raises(DlgValueError, match="outside 0..0"):
        Interpreter().run(g, {"x": rand(0)}, {})


# ---- concat / split / stack -------------------------------------------------------------------
@pytest.mark.parametrize("shapes,axis", [([(2, 3), (4, 3)], 0), ([(2, 1), (2, 3), (2, 0)], 1),
                                         ([(2, 3, 4)], -1), ([(1, 2), (2, 2)], -2)])
def test_concat_against_slab_copy(shapes, axis):
    xs = [rand(*s) for s in shapes]
    y = run_op("concat", *xs, axis=axis)
    a = axis % len(shapes[0])
    off = 0
    for x in xs:
        for idx in itertools.product(*map(range, x.shape)):
            at = list(idx)
            at[a] += off
            assert y[tuple(at)] == x[idx]
        off += x.shape[a]
    assert y.shape[a] == off


def test_concat_symbolic_and_errors():
    assert infer("concat", f32(N, 3), f32(N, 5), axis=1).shape == (N, 8)
    assert infer("concat", f32(N, 3), f32(M, 3), f32(2, 3), axis=0).shape == (N + M + 2, 3)
    with pytest.raises(DlgShapeError, match=re.escape("f32[2,3], f32[2,4], f32[3,3]")):
        infer("concat", f32(2, 3), f32(2, 4), f32(3, 3), axis=1)
    with pytest.raises(DlgShapeError, match="shapes differ"):
        infer("concat", f32(2, 3), f32(2, 3, 1), axis=0)
    with pytest.raises(DlgShapeError, match="shapes differ"):
        infer("concat", f32(N, 3), f32(M, 3), axis=1)
    with pytest.raises(DlgTypeError, match="dtypes differ") as e:
        infer("concat", f32(2), TensorType(DType.i32, (2,)), axis=0)
    assert e.type is DlgTypeError


@pytest.mark.parametrize("shape,axis,sizes", [((5, 2), 0, (2, 3)), ((2, 6), -1, (1, 0, 5)),
                                              ((3,), 0, (3,)), ((0, 2), 0, (0, 0))])
def test_split_against_slices(shape, axis, sizes):
    x = rand(*shape)
    parts = run_op("split", x, axis=axis, sizes=sizes)
    assert len(parts) == len(sizes)
    a = axis % x.ndim
    off = 0
    for part, size in zip(parts, sizes):
        for idx in itertools.product(*map(range, part.shape)):
            at = list(idx)
            at[a] += off
            assert part[idx] == x[tuple(at)]
        off += size


def test_split_errors():
    with pytest.raises(DlgShapeError, match=re.escape("split: sizes [2, 2] do not add up")):
        infer("split", f32(5, 2), axis=0, sizes=(2, 2))
    with pytest.raises(DlgShapeError, match="symbolic"):
        infer("split", f32(N, 2), axis=0, sizes=(1, 1))
    with pytest.raises(DlgShapeError, match="do not add up"):
        infer("split", f32(4), axis=0, sizes=(5, -1))
    assert [t.shape for t in infer("split", f32(N, 6), axis=1, sizes=(2, 4))] == [(N, 2), (N, 4)]


@pytest.mark.parametrize("shape,n,axis", [((2, 3), 3, 0), ((2, 3), 2, 1), ((2, 3), 2, -1),
                                          ((), 4, 0), ((0, 2), 2, 1)])
def test_stack_against_loops(shape, n, axis):
    xs = [rand(*shape) for _ in range(n)]
    y = run_op("stack", *xs, axis=axis)
    a = axis % (len(shape) + 1)
    for idx in itertools.product(*map(range, y.shape)):
        assert y[idx] == xs[idx[a]][idx[:a] + idx[a + 1:]]


def test_stack_symbolic_and_errors():
    assert infer("stack", f32(N, 3), f32(N, 3), axis=-1).shape == (N, 3, 2)
    with pytest.raises(DlgShapeError, match=re.escape("stack: shapes differ: f32[2,3], f32[3,2]")):
        infer("stack", f32(2, 3), f32(3, 2))
    with pytest.raises(DlgShapeError, match="out of range"):
        infer("stack", f32(2), f32(2), axis=2)


# ---- pad --------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,pads,value,dtype", [
    ((2, 3), ((1, 0), (2, 1)), 0.0, np.float32), ((3,), ((0, 2),), -1.5, np.float64),
    ((2, 2), ((1, 1), (0, 0)), 7.0, np.int64), ((0, 2), ((1, 1), (1, 0)), 2.0, np.float32),
    ((), (), 1.0, np.float32),
])
def test_pad_against_fill(shape, pads, value, dtype):
    x = rand(*shape, dtype=dtype)
    y = run_op("pad", x, pads=pads, value=value)
    assert y.dtype == dtype
    for idx in itertools.product(*map(range, y.shape)):
        inner = tuple(i - lo for i, (lo, _) in zip(idx, pads))
        inside = all(0 <= i < d for i, d in zip(inner, shape))
        assert y[idx] == (x[inner] if inside else dtype(value))


def test_pad_symbolic_and_errors():
    assert infer("pad", f32(N, 3), pads=((1, 1), (0, 2))).shape == (N + 2, 5)
    with pytest.raises(DlgShapeError, match="non-negative"):
        infer("pad", f32(2, 3), pads=((0, 0), (-1, 0)))
    with pytest.raises(DlgShapeError, match="one non-negative"):
        infer("pad", f32(2, 3), pads=((1, 1),))


# ---- take -------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,idx,axis,dtype", [
    ((5, 3), [4, 0, 0, 2], 0, np.int64), ((2, 4), [[1, 3], [0, 0], [2, 2]], 1, np.int32),
    ((3, 2, 2), [1], -2, np.int64), ((4,), np.zeros((0,), int), 0, np.int64),
    ((3,), 2, 0, np.int64),  # a scalar index drops the axis
])
def test_take_against_loops(shape, idx, axis, dtype):
    x = rand(*shape)
    indices = np.asarray(idx, dtype=dtype)
    y = run_op("take", x, indices, axis=axis)
    a = axis % x.ndim
    assert y.shape == x.shape[:a] + indices.shape + x.shape[a + 1:]
    for out in itertools.product(*map(range, y.shape)):
        pos = out[a:a + indices.ndim]
        src = out[:a] + (int(indices[pos]),) + out[a + indices.ndim:]
        assert y[out] == x[src]


@pytest.mark.parametrize("bad", [3, -1])
def test_take_out_of_range_names_index(bad):
    with pytest.raises(DlgValueError, match=rf"take: index {bad} is out of range 0..2"):
        run_op("take", rand(3, 2), np.array([0, bad]), axis=0)


def test_take_infer_errors_and_symbolic():
    assert infer("take", f32(M, 4), TensorType(DType.i64, (N, T)), axis=0).shape == (N, T, 4)
    with pytest.raises(DlgTypeError, match="take: indices must be i32/i64"):
        infer("take", f32(3), f32(2), axis=0)
    with pytest.raises(DlgShapeError, match="out of range"):
        infer("take", f32(3), TensorType(DType.i64, (2,)), axis=1)


# ---- squeeze / unsqueeze / flatten / index (composites, through the interpreter) --------------
@pytest.mark.parametrize("shape,axes,expected", [
    ((1, 3, 1), None, (3,)), ((1, 3, 1), (0,), (3, 1)), ((1, 3, 1), (-1, 0), (3,)),
    ((1, 1), None, ()), ((0, 1), (1,), (0,)),
])
def test_squeeze(shape, axes, expected):
    x = rand(*shape)
    y = run_op("squeeze", x, axes=axes)
    assert y.shape == expected
    assert list(y.flat) == list(x.flat)


def test_squeeze_symbolic_and_errors():
    assert infer("squeeze", f32(N, 1, T)).shape == (N, T)
    with pytest.raises(DlgShapeError, match="squeeze: axis 1 of f32\\[2,3\\] has size 3, not 1"):
        infer("squeeze", f32(2, 3), axes=(1,))
    with pytest.raises(DlgShapeError, match="not 1"):
        infer("squeeze", f32(N, 1), axes=(0,))


@pytest.mark.parametrize("shape,axes,expected", [
    ((2, 3), (0,), (1, 2, 3)), ((2, 3), (-1,), (2, 3, 1)), ((2, 3), (0, -1), (1, 2, 3, 1)),
    ((), (0, 1), (1, 1)), ((2, 0), (1,), (2, 1, 0)),
])
def test_unsqueeze(shape, axes, expected):
    x = rand(*shape)
    y = run_op("unsqueeze", x, axes=axes)
    assert y.shape == expected
    assert list(y.flat) == list(x.flat)


def test_unsqueeze_errors():
    with pytest.raises(DlgShapeError, match="repeated axis"):
        infer("unsqueeze", f32(2), axes=(0, -3))
    with pytest.raises(DlgShapeError, match="out of range"):
        infer("unsqueeze", f32(2), axes=(2,))
    with pytest.raises(DlgAttributeError, match="must be ints"):
        infer("unsqueeze", f32(2), axes=None)


@pytest.mark.parametrize("shape,start,end,expected", [
    ((2, 3, 4), 1, -1, (2, 12)), ((2, 3, 4), 0, 1, (6, 4)), ((2, 3, 4), 0, -1, (24,)),
    ((2, 3, 4), 2, 2, (2, 3, 4)), ((2, 0, 4), 1, -1, (2, 0)), ((), 0, -1, (1,)),
])
def test_flatten(shape, start, end, expected):
    x = rand(*shape)
    y = run_op("flatten", x, start_axis=start, end_axis=end)
    assert y.shape == expected
    assert list(y.flat) == list(x.flat)


def test_flatten_symbolic_and_errors():
    assert infer("flatten", f32(N, 1, 28, 28)).shape == (N, 784)
    assert infer("flatten", f32(N, T, 3), start_axis=0, end_axis=1).shape == (N * T, 3)
    with pytest.raises(DlgShapeError, match="comes after"):
        infer("flatten", f32(2, 3, 4), start_axis=2, end_axis=1)


@pytest.mark.parametrize("shape,axis,index", [((3, 4, 2), 1, 2), ((3, 4), -1, 0), ((5,), 0, 4)])
def test_index_picks_and_drops(shape, axis, index):
    x = rand(*shape)
    y = run_op("index", x, axis=axis, index=index)
    a = axis % x.ndim
    assert y.shape == shape[:a] + shape[a + 1:]
    for idx in itertools.product(*map(range, y.shape)):
        assert y[idx] == x[idx[:a] + (index,) + idx[a:]]


def test_index_symbolic_position():
    """index's rule and decomposition take a symbolic position (the last step: T - 1)."""
    op = REGISTRY["index"]
    assert op.infer(f32(N, T, 3), axis=1, index=T - 1).shape == (N, 3)
    g = Graph("last")
    b = Builder(g)
    x = b.input("x", f32(N, T, 3))
    g.set_output("y", op.decompose(b, x, axis=1, index=T - 1))
    xs = rand(2, 4, 3)
    np.testing.assert_array_equal(Interpreter().run(g, {"x": xs}, {})[0]["y"], xs[:, 3])
    with pytest.raises(DlgShapeError, match="position 4 is out of range"):
        infer("index", f32(N, 4), axis=1, index=4)


@pytest.mark.parametrize("op,extra,attrs", [
    ("slice", (), {"axes": (0,), "starts": (0,), "stops": (0,), "steps": (1,)}),
    ("concat", (f32(),), {"axis": 0}), ("split", (), {"axis": 0, "sizes": (1,)}),
    ("take", (TensorType(DType.i64, (1,)),), {"axis": 0}), ("index", (), {"axis": 0, "index": 0}),
])
def test_axis_ops_reject_scalars(op, extra, attrs):
    with pytest.raises(DlgShapeError, match=f"{op}: axis 0 is out of range for the scalar f32"):
        infer(op, f32(), *extra, **attrs)


# ---- infer agrees with ref on random cases ------------------------------------------------------
def _random_case(op: str, rng: np.random.Generator) -> tuple[list[np.ndarray], dict]:
    shape = tuple(int(d) for d in rng.integers(0, 4, size=rng.integers(1, 4)))
    rank = len(shape)
    x = rng.standard_normal(shape).astype(np.float32)
    axis = int(rng.integers(-rank, rank))
    if op == "reshape":
        return [x], {"shape": tuple(reversed(shape))}
    if op == "transpose":
        return [x], {"perm": tuple(int(p) for p in rng.permutation(rank))}
    if op == "broadcast_to":
        dims = tuple(1 if rng.random() < 0.3 else d for d in shape)
        return [rng.standard_normal(dims).astype(np.float32)], {"shape": (2,) + shape}
    if op == "slice":
        a = axis % rank
        step = int(rng.choice([-3, -2, -1, 1, 2, 3]))
        start, stop, _ = slice(*(int(v) for v in rng.integers(-4, 5, size=2)), step).indices(
            shape[a])
        return [x], {"axes": (axis,), "starts": (start,), "stops": (stop,), "steps": (step,)}
    if op == "concat":
        other = list(shape)
        other[axis] = int(rng.integers(0, 3))
        return [x, rng.standard_normal(other).astype(np.float32)], {"axis": axis}
    if op == "split":
        cut = int(rng.integers(0, shape[axis] + 1))
        return [x], {"axis": axis, "sizes": (cut, shape[axis] - cut)}
    if op == "pad":
        return [x], {"pads": tuple((int(a), int(b)) for a, b in rng.integers(0, 3, (rank, 2))),
                     "value": 1.0}
    if op == "take":
        a = axis % rank
        high = max(shape[a], 1)
        idx_shape = tuple(int(d) for d in rng.integers(0, 3, size=rng.integers(0, 3)))
        if shape[a] == 0:
            idx_shape = (0,)
        return [x, rng.integers(0, high, idx_shape)], {"axis": axis}
    raise AssertionError(op)


@pytest.mark.parametrize("op", ["reshape", "transpose", "broadcast_to", "slice", "concat", "split",
                                "pad", "take"])
def test_infer_matches_ref_on_random_cases(op):
    rng = np.random.default_rng(sum(op.encode()))  # stable across runs
    opdef = REGISTRY[op]
    for _ in range(25):
        arrays, attrs = _random_case(op, rng)
        types = infer(op, *(TensorType(DType.of(a), a.shape) for a in arrays), **attrs)
        outs = opdef.ref(*arrays, **opdef.check_attrs(attrs))
        types = types if isinstance(types, tuple) else (types,)
        outs = outs if isinstance(outs, tuple) else (outs,)
        assert [(o.shape, o.dtype) for o in outs] == [(t.shape, t.dtype.np) for t in types]


# ---- a graph mixing these ops, with a symbolic batch -------------------------------------------
def test_interpreter_runs_mixed_movement_graph():
    g = Graph("mix")
    b = Builder(g)
    x = b.input("x", f32(N, 6))
    ids = b.input("ids", TensorType(DType.i64, (3,)))
    h = b.transpose(b.reshape(x, shape=(N, 2, 3)), perm=(0, 2, 1))        # [N,3,2]
    h = b.pad(h, pads=((0, 0), (1, 0), (0, 1)), value=-1.0)              # [N,4,3]
    h = b.slice(h, axes=(1,), starts=(1,), stops=(4,), steps=(1,))       # [N,3,3]
    first, rest = b.split(h, axis=2, sizes=(1, 2))                       # [N,3,1], [N,3,2]
    h = b.concat(rest, b.broadcast_to(first, shape=(N, 3, 2)), axis=2)   # [N,3,4]
    h = b.take(h, ids, axis=1)                                           # [N,3,4]
    h = b.stack(b.flatten(h), b.flatten(h), axis=1)                      # [N,2,12]
    y = b.index(b.unsqueeze(h, axes=(-1,)), axis=1, index=1)             # [N,12,1]
    g.set_output("y", b.squeeze(y))
    assert g.type_of(g.outputs[0][1]) == f32(N, 12)
    for n in (1, 3):
        xs = rand(n, 6)
        idx = np.array([2, 0, 2])
        ref = np.pad(xs.reshape(n, 2, 3).transpose(0, 2, 1), ((0, 0), (1, 0), (0, 1)),
                     constant_values=-1.0)[:, 1:4]
        ref = np.concatenate([ref[:, :, 1:], np.repeat(ref[:, :, :1], 2, axis=2)], axis=2)
        ref = ref[:, idx].reshape(n, 12)
        out = Interpreter().run(g, {"x": xs, "ids": idx}, {})[0]["y"]
        np.testing.assert_array_equal(out, ref)


# ---- PyTorch parity -----------------------------------------------------------------------------
def test_torch_parity_movement():
    torch = pytest.importorskip("torch")
    x = rand(4, 3, 5)
    t = torch.from_numpy(x)
    idx = np.array([3, 0, 0, 2])
    np.testing.assert_array_equal(run_op("take", x, idx, axis=0),
                                  torch.index_select(t, 0, torch.from_numpy(idx)).numpy())
    y = rand(4, 2, 5)
    np.testing.assert_array_equal(run_op("concat", x, y, axis=1),
                                  torch.cat([t, torch.from_numpy(y)], dim=1).numpy())
    z = rand(4, 3, 5)
    np.testing.assert_array_equal(run_op("stack", x, z, axis=-1),
                                  torch.stack([t, torch.from_numpy(z)], dim=-1).numpy())
    for ours, theirs in zip(run_op("split", x, axis=2, sizes=(2, 3)), torch.split(t, [2, 3], 2)):
        np.testing.assert_array_equal(ours, theirs.numpy())
    # torch's pad lists (lo, hi) pairs from the last axis backwards
    np.testing.assert_array_equal(
        run_op("pad", x, pads=((0, 0), (1, 2), (3, 0)), value=0.5),
        torch.nn.functional.pad(t, (3, 0, 1, 2), mode="constant", value=0.5).numpy())
    np.testing.assert_array_equal(run_op("flatten", x, start_axis=1),
                                  torch.flatten(t, start_dim=1).numpy())
    np.testing.assert_array_equal(run_op("transpose", x, perm=(2, 0, 1)),
                                  t.permute(2, 0, 1).numpy())
