"""Loops without Python: `fit`, `TrainStep.run` and `evaluate` running many compiled steps per
native call give what one call per batch gives (the same batches, seeds, parameters, history
and errors), and evaluate compiled gives what the interpreter gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dlg
from dlg.errors import DlgValueError
from dlg.runtime.data import DataLoader
from dlg.runtime.loop import NativeLoop
from tests.runtime.test_training import BN_MODEL

MODELS = Path(__file__).resolve().parents[2] / "models"

TWO_HEADS = """
model Two {
    input a: f32[N, 3]
    input b: f32[N, 2]
    layer fc = Linear(5, 8)
    layer cls = Linear(8, 4)
    layer reg = Linear(8, 1)
    output logits = cls(relu(fc(concat([a, b], axis=1))))
    output value = reg(relu(fc(concat([a, b], axis=1))))
}
train Two {
    input y: i64[N]
    input z: f32[N, 1]
    loss = cross_entropy(logits, y) + mse_loss(value, z)
    metric accuracy = mean(argmax(logits, axis=1) == y)
    metric error = mean(abs(value - z))
    optimizer = SGD(lr=0.01, momentum=0.9)
}
"""

BN_DROPOUT = BN_MODEL.replace("SGD(lr=0.1, momentum=0.9)", "Adam(lr=0.01)")  # dropout + BN, Adam


def two_heads_data(n: int, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    x = {"a": rng.standard_normal((n, 3)).astype(np.float32),
         "b": rng.standard_normal((n, 2)).astype(np.float32)}
    y = {"y": rng.integers(0, 4, n).astype(np.int64),
         "z": rng.standard_normal((n, 1)).astype(np.float32)}
    return x, y


def bn_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 4)).astype(np.float32),
            rng.integers(0, 3, n).astype(np.int64))


def call_per_batch(m: dlg.Model, x: dict, y: dict, epochs: int, batch_size: int, shuffle: bool,
                   seed: int) -> dict[str, list[float]]:
    """The oracle: one compiled step call per batch of the loader fit uses; per-epoch means
    weighted by batch rows."""
    step = m.train_step(compiled=True)
    arrays = {**x, **y}
    loader = DataLoader(*arrays.values(), batch_size=batch_size, shuffle=shuffle, seed=seed)
    history: dict[str, list[float]] = {}
    for _ in range(epochs):
        totals: dict[str, float] = {}
        seen = 0
        for batch in loader:
            values = step(**dict(zip(arrays, batch)))
            seen += len(batch[0])
            for k, v in values.items():
                totals[k] = totals.get(k, 0.0) + v * len(batch[0])
        for k, v in totals.items():
            history.setdefault(k, []).append(v / seen)
    return history


def assert_params_close(a: dlg.Model, b: dlg.Model) -> None:
    for name in a.params:
        np.testing.assert_allclose(a.params[name], b.params[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)


# ---- fit -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 7, 10, 50, 64])
@pytest.mark.parametrize("shuffle", [True, False])
def test_fit_native_loop_matches_a_call_per_batch(batch_size, shuffle):
    x, y = two_heads_data(50)
    native, oracle = dlg.loads(TWO_HEADS, seed=3), dlg.loads(TWO_HEADS, seed=3)
    history = native.fit(x, y, epochs=2, batch_size=batch_size, shuffle=shuffle, seed=5,
                         verbose=0)
    expected = call_per_batch(oracle, x, y, 2, batch_size, shuffle, seed=5)
    assert set(history.history) == {"loss", "accuracy", "error"}
    for k, values in expected.items():
        np.testing.assert_allclose(history[k], values, rtol=1e-5, err_msg=k)
    assert_params_close(native, oracle)


def test_fit_with_dropout_and_batch_statistics_matches_a_call_per_batch():
    """Seeds (dropout masks) and buffer updates (running statistics) per step, as one call
    per batch makes them."""
    x, y = bn_data(45)
    native, oracle = dlg.loads(BN_DROPOUT, seed=1), dlg.loads(BN_DROPOUT, seed=1)
    history = native.fit(x, y, epochs=3, batch_size=8, seed=2, verbose=0)
    expected = call_per_batch(oracle, {"x": x}, {"y": y}, 3, 8, True, seed=2)
    np.testing.assert_allclose(history["loss"], expected["loss"], rtol=1e-5)
    assert_params_close(native, oracle)


def test_fit_native_loop_agrees_with_the_interpreter():
    x, y = two_heads_data(40)
    native, interpreted = dlg.loads(TWO_HEADS, seed=0), dlg.loads(TWO_HEADS, seed=0)
    h = native.fit(x, y, epochs=2, batch_size=16, validation_data=(x, y), verbose=0)
    g = interpreted.fit(x, y, epochs=2, batch_size=16, validation_data=(x, y), verbose=0,
                        compiled=False)
    assert h.history.keys() == g.history.keys()
    for k in g.history:
        np.testing.assert_allclose(h[k], g[k], rtol=1e-4, atol=1e-6, err_msg=k)
    for name in native.params:
        np.testing.assert_allclose(native.params[name], interpreted.params[name], rtol=1e-4,
                                   atol=1e-5, err_msg=name)


def test_fit_native_loop_refuses_a_bad_label_naming_it():
    x, y = two_heads_data(30)
    y["y"][17] = 9
    m = dlg.loads(TWO_HEADS)
    before = m.state_dict()
    with pytest.raises(DlgValueError, match=r"label 'y' must hold class indices 0\.\.3 .*got 9"):
        m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for name, value in before.items():
        np.testing.assert_array_equal(m.params[name], value)


@pytest.mark.parametrize("bad_batch", [0, 2, 4])
def test_fit_stops_at_a_non_finite_loss_with_the_previous_steps_weights(bad_batch):
    x, y = two_heads_data(40)
    y["z"][bad_batch * 8 + 3] = np.nan  # batch `bad_batch` of 5 (no shuffling) is poisoned
    m = dlg.loads(TWO_HEADS, seed=4)
    with pytest.raises(DlgValueError, match=f"the loss is nan at step {bad_batch + 1};") as e:
        m.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    assert f"in epoch 1, batch {bad_batch + 1} of 5" in str(e.value)
    oracle = dlg.loads(TWO_HEADS, seed=4)
    step = oracle.train_step(compiled=True)
    for k in range(bad_batch):
        rows = slice(8 * k, 8 * k + 8)
        step(a=x["a"][rows], b=x["b"][rows], y=y["y"][rows], z=y["z"][rows])
    assert_params_close(m, oracle)


def test_fit_continues_after_a_non_finite_step_from_the_previous_weights():
    x, y = two_heads_data(16)
    m = dlg.loads(TWO_HEADS)
    z = y["z"].copy()
    y["z"][0] = np.inf
    with pytest.raises(DlgValueError, match="the loss is"):
        m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(m.fit(x, {"y": y["y"], "z": z}, epochs=1, verbose=0)["loss"][0])


# ---- run -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size, perm", [
    (None, None), (6, None), (5, "permutation"), (4, "repeats"), (30, "more rows")])
def test_run_matches_calls_of_the_step(batch_size, perm):
    x, y = two_heads_data(23)
    data = {**x, **y}
    rng = np.random.default_rng(0)
    order = {None: None, "permutation": rng.permutation(23),
             "repeats": rng.integers(0, 23, 13), "more rows": rng.integers(0, 23, 40)}[perm]
    stepped, looped = dlg.loads(TWO_HEADS, seed=7), dlg.loads(TWO_HEADS, seed=7)
    step = stepped.train_step(compiled=True)
    indices = np.arange(23) if order is None else order
    rows = len(indices) if batch_size is None else batch_size
    batches = len(indices) // rows
    n = 2 * batches + 1  # past the end: batches come round again
    values = []
    for s in range(n):
        picked = indices[s % batches * rows:][:rows]
        values.append(step(**{k: v[picked] for k, v in data.items()}))
    result = looped.train_step(compiled=True).run(n, **data, batch_size=batch_size, perm=order)
    for k in result:
        assert result[k] == pytest.approx(np.mean([v[k] for v in values]), rel=1e-6)
    assert_params_close(looped, stepped)


def test_run_on_the_interpreter_matches_run_compiled():
    x, y = two_heads_data(20)
    compiled, interpreted = dlg.loads(TWO_HEADS, seed=2), dlg.loads(TWO_HEADS, seed=2)
    perm = np.random.default_rng(1).permutation(20)
    a = compiled.train_step(compiled=True).run(7, **x, **y, batch_size=6, perm=perm)
    b = interpreted.train_step().run(7, **x, **y, batch_size=6, perm=perm)
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-5)
    for name in compiled.params:
        np.testing.assert_allclose(compiled.params[name], interpreted.params[name], rtol=1e-4,
                                   atol=1e-6)


def test_run_linear_regression_full_batch_and_positional_arrays():
    m, oracle = dlg.load(MODELS / "linear_regression.dlg"), dlg.load(MODELS /
                                                                      "linear_regression.dlg")
    x, y = dlg.data.synthetic_regression(n=100, seed=0)
    step = m.train_step(compiled=True)
    first = step.run(100, x, y)
    again = step.run(100, x, y)  # the same arrays: the loop is reused, training continues
    reference = oracle.train_step(compiled=True)
    losses = [reference(x=x, y=y)["loss"] for _ in range(200)]
    assert first["loss"] == pytest.approx(np.mean(losses[:100]), rel=1e-6)
    assert again["loss"] == pytest.approx(np.mean(losses[100:]), rel=1e-6)
    assert step.steps == 200
    assert_params_close(m, oracle)


def test_run_sees_parameters_assigned_between_runs():
    x, y = dlg.data.synthetic_regression(n=10, seed=0)
    m = dlg.load(MODELS / "linear_regression.dlg")
    step = m.train_step(compiled=True)
    step.run(3, x=x, y=y)
    m.params["linear.weight"] = np.zeros((1, 1), np.float32)  # a new array object
    m.params["linear.bias"] = np.zeros(1, np.float32)
    loss = step.run(1, x=x, y=y)["loss"]
    assert loss == pytest.approx(float(np.mean(y.astype(np.float64) ** 2)), rel=1e-5)


@pytest.mark.parametrize("call, message", [
    (lambda s, d: s.run(0, **d), "n .* must be a positive int, got 0"),
    (lambda s, d: s.run(2, **d, batch_size=11), r"batch_size must be an int in 1\.\.10"),
    (lambda s, d: s.run(2, **d, perm=[0, 10]), r"perm\[1\] is 10, not a row of the data"),
    (lambda s, d: s.run(2, x=d["x"], y=d["y"][:5]), "differ in length"),
    (lambda s, d: s.run(2, x=d["x"].astype(np.float64), y=d["y"]), "expected dtype f32"),
    (lambda s, d: s.run(2, x=d["x"]), "missing input 'y'"),
    (lambda s, d: s.run(2, **d, perm=[]), "no rows to train on"),
])
def test_run_errors(call, message):
    x, y = dlg.data.synthetic_regression(n=10, seed=0)
    step = dlg.load(MODELS / "linear_regression.dlg").train_step(compiled=True)
    with pytest.raises(DlgValueError, match=message):
        call(step, {"x": x, "y": y})


def test_run_stops_at_a_non_finite_loss():
    x, y = dlg.data.synthetic_regression(n=10, seed=0)
    m = dlg.load(MODELS / "linear_regression.dlg")
    step = m.train_step(compiled=True)
    step.lr = 1e30  # diverges: the loss overflows to inf within a few steps
    with pytest.raises(DlgValueError, match="the loss is inf at step") as e:
        step.run(50, x=x, y=y)
    failed = int(str(e.value).split("at step ")[1].split(";")[0])
    assert step.steps == failed - 1 and np.isfinite(m.params["linear.weight"]).all()


# ---- evaluate ------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 7, 256])
def test_evaluate_compiled_matches_the_interpreter(batch_size):
    x, y = bn_data(37)
    m = dlg.loads(BN_DROPOUT, seed=0)
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)  # running statistics away from their start
    compiled = m.evaluate(x, y, batch_size=batch_size)
    interpreted = m.evaluate(x, y, batch_size=batch_size, compiled=False)
    assert compiled.keys() == interpreted.keys() == {"loss", "accuracy"}
    for k in compiled:
        assert compiled[k] == pytest.approx(interpreted[k], rel=1e-5), k


def test_evaluate_compiled_several_inputs_and_bad_labels():
    x, y = two_heads_data(30)
    m = dlg.loads(TWO_HEADS)
    a, b = m.evaluate(x, y, batch_size=8), m.evaluate(x, y, batch_size=8, compiled=False)
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-5), k
    y["y"][4] = -3
    with pytest.raises(DlgValueError, match="got -3"):
        m.evaluate(x, y)


def test_native_loop_refuses_missing_or_misshapen_parameters():
    x, y = dlg.data.synthetic_regression(n=10, seed=0)
    m = dlg.load(MODELS / "linear_regression.dlg")
    step = m.train_step(compiled=True)
    loop = NativeLoop(step.native, {"x": x, "y": y}, step.outputs, stop=True)
    params = {**m.params, **step.state}
    assert loop.run(params, 10, 0, 2, 1, None) == 2
    with pytest.raises(DlgValueError, match="no value for parameter 'linear.bias'"):
        loop.run({k: v for k, v in params.items() if k != "linear.bias"}, 10, 0, 1, 1, None)
    with pytest.raises(DlgValueError, match=r"parameter 'linear.weight': expected f32\[1, 1\]"):
        loop.run({**params, "linear.weight": np.zeros((2, 1), np.float32)}, 10, 0, 1, 1, None)
