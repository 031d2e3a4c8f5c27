"""matmul against a hand-written loop oracle (np.matmul's rules), symbolic shapes, PyTorch."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.ir.builder import Builder
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph
from dlg.ir.ops import REGISTRY
from dlg.ir.shapes import Sym
from dlg.ir.types import TensorType
from dlg.runtime.interp import Interpreter

RNG = np.random.default_rng(0)
N, T, M = Sym.named("N"), Sym.named("T"), Sym.named("M")
MATMUL = REGISTRY["matmul"]


def run_matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    g = Graph("mm")
    b = Builder(g)
    v = b.matmul(b.input("x", TensorType(DType.of(x), x.shape)),
                 b.input("y", TensorType(DType.of(y), y.shape)))
    g.set_output("z", v)
    out = Interpreter().run(g, {"x": x, "y": y}, {})[0]["z"]
    t = g.type_of(v)
    assert out.shape == t.shape and out.dtype == t.dtype.np
    return out


def loop_matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """np.matmul's rules written out: promote vectors, broadcast batch dims, triple loop."""
    x2 = x[None, :] if x.ndim == 1 else x
    y2 = y[:, None] if y.ndim == 1 else y
    bx, by = x2.shape[:-2], y2.shape[:-2]
    rank = max(len(bx), len(by))
    bx, by = (1,) * (rank - len(bx)) + bx, (1,) * (rank - len(by)) + by
    batch = tuple(max(a, b) if 0 not in (a, b) else 0 for a, b in zip(bx, by))
    (m, k), n = x2.shape[-2:], y2.shape[-1]
    x2, y2 = x2.reshape(bx + (m, k)), y2.reshape(by + (k, n))
    out = np.zeros(batch + (m, n), dtype=np.float64)
    for idx in itertools.product(*map(range, batch)):
        xi = tuple(i if d != 1 else 0 for i, d in zip(idx, bx))
        yi = tuple(i if d != 1 else 0 for i, d in zip(idx, by))
        for i, j in itertools.product(range(m), range(n)):
            out[idx + (i, j)] = sum(float(x2[xi + (i, p)]) * float(y2[yi + (p, j)])
                                    for p in range(k))
    if x.ndim == 1:
        out = out[..., 0, :]
    if y.ndim == 1:
        out = out[..., 0]
    return out


SHAPES = [((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
          ((2, 3), (2, 3, 4)), ((2, 1, 2, 3), (4, 3, 2)), ((3,), (2, 3, 4)), ((2, 2, 3), (3,)),
          ((0, 3), (3, 2)), ((2, 0), (0, 3)), ((0, 2, 3), (1, 3, 2))]


@pytest.mark.parametrize("xs,ys", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_matmul_against_loops(xs, ys, dtype):
    x = (RNG.standard_normal(xs) * 3).astype(dtype)
    y = (RNG.standard_normal(ys) * 3).astype(dtype)
    got = run_matmul(x, y)
    want = loop_matmul(x, y)
    assert got.dtype == dtype
    if np.issubdtype(dtype, np.integer):
        np.testing.assert_array_equal(got, want.astype(dtype))
    else:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("xs,ys,out", [
    ((N, 784), (784, 128), (N, 128)), ((N, T, 4), (4, 5), (N, T, 5)),
    ((N, 3, 4), (N, 4, 5), (N, 3, 5)), ((N, 1, 3, 4), (M, 4, 2), (N, M, 3, 2)),
    ((T,), (N, T, 2), (N, 2)), ((N, T), (T,), (N,)), ((4, N), (N, 2), (4, 2)),
])
def test_matmul_symbolic_infer(xs, ys, out):
    f32 = DType.f32
    assert MATMUL.infer(TensorType(f32, xs), TensorType(f32, ys)) == TensorType(f32, out)


@pytest.mark.parametrize("xs,ys,error,phrase", [
    ((N, 784), (100, 128), DlgShapeError, "matmul: inner dims differ: f32[N,784] @ f32[100,128]"),
    ((3,), (4,), DlgShapeError, "matmul: inner dims differ: f32[3] @ f32[4]"),
    ((N, T), (M, 2), DlgShapeError, "inner dims differ"),
    ((2, 3, 4), (5, 4, 6), DlgShapeError, "matmul: batch dims do not broadcast: f32[2,3,4] @"),
    ((N, 3, 4), (M, 4, 6), DlgShapeError, "batch dims do not broadcast"),
    ((), (3,), DlgShapeError, "rank >= 1"),
])
def test_matmul_shape_errors(xs, ys, error, phrase):
    f32 = DType.f32
    with pytest.raises(error, match=re.escape(phrase)):
        MATMUL.infer(TensorType(f32, xs), TensorType(f32, ys))


def test_matmul_dtype_errors():
    with pytest.raises(DlgTypeError, match="matmul: dtypes differ") as e:
        MATMUL.infer(TensorType(DType.f32, (2, 3)), TensorType(DType.f64, (3, 2)))
    assert e.type is DlgTypeError
    with pytest.raises(DlgTypeError, match="matmul: inputs must be"):
        MATMUL.infer(TensorType(DType.bool, (2, 3)), TensorType(DType.bool, (3, 2)))


def test_matmul_symbolic_batch_runs_at_two_sizes():
    g = Graph("mm")
    b = Builder(g)
    x = b.input("x", TensorType(DType.f32, (N, T, 3)))
    w = b.input("w", TensorType(DType.f32, (3, 2)))
    g.set_output("z", b.matmul(x, w))
    wv = RNG.standard_normal((3, 2)).astype(np.float32)
    for n, t in ((1, 2), (3, 1)):
        xv = RNG.standard_normal((n, t, 3)).astype(np.float32)
        out = Interpreter().run(g, {"x": xv, "w": wv}, {})[0]["z"]
        np.testing.assert_allclose(out, loop_matmul(xv, wv), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("xs,ys", [s for s in SHAPES if 0 not in s[0] + s[1]])
def test_matmul_torch_parity(xs, ys):
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal(xs).astype(np.float64)
    y = RNG.standard_normal(ys).astype(np.float64)
    np.testing.assert_allclose(run_matmul(x, y),
                               torch.matmul(torch.from_numpy(x), torch.from_numpy(y)).numpy(),
                               rtol=1e-12, atol=1e-12)
