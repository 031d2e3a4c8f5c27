"""Losses through the interpreter, against torch.nn.functional and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from dlg.errors import DlgAttributeError, DlgShapeError, DlgTypeError
from dlg.ir.builder import Builder
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph
from dlg.ir.shapes import Sym
from dlg.ir.types import TensorType
from dlg.runtime.interp import Interpreter
from tests.ir.opcheck import infer_error

RNG = np.random.default_rng(1)
REDUCTIONS = ["mean", "sum", "none"]


def run_op(op: str, *arrays: np.ndarray, **attrs) -> np.ndarray:
    g = Graph(op)
    b = Builder(g)
    ins = [b.input(f"x{i}", TensorType(DType.of(a), a.shape)) for i, a in enumerate(arrays)]
    g.set_output("y", getattr(b, op)(*ins, **attrs))
    out, _ = Interpreter().run(g, {f"x{i}": a for i, a in enumerate(arrays)}, {})
    return out["y"]


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def torch_fn():
    torch = pytest.importorskip("torch")
    return torch, torch.nn.functional


def close(actual, expected):
    assert actual.dtype == np.float32
    np.testing.assert_allclose(actual, np.asarray(expected), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4), (5,)])
def test_cross_entropy_class_targets_vs_torch(reduction, smoothing, shape):
    torch, F = torch_fn()
    logits = rand(*shape)
    per_sample = shape[:1] + shape[2:] if len(shape) > 1 else ()
    target = np.asarray(RNG.integers(0, shape[1 if len(shape) > 1 else 0], per_sample), np.int64)
    y = run_op("cross_entropy", logits, target, reduction=reduction, label_smoothing=smoothing)
    ref = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(target),
                          reduction=reduction, label_smoothing=smoothing)
    close(y, ref.numpy())


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4)])
def test_cross_entropy_probability_targets_vs_torch(reduction, smoothing, shape):
    torch, F = torch_fn()
    logits = rand(*shape)
    probs = np.exp(rand(*shape))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    y = run_op("cross_entropy", logits, probs, reduction=reduction, label_smoothing=smoothing)
    ref = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(probs),
                          reduction=reduction, label_smoothing=smoothing)
    close(y, ref.numpy())


def test_cross_entropy_large_logits_stay_finite():
    logits = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]], np.float32)
    target = np.array([0, 0], np.int64)
    np.testing.assert_allclose(run_op("cross_entropy", logits, target, reduction="none"),
                               [0.0, 2000.0], rtol=1e-6)


def test_cross_entropy_symbolic_batch():
    g = Graph("ce")
    b = Builder(g)
    x = b.input("x", TensorType(DType.f32, (Sym.named("N"), 3)))
    t = b.input("t", TensorType(DType.i32, (Sym.named("N"),)))
    g.set_output("loss", b.cross_entropy(x, t))
    logits, target = rand(4, 3), np.array([0, 2, 1, 1], np.int32)
    out, _ = Interpreter().run(g, {"x": logits, "t": target}, {})
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(out["loss"], -logp[np.arange(4), target].mean(), rtol=1e-5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_vs_torch(reduction):
    torch, F = torch_fn()
    logp = rand(3, 4, 2)
    target = RNG.integers(0, 4, (3, 2))
    y = run_op("nll_loss", logp, target, reduction=reduction)
    close(y, F.nll_loss(torch.from_numpy(logp), torch.from_numpy(target),
                        reduction=reduction).numpy())


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("op", ["mse_loss", "l1_loss", "binary_cross_entropy",
                                "binary_cross_entropy_with_logits"])
def test_pointwise_losses_vs_torch(op, reduction):
    torch, F = torch_fn()
    x, y = rand(3, 4), RNG.uniform(0, 1, (3, 4)).astype(np.float32)
    if op == "binary_cross_entropy":
        x = RNG.uniform(0.01, 0.99, (3, 4)).astype(np.float32)
        x[0, :2] = [0.0, 1.0]  # log(0): PyTorch clamps at -100
    out = run_op(op, x, y, reduction=reduction)
    close(out, getattr(F, op)(torch.from_numpy(x), torch.from_numpy(y),
                              reduction=reduction).numpy())


def test_bce_with_logits_large_inputs_are_finite():
    x = np.array([100.0, -100.0, 0.0], np.float32)
    y = np.array([1.0, 1.0, 0.5], np.float32)
    out = run_op("binary_cross_entropy_with_logits", x, y, reduction="none")
    np.testing.assert_allclose(out, [0.0, 100.0, np.log(2)], rtol=1e-6, atol=1e-7)


def test_loss_closed_forms_without_torch():
    x, y = rand(2, 3), rand(2, 3)
    np.testing.assert_allclose(run_op("mse_loss", x, y), np.mean((x - y) ** 2), rtol=1e-5)
    np.testing.assert_allclose(run_op("l1_loss", x, y, reduction="sum"), np.abs(x - y).sum(),
                               rtol=1e-5)




ERRORS = [
    ("cross_entropy", ["f32[4,3]", "i64[5]"], {}, DlgShapeError, "target must be [4]"),
    ("cross_entropy", ["f32[4,3]", "f32[4,4]"], {}, DlgShapeError, "input's shape"),
    ("cross_entropy", ["f32[4,3]", "bool[4]"], {}, DlgTypeError, "int64 (or int32) class indices"),
    ("cross_entropy", ["i64[4,3]", "i64[4]"], {}, DlgTypeError, "input must be f16/f32/f64"),
    ("cross_entropy", ["f32[4,3]", "i64[4]"], {"label_smoothing": 1.5}, DlgTypeError,
     "label_smoothing"),
    ("cross_entropy", ["f32[4,3]", "i64[4]"], {"reduction": "avg"}, DlgAttributeError,
     "must be one of"),
    ("nll_loss", ["f32[4,3]", "f32[4,3]"], {}, DlgTypeError, "int64 (or int32) class indices"),
    ("mse_loss", ["f32[4,3]", "f32[3,4]"], {}, DlgShapeError, "f32[4,3], target f32[3,4]"),
    ("l1_loss", ["f32[4]", "f64[4]"], {}, DlgTypeError, "dtypes differ"),
]


@pytest.mark.parametrize("op,types,attrs,cls,phrase", ERRORS)
def test_loss_errors(op, types, attrs, cls, phrase):
    err = infer_error(op, types, **attrs)
    assert isinstance(err, cls), repr(err)
    assert phrase in err.message
