"""Ctrl-C during fit and resuming from its checkpoint: an interrupted-then-resumed run ends with
the weights, optimizer state and history of one never interrupted (compiled and interpreted,
shuffled, with dropout and Adam); a checkpoint of another model or a damaged one is an error;
`dlgc train` interrupted by SIGINT in a subprocess saves a checkpoint and --resume finishes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dlg
from dlg.callbacks import EarlyStopping
from dlg.cli import main
from dlg.errors import DlgValueError
from dlg.runtime import fitting
from dlg.runtime.checkpoint import Interrupted
from dlg.runtime.training import TrainStep

ROOT = Path(__file__).resolve().parents[2]

SOURCE = """
model Net {
    input x: f32[N, 4]
    layer fc = Linear(4, 8)
    layer drop = Dropout(0.25)
    layer out = Linear(8, 3)
    output logits = out(drop(relu(fc(x))))
}
train Net {
    input y: i64[N]
    loss = cross_entropy(logits, y)
    metric accuracy = mean(argmax(logits, axis=1) == y)
    optimizer = Adam(lr=0.01)
}
"""
EPOCHS, BATCH = 3, 8  # 60 rows: 7 full batches and one of 4 per epoch


def data(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 4)).astype(np.float32), rng.integers(0, 3, n)


def fitted(compiled: bool, **kw):
    m = dlg.loads(SOURCE, seed=5)
    history = m.fit(*data(), epochs=EPOCHS, batch_size=BATCH, seed=7, verbose=0,
                    compiled=compiled, **kw)
    return m, history


def interrupt_after(monkeypatch, steps: int) -> None:
    """Ctrl-C (a real SIGINT to this process) once `steps` training steps have run; compiled
    loops run one step per chunk so the interrupt lands where asked."""
    monkeypatch.setattr(fitting, "FIRST_CHUNK", 1)
    monkeypatch.setattr(fitting, "CHUNK_SECONDS", 0.0)
    for name in ("__call__", "train_steps"):
        original = getattr(TrainStep, name)

        def counted(self, *args, _original=original, **kw):
            out = _original(self, *args, **kw)
            if self.steps >= steps:
                signal.raise_signal(signal.SIGINT)
            return out
        monkeypatch.setattr(TrainStep, name, counted)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "interpreter"])
@pytest.mark.parametrize("steps", [5, 8, 13])  # mid-epoch, after the small last batch, mid-epoch
def test_interrupted_then_resumed_equals_uninterrupted(monkeypatch, tmp_path, compiled, steps):
    expected, history = fitted(compiled)
    path = tmp_path / "run.ckpt"
    with monkeypatch.context() as patch:
        interrupt_after(patch, steps)
        with pytest.raises(Interrupted) as info:
            fitted(compiled, checkpoint=path)
    assert info.value.checkpoint == path and path.exists()
    epoch, batch = divmod(steps, 8)
    assert (info.value.progress.epoch, info.value.progress.batch) == (epoch, batch)
    resumed = dlg.loads(SOURCE, seed=99)  # other initial weights: the checkpoint replaces them
    rest = resumed.fit(*data(), epochs=EPOCHS, batch_size=BATCH, seed=7, verbose=0,
                       compiled=compiled, resume=path)
    for name, value in expected.params.items():
        np.testing.assert_array_equal(resumed.params[name], value, err_msg=name)
    step, again = expected.fit_step(compiled), resumed.fit_step(compiled)
    for name, value in step.state.items():
        np.testing.assert_array_equal(again.state[name], value, err_msg=name)
    assert rest.epoch == history.epoch[epoch:]
    np.testing.assert_allclose(rest["loss"], history["loss"][epoch:], rtol=1e-12)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "interpreter"])
def test_an_epoch_checkpoint_resumes_to_the_uninterrupted_run(tmp_path, compiled):
    """checkpoint_every=2: the file written after epoch 2 (as if the process died in epoch 3)
    continues to the weights and history of the run that was never stopped."""
    expected, history = fitted(compiled)
    path = tmp_path / "epochs.ckpt"
    fitted(compiled, checkpoint=path, checkpoint_every=2)
    resumed = dlg.loads(SOURCE, seed=99)
    rest = resumed.fit(*data(), epochs=EPOCHS, batch_size=BATCH, seed=7, verbose=0,
                       compiled=compiled, resume=path)
    for name, value in expected.params.items():
        np.testing.assert_array_equal(resumed.params[name], value, err_msg=name)
    assert rest.epoch == history.epoch[2:]
    np.testing.assert_allclose(rest["loss"], history["loss"][2:], rtol=1e-12)


def test_dlgc_train_writes_a_checkpoint_each_epoch_when_asked(tmp_path, capsys):
    path = tmp_path / "mlp.ckpt"
    assert main(["train", str(ROOT / "models" / "mlp.dlg"), "--epochs", "1", "-q",
                 "--checkpoint-every", "1", "--checkpoint", str(path)]) == 0
    with np.load(path) as saved:  # the epoch-end checkpoint: epoch 1, batch 0
        meta = json.loads(saved["meta"].tobytes())
        assert (meta["epoch"], meta["batch"]) == (1, 0) and "param/fc1.weight" in saved.files


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "interpreter"])
def test_callbacks_resume_where_they_were(monkeypatch, tmp_path, compiled):
    """EarlyStopping that stops after epoch 2 (1 from 0) uninterrupted: interrupted in that epoch
    and resumed, it remembers the first epoch's best and stops there too, best weights and all
    (fresh, it would take epoch 2's loss as its first best and run a third epoch)."""
    def stopper():
        return EarlyStopping(monitor="loss", min_delta=10.0, patience=1,
                             restore_best_weights=True)
    expected, history = fitted(compiled, callbacks=[stopper()])
    assert history.epoch == [1, 2]
    path = tmp_path / "run.ckpt"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 11)  # epoch 2, batch 4
        with pytest.raises(Interrupted):
            fitted(compiled, checkpoint=path, callbacks=[stopper()])
    resumed = dlg.loads(SOURCE, seed=99)
    rest = resumed.fit(*data(), epochs=EPOCHS, batch_size=BATCH, seed=7, verbose=0,
                       compiled=compiled, resume=path, callbacks=[stopper()])
    assert rest.epoch == [2]
    for name, value in expected.params.items():
        np.testing.assert_array_equal(resumed.params[name], value, err_msg=name)
    with pytest.raises(DlgValueError, match=r"callbacks \[EarlyStopping\]"):
        dlg.loads(SOURCE).fit(*data(), epochs=EPOCHS, batch_size=BATCH, seed=7, verbose=0,
                              compiled=compiled, resume=path)


def test_checkpoint_every_needs_a_path_and_a_count():
    for bad in ({"checkpoint_every": 1}, {"checkpoint_every": -1, "checkpoint": "c"}):
        with pytest.raises(DlgValueError, match="checkpoint_every"):
            fitted(False, **bad)


def test_resuming_from_no_checkpoint_says_when_fit_writes_one(tmp_path):
    """A run that ended normally wrote none: README's resume line after an uninterrupted fit."""
    with pytest.raises(DlgValueError, match="no such checkpoint .*Ctrl-C.*checkpoint_every=N"):
        fitted(False, resume=tmp_path / "run.ckpt")


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "interpreter"])
def test_interrupt_without_checkpoint_stops_after_whole_steps(monkeypatch, compiled):
    """Without a path nothing is written; the weights and Adam's step count are those of the
    three steps run."""
    m = dlg.loads(SOURCE, seed=5)
    with monkeypatch.context() as patch:
        interrupt_after(patch, 3)
        with pytest.raises(Interrupted) as info:
            m.fit(*data(), epochs=EPOCHS, batch_size=BATCH, seed=7, verbose=0,
                  compiled=compiled)
    assert info.value.checkpoint is None and "after batch 3 of 8" in str(info.value)
    assert int(m.fit_step(compiled).state["optimizer.step"]) == 3
    assert m.fit_step(compiled).steps == 3


def test_keyboard_interrupt_raised_by_a_step_stops_at_the_step_before(monkeypatch, tmp_path):
    """A KeyboardInterrupt raised as usual (no handler: another thread) stops before the step
    that raised it; the checkpoint continues from there."""
    expected, _ = fitted(False)
    original = TrainStep.__call__

    def failing(self, *args, **kw):
        if self.steps == 10:
            raise KeyboardInterrupt
        return original(self, *args, **kw)
    with monkeypatch.context() as patch:
        patch.setattr(TrainStep, "__call__", failing)
        with pytest.raises(Interrupted):
            fitted(False, checkpoint=tmp_path / "c")
    resumed = dlg.loads(SOURCE, seed=5)
    resumed.fit(*data(), epochs=EPOCHS, batch_size=BATCH, seed=7, verbose=0, compiled=False,
                resume=tmp_path / "c")
    for name, value in expected.params.items():
        np.testing.assert_array_equal(resumed.params[name], value, err_msg=name)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "run.ckpt"
    with pytest.MonkeyPatch.context() as patch:
        interrupt_after(patch, 4)
        with pytest.raises(Interrupted):
            fitted(False, checkpoint=path)
    return path


@pytest.mark.parametrize("source, message", [
    (SOURCE.replace("Linear(4, 8)", "Linear(4, 9)").replace("Linear(8, 3)", "Linear(9, 3)"),
     r"parameter 'fc.weight' is float32\[8, 4\] there, float32\[9, 4\] here"),
    (SOURCE.replace("layer fc", "layer hidden").replace("fc(x)", "hidden(x)"),
     "parameter 'hidden.weight' is missing"),
    (SOURCE.replace("Adam(lr=0.01)", "SGD(lr=0.01)"), "optimizer state"),
])
def test_a_checkpoint_of_another_model_is_an_error(checkpoint, source, message):
    m = dlg.loads(source)
    with pytest.raises(DlgValueError, match=message):
        m.fit(*data(), epochs=EPOCHS, batch_size=BATCH, verbose=0, compiled=False,
              resume=checkpoint)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "missing"])
def test_a_damaged_checkpoint_is_an_error(checkpoint, tmp_path, damage):
    path = tmp_path / "damaged.ckpt"
    raw = checkpoint.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[:len(raw) // 2])
    elif damage == "flip":
        middle = len(raw) // 3
        path.write_bytes(raw[:middle] + bytes([raw[middle] ^ 0xFF]) + raw[middle + 1:])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint")
    m = dlg.loads(SOURCE)
    before = {k: v.copy() for k, v in m.params.items()}
    with pytest.raises(DlgValueError, match=f"{path}.*(not a valid dlg checkpoint|no such)"):
        m.fit(*data(), epochs=EPOCHS, batch_size=BATCH, verbose=0, compiled=False, resume=path)
    for name, value in before.items():
        np.testing.assert_array_equal(m.params[name], value)


def test_resuming_mid_epoch_with_another_batch_size_is_an_error(checkpoint):
    m = dlg.loads(SOURCE)
    with pytest.raises(DlgValueError, match="same data and batch size"):
        m.fit(*data(), epochs=EPOCHS, batch_size=BATCH + 1, verbose=0, compiled=False,
              resume=checkpoint)


def test_dlgc_train_interrupted_by_sigint_then_resumed(tmp_path):
    """A real Ctrl-C (SIGINT) once the first epoch's progress shows; the checkpoint is where
    dlgc says, and the same command with --resume finishes the run."""
    model = tmp_path / "net.dlg"
    model.write_text(SOURCE)
    x, y = data(1200)
    np.savez(tmp_path / "data.npz", x=x, y=y, x_test=x[:50], y_test=y[:50])
    weights, ckpt = tmp_path / "w.npz", tmp_path / "w.ckpt"
    command = [sys.executable, "-m", "dlg.cli", "train", str(model), "--data",
               f"npz:{tmp_path / 'data.npz'}", "--epochs", "400", "--batch-size", "4",
               "--interpreter", "-o", str(weights)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    seen = ""
    while "epoch 1/400" not in seen:  # tqdm writes the first epoch's bar to stderr
        char = proc.stderr.read(1)  # type: ignore[union-attr]
        assert char, f"dlgc ended before training: {seen}"
        seen += char
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, seen + err
    assert f"saved a checkpoint to {ckpt}" in err and "--resume" in err, err
    assert ckpt.exists() and not weights.exists()
    done = subprocess.run(command[:command.index("--epochs") + 1] + ["1", "-q"]
                          + command[command.index("--batch-size"):]
                          + ["--resume", str(ckpt)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "saved weights to" in done.stdout and weights.exists()
    assert not list(tmp_path.glob(".*.tmp"))
