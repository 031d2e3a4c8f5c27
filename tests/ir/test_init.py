"""Initialisers: fans, gains and sample statistics against closed forms and torch.nn.init."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlg.errors import DlgNameError, DlgShapeError, DlgTypeError
from dlg.ir.dtypes import DType
from dlg.ir.init import INITIALIZERS, calculate_gain, fans, initialize

SHAPE = (64, 32, 3, 3)  # fan_in 288, fan_out 576: ~18k samples, tight statistics


def draw(name: str, *args, shape=SHAPE, dtype=DType.f32, **kwargs) -> np.ndarray:
    return initialize(name, np.random.default_rng(0), shape, dtype, *args, **kwargs)


@pytest.mark.parametrize("shape", [(5, 3), (8, 4, 3), (6, 2, 3, 5), (2, 7, 1, 1, 2)])
def test_fans_match_torch(shape):
    assert fans(shape) == (shape[1] * math.prod(shape[2:]), shape[0] * math.prod(shape[2:]))
    torch = pytest.importorskip("torch")
    assert fans(shape) == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


@pytest.mark.parametrize("nonlinearity,param", [("linear", None), ("sigmoid", None),
                                                ("tanh", None), ("relu", None),
                                                ("leaky_relu", None), ("leaky_relu", 0.2),
                                                ("selu", None), ("conv2d", None)])
def test_gain_matches_torch(nonlinearity, param):
    torch = pytest.importorskip("torch")
    assert calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param))


def test_constant_initialisers():
    assert draw("zeros", shape=(2, 3)).dtype == np.float32
    np.testing.assert_array_equal(draw("zeros", shape=(2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(draw("ones", shape=(4,), dtype=DType.i64), np.ones(4))
    np.testing.assert_array_equal(draw("full", 2.5, shape=(3,)), [2.5, 2.5, 2.5])
    assert draw("zeros", shape=()).shape == ()


# (name, args, kwargs, the distribution's closed-form std, uniform bound or None)
FAN_IN, FAN_OUT = 32 * 9, 64 * 9
CASES = [
    ("uniform", (-0.5, 1.5), {}, 2 / math.sqrt(12), None),
    ("normal", (1.0, 0.3), {}, 0.3, None),
    ("kaiming_uniform", (), {}, math.sqrt(2 / FAN_IN), math.sqrt(6 / FAN_IN)),
    ("kaiming_uniform", (), {"mode": "fan_out", "nonlinearity": "relu"},
     math.sqrt(2 / FAN_OUT), math.sqrt(6 / FAN_OUT)),
    ("kaiming_normal", (), {"a": 0.1}, math.sqrt(2 / 1.01 / FAN_IN), None),
    ("xavier_uniform", (), {"gain": 2.0}, 2 * math.sqrt(2 / (FAN_IN + FAN_OUT)),
     2 * math.sqrt(6 / (FAN_IN + FAN_OUT))),
    ("xavier_normal", (), {}, math.sqrt(2 / (FAN_IN + FAN_OUT)), None),
]


@pytest.mark.parametrize("name,args,kwargs,std,bound", CASES)
def test_random_initialisers_statistics(name, args, kwargs, std, bound):
    w = draw(name, *args, **kwargs)
    assert w.shape == SHAPE and w.dtype == np.float32
    assert w.std() == pytest.approx(std, rel=0.03)
    if bound is not None:
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.99 * bound
    torch = pytest.importorskip("torch")
    t = torch.empty(SHAPE)
    torch.manual_seed(0)
    getattr(torch.nn.init, name + "_")(t, *args, **kwargs)
    assert w.std() == pytest.approx(t.std().item(), rel=0.05)
    assert w.mean() == pytest.approx(t.mean().item(), abs=0.05 * std)


def test_linear_default_weight_is_uniform_one_over_sqrt_fan_in():
    w = draw("kaiming_uniform", a=math.sqrt(5), shape=(200, 50))
    bound = 1 / math.sqrt(50)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.03)
    torch = pytest.importorskip("torch")
    layer = torch.nn.Linear(50, 200)
    assert layer.weight.abs().max().item() <= bound
    assert w.std() == pytest.approx(layer.weight.std().item(), rel=0.05)


def test_initialisers_are_seeded_and_f64_capable():
    a = draw("normal", shape=(3, 3), dtype=DType.f64)
    assert a.dtype == np.float64
    np.testing.assert_array_equal(a, draw("normal", shape=(3, 3), dtype=DType.f64))


def test_zero_element_tensor_is_left_empty():
    assert draw("kaiming_uniform", shape=(0, 4)).shape == (0, 4)


ERRORS = [
    ("glorot", (), {}, DlgNameError, "unknown initialiser 'glorot'"),
    ("uniform", (), {"lo": 1.0}, DlgTypeError, "it takes low, high"),
    ("full", (), {}, DlgTypeError, "value"),
    ("zeros", (1.0,), {}, DlgTypeError, "no arguments"),
    ("kaiming_uniform", (), {"mode": "fan_avg"}, DlgTypeError, "'fan_in' or 'fan_out'"),
    ("kaiming_normal", (), {"nonlinearity": "swish"}, DlgTypeError, "unknown nonlinearity"),
    ("normal", (0.0, -1.0), {}, DlgTypeError, "non-negative"),
]


@pytest.mark.parametrize("name,args,kwargs,cls,phrase", ERRORS)
def test_initialiser_errors(name, args, kwargs, cls, phrase):
    with pytest.raises(cls) as info:
        draw(name, *args, **kwargs)
    assert phrase in info.value.message


def test_fans_need_rank_two_and_random_needs_float():
    with pytest.raises(DlgShapeError, match="rank 2 or more"):
        draw("xavier_uniform", shape=(5,))
    with pytest.raises(DlgTypeError, match="float tensors"):
        draw("uniform", dtype=DType.i32)
    assert set(INITIALIZERS) >= {"zeros", "ones", "full", "uniform", "normal", "kaiming_uniform",
                                 "kaiming_normal", "xavier_uniform", "xavier_normal"}


# ---- trunc_normal, orthogonal, eye, dirac, sparse ------------------------------------------------
@pytest.mark.parametrize("mean, std, a, b", [(0.0, 1.0, -2.0, 2.0), (0.5, 1.0, -1.0, 2.0),
                                             (0.0, 0.02, -2.0, 2.0), (1.0, 2.0, 2.0, 4.0)])
def test_trunc_normal_statistics_match_torch(mean, std, a, b):
    w = draw("trunc_normal", mean, std, a, b, shape=(200, 100))
    assert w.dtype == np.float32 and a <= w.min() and w.max() <= b
    torch = pytest.importorskip("torch")
    t = torch.empty(200, 100)
    torch.manual_seed(0)
    torch.nn.init.trunc_normal_(t, mean, std, a, b)
    spread = t.std().item()
    assert w.std() == pytest.approx(spread, rel=0.03)
    assert w.mean() == pytest.approx(t.mean().item(), abs=0.03 * spread)
    for bound, extreme in ((a, w.min()), (b, w.max())):
        if abs(bound - mean) < 2.5 * std:  # a bound that cuts: samples crowd up to it
            assert abs(extreme - bound) < 0.01 * std


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (8, 3, 2, 2), (5, 5)])
def test_orthogonal_is_orthogonal_and_scaled_by_gain(shape):
    w = draw("orthogonal", 2.0, shape=shape, dtype=DType.f64)
    flat = w.reshape(shape[0], -1)
    small = min(flat.shape)
    gram = flat @ flat.T if flat.shape[0] == small else flat.T @ flat
    np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-12)
    torch = pytest.importorskip("torch")
    t = torch.nn.init.orthogonal_(torch.empty(shape, dtype=torch.float64), 2.0)
    assert np.abs(w).std() == pytest.approx(t.abs().std().item(), rel=0.5)  # same scale


@pytest.mark.parametrize("name, args, shape", [
    ("eye", (), (3, 5)), ("eye", (), (4, 2)), ("dirac", (), (4, 3, 3)),
    ("dirac", (2,), (4, 2, 3, 3)), ("dirac", (3,), (6, 1, 2, 3, 4))])
def test_eye_and_dirac_equal_torch(name, args, shape):
    torch = pytest.importorskip("torch")
    expected = getattr(torch.nn.init, name + "_")(torch.full(shape, 7.0), *args).numpy()
    np.testing.assert_array_equal(draw(name, *args, shape=shape), expected)


def test_sparse_zeros_each_column_as_torch():
    w = draw("sparse", 0.3, 0.5, shape=(10, 400))
    assert ((w == 0).sum(axis=0) == 3).all()  # ceil(0.3 * 10) zeros in every column
    torch = pytest.importorskip("torch")
    t = torch.nn.init.sparse_(torch.empty(10, 400), 0.3, 0.5)
    assert ((t == 0).sum(dim=0) == 3).all()
    assert w[w != 0].std() == pytest.approx(t[t != 0].std().item(), rel=0.05)


@pytest.mark.parametrize("name, args, shape, phrase", [
    ("orthogonal", (), (4,), "2 or more dimensions"), ("eye", (), (2, 2, 2), "2 dimensions"),
    ("dirac", (), (2, 2), "3, 4, or 5 dimensions"), ("dirac", (2,), (3, 1, 3), "divisible"),
    ("sparse", (0.1,), (3,), "2 dimensions")])
def test_structured_initialisers_refuse_wrong_shapes(name, args, shape, phrase):
    with pytest.raises(DlgShapeError, match=phrase):
        draw(name, *args, shape=shape)
