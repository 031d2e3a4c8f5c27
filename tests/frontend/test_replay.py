"""Eager calls replayed from the recording of the first call with the same key
(frontend/replay.py): the same values as the function computes, fresh random draws, the data
checks of every call, and a separate recording wherever a type or a static value differs."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.errors import DlgValueError
from dlg.frontend import replay

F = dlg.nn.functional


def arrays(seed: int, shape: tuple[int, ...] = (4, 6)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("call, oracle", [
    (lambda x: x.sum(1), lambda a: a.sum(1)),
    (lambda x: x.mean(), lambda a: a.mean()),
    (lambda x: x.view(-1), lambda a: a.reshape(-1)),
    (lambda x: x.t(), lambda a: a.T),
    (lambda x: F.log_softmax(x, dim=1),
     lambda a: a - a.max(1, keepdims=True) - np.log(np.exp(a - a.max(1, keepdims=True))
                                                    .sum(1, keepdims=True))),
    (lambda x: dlg.cat([x, x], 1), lambda a: np.concatenate([a, a], 1)),
    (lambda x: x.argmax(1), lambda a: a.argmax(1)),
])
def test_replayed_calls_compute_what_the_function_does(call, oracle):
    for seed in range(3):  # the first call records, the others replay on their own tensors
        a = arrays(seed)
        np.testing.assert_allclose(np.asarray(call(dlg.tensor(a))), oracle(a), rtol=1e-5,
                                   atol=1e-6)


def test_replayed_calls_are_recorded_and_differentiable():
    x = dlg.tensor(arrays(0), requires_grad=True)
    for _ in range(2):
        x.grad = None
        (x.sum(1) * dlg.arange(4.0)).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), np.repeat(np.arange(4.0), 6).reshape(4, 6))
    assert any(k[0] == "sum" for k in replay._recordings)


def test_static_values_and_types_key_their_own_recordings():
    ints = dlg.tensor([[1, 2], [3, 4]])
    assert ints.sum(0).dtype == dlg.int64 and ints.sum(0).tolist() == [4, 6]
    floats = ints.float()
    assert floats.sum(1).tolist() == [3.0, 7.0]  # another axis, another type: not replayed
    assert ints.sum(1).tolist() == [3, 7]
    assert floats.reshape(4).shape == (4,) and floats.reshape(1, 4).shape == (1, 4)


def test_random_functions_draw_at_every_replay():
    first, second = dlg.randn(5), dlg.randn(5)
    assert not np.array_equal(first.numpy(), second.numpy())
    x = dlg.ones(64)
    masks = {tuple(F.dropout(x, 0.5).tolist()) for _ in range(3)}
    assert len(masks) == 3


def test_a_replay_checks_its_own_data():
    scores = dlg.tensor(arrays(1, (3, 5)))
    F.cross_entropy(scores, dlg.tensor([0, 1, 4]))
    with pytest.raises(DlgValueError, match="target 5 is out of range"):
        F.cross_entropy(scores, dlg.tensor([0, 5, 4]))


def test_calls_with_arrays_or_lifted_numbers_are_not_recorded():
    before = set(replay._recordings)
    x = dlg.tensor(arrays(2))
    dlg.add(x, np.ones((4, 6), np.float32))  # an array argument: no key
    x.pow(3)  # the exponent is lifted into a tensor: not a function of the arguments alone
    assert not {k[0] for k in set(replay._recordings) - before} & {"add", "pow"}
    np.testing.assert_allclose(x.pow(3).numpy(), arrays(2) ** 3, rtol=1e-6)


def test_a_tensor_given_twice_does_not_make_later_calls_alias():
    x, y = dlg.tensor(arrays(3)), dlg.tensor(arrays(4))
    for _ in range(2):
        np.testing.assert_array_equal(dlg.cat([x, x], 1).numpy(),
                                      np.concatenate([x.numpy()] * 2, 1))
        np.testing.assert_array_equal(dlg.cat([x, y], 1).numpy(),
                                      np.concatenate([x.numpy(), y.numpy()], 1))
        np.testing.assert_array_equal(dlg.maximum(x, x).numpy(), x.numpy())
        np.testing.assert_array_equal(dlg.stack([y, x]).numpy(), np.stack([y.numpy(), x.numpy()]))
