"""nn ops through the interpreter, against naive loop oracles and against PyTorch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dlg.errors import DlgAttributeError, DlgShapeError, DlgTypeError
from dlg.ir.builder import Builder
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph
from dlg.ir.shapes import Sym
from dlg.ir.types import TensorType
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph
from tests.ir.opcheck import infer_error

RNG = np.random.default_rng(0)


def run_op(op: str, *arrays: np.ndarray, seed: int = 0, **attrs) -> np.ndarray:
    """Build a one-op graph (inputs typed from the arrays) and run it through the interpreter."""
    g = Graph(op)
    b = Builder(g)
    ins = [b.input(f"x{i}", TensorType(DType.of(a), a.shape)) for i, a in enumerate(arrays)]
    g.set_output("y", getattr(b, op)(*ins, **attrs))
    out, _ = Interpreter(seed).run(g, {f"x{i}": a for i, a in enumerate(arrays)}, {})
    return out["y"]


def rand(*shape: int, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


# ---- naive oracles ----------------------------------------------------------------------------
def naive_conv(x, w, stride, padding, dilation, groups):
    nd = x.ndim - 2
    n = x.shape[0]
    c_out, c_g = w.shape[:2]
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), *padding])
    kernel = w.shape[2:]
    outs = [(xp.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1
            for i in range(nd)]
    y = np.zeros((n, c_out, *outs))
    per_group = c_out // groups
    for b_, co in itertools.product(range(n), range(c_out)):
        g = co // per_group
        for pos in itertools.product(*map(range, outs)):
            acc = 0.0
            for ci in range(c_g):
                for k in itertools.product(*map(range, kernel)):
                    idx = tuple(pos[i] * stride[i] + k[i] * dilation[i] for i in range(nd))
                    acc += xp[(b_, g * c_g + ci) + idx] * w[(co, ci) + k]
            y[(b_, co) + pos] = acc
    return y


def out_size(size, k, s, p, d, ceil_mode):
    eff = d * (k - 1) + 1
    n = -(-(size + 2 * p - eff) // s) + 1 if ceil_mode else (size + 2 * p - eff) // s + 1
    if ceil_mode and (n - 1) * s >= size + p:
        n -= 1
    return n


def naive_pool(x, kind, kernel, stride, padding, dilation, ceil_mode, count_include_pad=True):
    nd = len(kernel)
    spatial = x.shape[-nd:]
    outs = [out_size(spatial[i], kernel[i], stride[i], padding[i], dilation[i], ceil_mode)
            for i in range(nd)]
    y = np.zeros(x.shape[:-nd] + tuple(outs))
    for lead in itertools.product(*map(range, x.shape[:-nd])):
        for pos in itertools.product(*map(range, outs)):
            starts = [pos[i] * stride[i] - padding[i] for i in range(nd)]
            vals = []
            for k in itertools.product(*map(range, kernel)):
                idx = tuple(starts[i] + k[i] * dilation[i] for i in range(nd))
                if all(0 <= idx[i] < spatial[i] for i in range(nd)):
                    vals.append(x[lead + idx])
            if kind == "max":
                y[lead + pos] = max(vals)
                continue
            if count_include_pad:
                divisor = 1
                for i in range(nd):
                    divisor *= min(starts[i] + kernel[i], spatial[i] + padding[i]) - starts[i]
            else:
                divisor = len(vals)
            y[lead + pos] = sum(vals) / divisor
    return y


# ---- conv -------------------------------------------------------------------------------------
CONV_GRID = list(itertools.product([1, 2], [(0, 0), (1, 1), (0, 2)], [1, 2], [1, 2]))


@pytest.mark.parametrize("stride,pad,dilation,groups", CONV_GRID)
def test_conv2d_primitive_vs_naive_and_torch(stride, pad, dilation, groups):
    x, w = rand(2, 4, 6, 7), rand(6, 4 // groups, 3, 2)
    padding = (pad, (pad[1], pad[0]))
    attrs = dict(stride=(stride, 1), padding=padding, dilation=(dilation, 1), groups=groups)
    y = run_op("conv", x, w, **attrs)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, naive_conv(x, w, **attrs), rtol=1e-5, atol=1e-5)
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    xt = F.pad(torch.from_numpy(x), (pad[1], pad[0], pad[0], pad[1]))
    ref = F.conv2d(xt, torch.from_numpy(w), stride=(stride, 1), dilation=(dilation, 1),
                   groups=groups)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-5, atol=1e-5)


CONV1D_GRID = [(s, p, d, g) for s, p, d, g in itertools.product([1, 3], [0, 2, "same", "valid"],
                                                                [1, 2], [1, 2])
               if not (p == "same" and s != 1)]  # 'same' needs stride 1


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("stride,padding,dilation,groups", CONV1D_GRID)
@pytest.mark.parametrize("bias", [True, False])
def test_conv1d_composite_vs_torch(stride, padding, dilation, groups, bias):
    torch = pytest.importorskip("torch")
    x, w, b = rand(2, 4, 9), rand(6, 4 // groups, 4), rand(6)
    attrs = dict(stride=(stride,), dilation=(dilation,), groups=groups)
    if isinstance(padding, str):
        attrs["auto_pad"] = padding
    else:
        attrs["padding"] = (padding,)
    y = run_op("conv1d", x, w, b, **attrs) if bias else run_op("conv1d_nobias", x, w, **attrs)
    ref = torch.nn.functional.conv1d(torch.from_numpy(x), torch.from_numpy(w),
                                     torch.from_numpy(b) if bias else None, stride=stride,
                                     padding=padding, dilation=dilation, groups=groups)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("padding,dilation", [((1, 2), (2, 1)), ("same", (2, 1)),
                                              ("same", (1, 1)), ("valid", (1, 2))])
def test_conv2d_composite_vs_torch(padding, dilation):
    torch = pytest.importorskip("torch")
    x, w, b = rand(1, 2, 5, 6), rand(3, 2, 2, 3), rand(3)
    attrs = {"auto_pad": padding} if isinstance(padding, str) else {"padding": padding}
    y = run_op("conv2d", x, w, b, dilation=dilation, **attrs)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                     torch.from_numpy(b), padding=padding, dilation=dilation)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("nd,size,kernel,stride,padding,output_padding,groups", [
    (2, 5, 3, 2, 1, 1, 1), (2, 7, 4, 2, 1, 0, 2), (2, 6, 1, 2, 0, 1, 1), (2, 1, 3, 2, 0, 0, 1),
    (1, 5, 2, 3, 1, 2, 1), (1, 8, 3, 4, 1, 3, 2), (1, 3, 5, 2, 2, 1, 1), (3, 3, 3, 2, 1, 1, 1)])
def test_strided_conv_transpose_in_phases_vs_torch(nd, size, kernel, stride, padding,
                                                   output_padding, groups):
    """A strided transposed convolution runs as one convolution per phase of the stride, only
    the taps that meet data (none for some phases when the kernel is shorter than the stride),
    interleaved: torch's values, compiled too."""
    torch = pytest.importorskip("torch")
    x, w = rand(2, 4, *([size] * nd)), rand(4, 6 // groups, *([kernel] * nd))
    attrs = dict(stride=(stride,) * nd, padding=(padding,) * nd,
                 output_padding=(output_padding,) * nd, groups=groups)
    op = f"conv_transpose{nd}d_nobias"
    ref = getattr(torch.nn.functional, f"conv_transpose{nd}d")(
        torch.from_numpy(x), torch.from_numpy(w), **attrs).numpy()
    np.testing.assert_allclose(run_op(op, x, w, **attrs), ref, rtol=1e-4, atol=1e-4)
    g = Graph(op)
    b = Builder(g)
    ins = [b.input(name, TensorType(DType.f32, a.shape)) for name, a in (("x", x), ("w", w))]
    g.set_output("y", getattr(b, op)(*ins, **attrs))
    got = NativeGraph(g)({"x": x, "w": w}, {})["y"]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_conv_f64_and_symbolic_batch():
    g = Graph("conv")
    b = Builder(g)
    x = b.input("x", TensorType(DType.f64, (Sym.named("N"), 1, 4)))
    w = b.input("w", TensorType(DType.f64, (2, 1, 3)))
    y = b.conv1d_nobias(x, w, padding=(1,))
    assert str(g.type_of(y)) == "f64[N,2,4]"
    g.set_output("y", y)
    xs, ws = rand(3, 1, 4, dtype=np.float64), rand(2, 1, 3, dtype=np.float64)
    out, _ = Interpreter().run(g, {"x": xs, "w": ws}, {})
    np.testing.assert_allclose(out["y"], naive_conv(xs, ws, (1,), ((1, 1),), (1,), 1))


# ---- pools ------------------------------------------------------------------------------------
POOL_GRID = list(itertools.product([2, 3], [1, 2, 3], [0, 1], [False, True]))


@pytest.mark.parametrize("kernel,stride,padding,ceil_mode", POOL_GRID)
@pytest.mark.parametrize("dilation", [1, 2])
def test_max_pool_vs_naive_and_torch(kernel, stride, padding, ceil_mode, dilation):
    x1, x2 = rand(2, 3, 8), rand(1, 2, 7, 6)
    a1 = dict(kernel=(kernel,), stride=(stride,), padding=(padding,), dilation=(dilation,),
              ceil_mode=ceil_mode)
    a2 = dict(kernel=(kernel, 2), stride=(stride, 1), padding=(padding, 1),
              dilation=(dilation, 1), ceil_mode=ceil_mode)
    y1, y2 = run_op("max_pool", x1, **a1), run_op("max_pool", x2, **a2)
    np.testing.assert_array_equal(y1, naive_pool(x1, "max", **a1))
    np.testing.assert_array_equal(y2, naive_pool(x2, "max", **a2))
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    r1 = F.max_pool1d(torch.from_numpy(x1), kernel, stride, padding, dilation, ceil_mode)
    r2 = F.max_pool2d(torch.from_numpy(x2), (kernel, 2), (stride, 1), (padding, 1),
                      (dilation, 1), ceil_mode)
    np.testing.assert_array_equal(y1, r1.numpy())
    np.testing.assert_array_equal(y2, r2.numpy())


@pytest.mark.parametrize("kernel,stride,padding,ceil_mode", POOL_GRID)
@pytest.mark.parametrize("count_include_pad", [False, True])
def test_avg_pool_vs_naive_and_torch(kernel, stride, padding, ceil_mode, count_include_pad):
    x1, x2 = rand(2, 3, 8), rand(1, 2, 7, 6)
    a1 = dict(kernel=(kernel,), stride=(stride,), padding=(padding,), ceil_mode=ceil_mode,
              count_include_pad=count_include_pad)
    a2 = dict(kernel=(kernel, 3), stride=(stride, 2), padding=(padding, 1), ceil_mode=ceil_mode,
              count_include_pad=count_include_pad)
    y1, y2 = run_op("avg_pool", x1, **a1), run_op("avg_pool", x2, **a2)
    assert y1.dtype == np.float32
    np.testing.assert_allclose(y1, naive_pool(x1, "avg", dilation=(1,), **a1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y2, naive_pool(x2, "avg", dilation=(1, 1), **a2),
                               rtol=1e-5, atol=1e-6)
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    r1 = F.avg_pool1d(torch.from_numpy(x1), kernel, stride, padding, ceil_mode,
                      count_include_pad)
    r2 = F.avg_pool2d(torch.from_numpy(x2), (kernel, 3), (stride, 2), (padding, 1), ceil_mode,
                      count_include_pad)
    np.testing.assert_allclose(y1, r1.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y2, r2.numpy(), rtol=1e-5, atol=1e-6)


# ---- softmax family ---------------------------------------------------------------------------
def test_softmax_family_stable_and_vs_torch():
    x = np.array([[1000.0, -1000.0, 0.0], [1.0, 2.0, 3.0]], np.float32)
    sm = run_op("softmax", x, axis=1)
    lsm = run_op("log_softmax", x, axis=-1)
    lse = run_op("logsumexp", x, axes=(1,))
    assert np.isfinite(sm).all() and np.isfinite(lse).all()
    np.testing.assert_allclose(sm[0], [1, 0, 0], atol=1e-7)
    np.testing.assert_allclose(lsm[0], [0, -2000, -1000], rtol=1e-6)
    np.testing.assert_allclose(lse[0], 1000, rtol=1e-6)
    torch = pytest.importorskip("torch")
    xt = torch.from_numpy(x)
    np.testing.assert_allclose(sm, torch.softmax(xt, 1).numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(lsm, torch.log_softmax(xt, 1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(lse, torch.logsumexp(xt, 1).numpy(), rtol=1e-6)
    y = rand(2, 3, 4)
    np.testing.assert_allclose(run_op("softmax", y, axis=0),
                               torch.softmax(torch.from_numpy(y), 0).numpy(), rtol=1e-5)
    np.testing.assert_allclose(run_op("logsumexp", y, axes=(0, 2), keepdims=True),
                               torch.logsumexp(torch.from_numpy(y), (0, 2), keepdim=True).numpy(),
                               rtol=1e-5)


def test_logsumexp_all_minus_inf_is_minus_inf():
    x = np.array([[-np.inf, -np.inf], [0.0, 0.0]], np.float32)
    np.testing.assert_allclose(run_op("logsumexp", x, axes=(1,)), [-np.inf, np.log(2)],
                               rtol=1e-6)


# ---- dropout ----------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_statistics(p):
    x = np.ones((200, 100), np.float32)
    y = run_op("dropout", x, p=p, training=True, seed=1)
    zeroed = np.mean(y == 0)
    assert abs(zeroed - p) < 0.02
    np.testing.assert_allclose(y[y != 0], 1 / (1 - p), rtol=1e-6)


def test_dropout_eval_identity_p0_and_p1():
    x = rand(3, 4)
    np.testing.assert_array_equal(run_op("dropout", x, p=0.5, training=False), x)
    np.testing.assert_array_equal(run_op("dropout", x, p=0.0, training=True), x)
    np.testing.assert_array_equal(run_op("dropout", x, p=1.0, training=True), np.zeros_like(x))


def test_dropout_with_symbolic_batch():
    g = Graph("dropout")
    b = Builder(g)
    x = b.input("x", TensorType(DType.f32, (Sym.named("N"), 50)))
    g.set_output("y", b.dropout(x, p=0.5, training=True))
    out, _ = Interpreter(3).run(g, {"x": np.ones((40, 50), np.float32)}, {})
    assert out["y"].shape == (40, 50)
    assert set(np.unique(out["y"])) == {0.0, 2.0}


# ---- normalisation ----------------------------------------------------------------------------
def test_batch_norm_vs_torch():
    torch = pytest.importorskip("torch")
    x, mean, var, w, b = rand(3, 4, 2, 2), rand(4), np.abs(rand(4)) + 0.1, rand(4), rand(4)
    y = run_op("batch_norm", x, mean, var, w, b, eps=1e-3)
    ref = torch.nn.functional.batch_norm(*map(torch.from_numpy, (x, mean, var, w, b)),
                                         training=False, eps=1e-3)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-5, atol=1e-5)
    x1 = rand(5, 4)
    ref1 = torch.nn.functional.batch_norm(*map(torch.from_numpy, (x1, mean, var, w, b)))
    np.testing.assert_allclose(run_op("batch_norm", x1, mean, var, w, b), ref1.numpy(),
                               rtol=1e-5, atol=1e-5)


def test_layer_norm_vs_torch_with_and_without_affine():
    torch = pytest.importorskip("torch")
    x, w, b = rand(2, 3, 4, 5), rand(4, 5), rand(4, 5)
    y = run_op("layer_norm", x, w, b, normalized_shape=(4, 5), eps=1e-5)
    ref = torch.nn.functional.layer_norm(torch.from_numpy(x), (4, 5), torch.from_numpy(w),
                                         torch.from_numpy(b))
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-5)
    y0 = run_op("layer_norm", x, normalized_shape=(5,))
    ref0 = torch.nn.functional.layer_norm(torch.from_numpy(x), (5,))
    np.testing.assert_allclose(y0, ref0.numpy(), rtol=1e-4, atol=1e-5)


# ---- lookup and dense -------------------------------------------------------------------------
def test_embedding_and_one_hot():
    weight = rand(5, 3)
    idx = np.array([[0, 4], [2, 2]], np.int64)
    np.testing.assert_array_equal(run_op("embedding", weight, idx), weight[idx])
    oh = run_op("one_hot", idx.astype(np.int32), num_classes=5)
    assert oh.dtype == np.float32 and oh.shape == (2, 2, 5)
    np.testing.assert_array_equal(oh, np.eye(5, dtype=np.float32)[idx])
    oh64 = run_op("one_hot", idx, num_classes=6, dtype=DType.i64)
    np.testing.assert_array_equal(oh64, np.eye(6, dtype=np.int64)[idx])


def test_linear_and_linear_nobias():
    x, w, b = rand(2, 3, 4), rand(5, 4), rand(5)
    np.testing.assert_allclose(run_op("linear", x, w, b), x @ w.T + b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run_op("linear_nobias", x, w), x @ w.T, rtol=1e-5, atol=1e-6)


# ---- errors -----------------------------------------------------------------------------------


CONV_ATTRS = dict(stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1)
ERRORS = [
    ("conv", ["f32[1,3,5,5]", "f32[4,2,3,3]"], CONV_ATTRS, DlgShapeError, "has 3 channels"),
    ("conv", ["f32[1,4,5,5]", "f32[3,2,3,3]"], {**CONV_ATTRS, "groups": 2}, DlgShapeError,
     "divisible by groups"),
    ("conv", ["f32[1,3,2,2]", "f32[4,3,3,3]"], CONV_ATTRS, DlgShapeError, "larger than"),
    ("conv", ["f32[1,3,H,5]", "f32[4,3,3,3]"], CONV_ATTRS, DlgShapeError, "must be concrete"),
    ("conv", ["i32[1,3,5,5]", "i32[4,3,3,3]"], CONV_ATTRS, DlgTypeError, "must be f16/f32/f64"),
    ("conv", ["f32[1,3,5,5]", "f32[4,3,3,3]"], {**CONV_ATTRS, "stride": (1,)},
     DlgAttributeError, "one per spatial dim"),
    ("conv2d_nobias", ["f32[1,3,5,5]", "f32[4,3,3,3]"], {"stride": (2, 2), "auto_pad": "same"},
     DlgAttributeError, "needs stride 1"),
    ("conv2d", ["f32[1,3,5,5]", "f32[4,3,3,3]", "f32[3]"], {}, DlgShapeError, "bias must be [4]"),
    ("conv1d_nobias", ["f32[1,3,5,5]", "f32[4,3,3,3]"], {}, DlgShapeError, "must have rank 3"),
    ("max_pool", ["f32[1,3,5]"], dict(kernel=(2,), stride=(1,), padding=(2,)),
     DlgAttributeError, "at most half"),
    ("avg_pool", ["f32[1,3,2]"], dict(kernel=(5,), stride=(1,), padding=(0,)), DlgShapeError,
     "too small"),
    ("dropout", ["f32[3]"], dict(p=1.5), DlgAttributeError, "in [0, 1]"),
    ("batch_norm", ["f32[2,3]", "f32[3]", "f32[3]", "f32[4]", "f32[3]"], {}, DlgShapeError,
     "weight must be [3]"),
    ("layer_norm", ["f32[2,3]"], dict(normalized_shape=(4,)), DlgShapeError,
     "does not end with"),
    ("layer_norm", ["f32[2,3]", "f32[3]"], dict(normalized_shape=(3,)), DlgTypeError,
     "x alone or x, weight and bias"),
    ("embedding", ["f32[5,3]", "f32[2]"], {}, DlgTypeError, "indices must be i32/i64"),
    ("linear", ["f32[2,3]", "f32[4,5]", "f32[4]"], {}, DlgShapeError, "does not fit weight"),
    ("softmax", ["f32[2,3]"], dict(axis=2), DlgShapeError, "out of range"),
]


@pytest.mark.parametrize("op,types,attrs,cls,phrase", ERRORS)
def test_nn_errors(op, types, attrs, cls, phrase):
    err = infer_error(op, types, **attrs)
    assert isinstance(err, cls), repr(err)
    assert phrase in err.message
