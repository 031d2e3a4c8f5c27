"""Keras' fit callbacks: early stopping stops on a plateau and restores the best epoch's
weights (checked against a fit that ran only that far), the best-only checkpoint holds them,
ReduceLROnPlateau lowers the rate, CSVLogger's rows and TensorBoard's event files (read back
with TensorBoard's own reader) hold the history."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TensorBoard,
)
from dlg.errors import DlgValueError

LINEAR = """
model Lin {
    input x: f32[N, 1]
    layer fc = Linear(1, 1)
    output out = fc(x)
}

train Lin {
    input y: f32[N, 1]
    loss = mse_loss(out, y)
    optimizer = SGD(lr=0.1)
}
"""


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(-1, 1, 16, dtype=np.float32)[:, None]
    return x, 2 * x + 1


@pytest.fixture
def model(tmp_path) -> dlg.Model:
    path = tmp_path / "lin.dlg"
    path.write_text(LINEAR)
    return dlg.load(path, seed=0)


def fit(m: dlg.Model, data, epochs: int, callbacks=(), **kw) -> dlg.callbacks.History:
    x, y = data
    kw.setdefault("validation_data", (x, y))
    return m.fit(x, y, epochs=epochs, batch_size=16, verbose=0, compiled=False,
                 callbacks=callbacks, **kw)


def test_early_stopping_stops_on_a_plateau(model, data):
    stopper = EarlyStopping(patience=2)
    history = fit(model, data, 10, [stopper], lr=0.0)  # nothing learns: val_loss is flat
    assert history.epoch == [1, 2, 3] and stopper.stopped_epoch == 2


def test_best_weights_restored_and_checkpointed(model, data, tmp_path):
    x, y = data
    worse = (x, -y)  # learning y makes the loss on -y grow: the first epoch is the best
    stopper = EarlyStopping(patience=2, restore_best_weights=True)
    best = tmp_path / "best.npz"
    history = fit(model, data, 10, [stopper, ModelCheckpoint(best, save_best_only=True)],
                  validation_data=worse)
    assert len(history.epoch) == 3 and stopper.best_epoch == 0
    assert history["val_loss"][0] < history["val_loss"][1] < history["val_loss"][2]
    reference = dlg.load(tmp_path / "lin.dlg", seed=0)
    fit(reference, data, 1)  # the same first epoch alone
    saved = np.load(best)
    for k, v in reference.params.items():
        np.testing.assert_array_equal(model.params[k], v)
        np.testing.assert_array_equal(saved[k], v)


def test_reduce_lr_on_plateau_lowers_the_rate(model, data):
    reduce = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10.0)
    history = fit(model, data, 4, [reduce])  # no epoch improves by 10: a plateau
    np.testing.assert_allclose(history["learning_rate"], [0.1, 0.1, 0.05, 0.025], rtol=1e-6)
    assert model.fit_step(compiled=False).base_lr == pytest.approx(0.0125)


def test_csv_logger_writes_a_row_per_epoch(model, data, tmp_path):
    path = tmp_path / "log.csv"
    history = fit(model, data, 3, [CSVLogger(path)])
    fit(model, data, 1, [CSVLogger(path, append=True)])
    header, *rows = path.read_text().splitlines()
    assert header == "epoch,loss,val_loss" and [r.split(",")[0] for r in rows] == \
        ["0", "1", "2", "3"]
    np.testing.assert_array_equal([float(r.split(",")[1]) for r in rows[:3]], history["loss"])


def test_tensorboard_event_files_parse(model, data, tmp_path):
    pytest.importorskip("tensorboardX")
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    history = fit(model, data, 3, [TensorBoard(tmp_path / "tb")])
    for part, name in (("train", "loss"), ("validation", "val_loss")):
        events = accumulator.EventAccumulator(str(tmp_path / "tb" / part))
        events.Reload()
        scalars = events.Scalars("epoch_loss")
        assert [e.step for e in scalars] == [0, 1, 2]
        np.testing.assert_allclose([e.value for e in scalars], history[name], rtol=1e-6)


@pytest.mark.parametrize("callback, message", [
    (EarlyStopping(), r"monitors 'val_loss', which fit does not log \(it logs loss;"),
    (object(), r"callbacks must be dlg Callback objects .* got object"),
])
def test_callback_errors(model, data, callback, message):
    with pytest.raises(DlgValueError, match=message):
        fit(model, data, 1, [callback], validation_data=None)


def test_checkpoint_refuses_a_file_that_is_not_weights():
    with pytest.raises(DlgValueError, match=r"ModelCheckpoint: w.h5: weights are .safetensors"):
        ModelCheckpoint("w.h5")


def test_callback_hooks_run_between_epochs(model, data):
    calls = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None):
            calls.append("begin")

        def on_epoch_end(self, epoch, logs=None):
            calls.append((epoch, sorted(logs)))

        def on_train_end(self, logs=None):
            calls.append("end")

    fit(model, data, 2, [Recorder()])
    assert calls == ["begin", (0, ["loss", "val_loss"]), (1, ["loss", "val_loss"]), "end"]
