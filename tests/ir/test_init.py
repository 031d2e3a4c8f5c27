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
