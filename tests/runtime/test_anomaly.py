"""Anomaly mode: the first op that turns finite inputs into a NaN or an Inf is named, with its
.dlg or Python line, on the interpreter, in eager mode (forward and backward) and compiled; off
(the default) nothing is checked, and compiled code has no check in it."""

from __future__ import annotations

import inspect
import threading

import numpy as np
import pytest

import dlg
from dlg.compiler.pipeline import CompileOptions
from dlg.runtime.anomaly import kernel_error
from dlg.runtime.native import NativeGraph

LOG = """model M {
    input x: f32[N]
    h = x * 2.0
    output y = log(h) + 1.0
}
"""
LOG_LINE = 4  # log(h)'s line in LOG

DIV = """model D {
    input x: f32[N]
    z = x - x
    output y = z / z + x
}
"""

SQRT = """model S {
    input x: f32[N, 2]
    layer fc = Linear(2, 1)
    output y = sqrt(fc(x))
}
train S {
    loss = mean(y)
    optimizer = SGD(lr=0.1)
}
"""

NEGATIVE = np.array([1.0, -1.0], np.float32)


def here() -> int:
    """The caller's line."""
    return inspect.currentframe().f_back.f_lineno  # type: ignore[union-attr]


@pytest.fixture(autouse=True)
def anomaly_off():
    """Every test starts and ends with the mode off (it is process-wide)."""
    dlg.set_anomaly(False)
    yield
    dlg.set_anomaly(False)


@pytest.fixture(scope="module")
def log_model() -> dlg.Model:
    return dlg.loads(LOG, file="log.dlg")


@pytest.fixture(scope="module")
def log_native(log_model: dlg.Model) -> NativeGraph:
    return NativeGraph(log_model.graph, options=CompileOptions(anomaly=True))


def sqrt_model() -> dlg.Model:
    """fc's output is 0, so sqrt's gradient 1 / (2 sqrt(0)) is inf while everything forward
    is finite."""
    m = dlg.loads(SQRT, file="sqrt.dlg")
    m.params["fc.weight"] = np.zeros((1, 2), np.float32)
    m.params["fc.bias"] = np.zeros((1,), np.float32)
    return m


# ---- the interpreter ----------------------------------------------------------------------------
def test_interpreter_names_log_and_its_line(log_model):
    with dlg.detect_anomaly():
        with pytest.raises(dlg.DlgNumericError, match=r"log produced nan") as e:
            log_model(x=NEGATIVE)
    assert (e.value.span.file, e.value.span.line) == ("log.dlg", LOG_LINE)
    assert "log(h)" in e.value.format()


def test_interpreter_names_zero_over_zero():
    m = dlg.loads(DIV, file="div.dlg")
    with dlg.detect_anomaly(), pytest.raises(dlg.DlgNumericError, match=r"div produced nan") as e:
        m(x=np.array([0.0, 3.0], np.float32))
    assert e.value.span.line == 4
    assert isinstance(e.value, dlg.DlgValueError)


def test_off_by_default_nan_returned_as_before(log_model):
    assert not dlg.is_anomaly_enabled()
    out = log_model(x=NEGATIVE)
    assert np.isnan(out[1]) and np.isclose(out[0], np.log(2.0) + 1)


def test_infinite_inputs_are_not_blamed(log_model):
    with dlg.detect_anomaly():
        out = log_model(x=np.array([np.inf, -np.inf, 1.0], np.float32))
        assert np.isinf(out[0]) and np.isnan(out[1])  # log(2 * inf), log(-inf): not log's doing
        m = dlg.loads(DIV, file="div.dlg")
        assert np.isnan(m(x=np.array([np.inf], np.float32))).all()  # inf - inf: from the input


def test_context_manager_restores_the_mode():
    with dlg.set_anomaly(True):
        assert dlg.is_anomaly_enabled()
        with dlg.set_anomaly(False):
            assert not dlg.is_anomaly_enabled()
        assert dlg.is_anomaly_enabled()
    assert not dlg.is_anomaly_enabled()
    dlg.set_anomaly(True)  # a call switches at once
    assert dlg.is_anomaly_enabled()


def test_interpreted_training_names_the_gradient_of_sqrt():
    m = sqrt_model()
    with dlg.detect_anomaly(), pytest.raises(dlg.DlgNumericError,
                                             match=r"in the gradient of sqrt produced inf") as e:
        m.train_step()(x=np.ones((3, 2), np.float32))
    assert (e.value.span.file, e.value.span.line) == ("sqrt.dlg", 4)
    assert not np.isnan(m.params["fc.weight"]).any()  # the step stopped before its update


# ---- eager -------------------------------------------------------------------------------------
def test_eager_log_names_this_line():
    dlg.set_anomaly(True)
    with pytest.raises(dlg.DlgNumericError, match=r"log produced nan") as e:
        line = here(); dlg.log(dlg.tensor([-1.0]))  # noqa: E702  (one line: the one named)
    assert (e.value.span.file, e.value.span.line) == (__file__, line)
    assert "dlg.log(dlg.tensor([-1.0]))" in e.value.format()


def test_eager_off_returns_nan():
    assert np.isnan(dlg.log(dlg.tensor([-1.0])).numpy()).all()


def test_eager_inf_input_not_blamed():
    with dlg.detect_anomaly():
        assert np.isinf(dlg.exp(dlg.tensor([np.inf])).numpy()).all()


def test_eager_backward_names_the_gradient_of_sqrt_at_its_line():
    x = dlg.tensor([0.0, 1.0], requires_grad=True)
    with dlg.detect_anomaly():
        line = here(); y = dlg.sqrt(x)  # noqa: E702
        loss = y.sum()
        with pytest.raises(dlg.DlgNumericError, match=r"in the gradient of sqrt produced inf") as e:
            loss.backward()
    assert (e.value.span.file, e.value.span.line) == (__file__, line)


def test_eager_backward_off_gives_inf():
    x = dlg.tensor([0.0, 1.0], requires_grad=True)
    dlg.sqrt(x).sum().backward()
    assert np.isinf(x.grad.numpy()[0]) and x.grad.numpy()[1] == pytest.approx(0.5)


# ---- compiled ----------------------------------------------------------------------------------
def test_compiled_names_log_and_its_line(log_native):
    with pytest.raises(dlg.DlgNumericError, match=r"log produced nan") as e:
        log_native({"x": NEGATIVE}, {})
    assert (e.value.span.file, e.value.span.line) == ("log.dlg", LOG_LINE)
    assert any("compiled as kernel" in n for n in e.value.notes)


def test_compiled_check_passes_finite_and_infinite_inputs(log_native, log_model):
    x = np.array([0.5, 2.0, 7.0], np.float32)
    np.testing.assert_allclose(log_native({"x": x}, {})["y"], log_model(x=x), rtol=1e-6)
    out = log_native({"x": np.array([np.inf, 1.0], np.float32)}, {})["y"]
    assert np.isinf(out[0]) and np.isfinite(out[1])
    log_native({"x": NEGATIVE[:1]}, {})  # the check was cleared by the calls before


def test_compiled_checks_of_concurrent_calls_blame_only_the_bad_ones(log_native, log_model):
    """The module has one anomaly cell: calls from several threads each see their own."""
    good = np.array([0.5, 2.0, 7.0], np.float32)
    want = log_model(x=good)
    outcomes: list[str] = []

    def call(bad: bool) -> None:
        for _ in range(40):
            try:
                y = log_native({"x": NEGATIVE if bad else good}, {})["y"]
                outcomes.append("good" if not bad and np.allclose(y, want) else "wrong")
            except dlg.DlgNumericError:
                outcomes.append("raised" if bad else "blamed")
    threads = [threading.Thread(target=call, args=(k % 2 == 0,)) for k in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(set(outcomes)) == ["good", "raised"] and len(outcomes) == 160


def test_compiled_kernel_names_its_fusion_group(log_native):
    """Without the call's inputs (a native loop's step) the kernel's group is named, at the
    line of its first op."""
    k = next(k for k in log_native.program.kernels if "log" in k.name)
    e = kernel_error(log_native.optimized_graph, k)
    assert "log" in e.message and "nan or an inf" in e.message.lower()
    assert e.span is not None and e.span.file == "log.dlg"


def test_compiled_off_has_no_check_code(log_model):
    plain = NativeGraph(log_model.graph)
    checked = NativeGraph(log_model.graph, options=CompileOptions(anomaly=True))
    assert "dlg_anomaly" not in str(plain.module) and "nonfinite" not in str(plain.module)
    assert "dlg_anomaly" in str(checked.module) and '.check"(' in str(checked.module)
    assert plain.key != checked.key  # the disk cache keeps them apart
    assert plain.anomaly is None
    assert np.isnan(plain({"x": NEGATIVE}, {})["y"][1])  # off: NaN returned, no error


def test_compile_time_mode_is_the_default(log_model):
    with dlg.detect_anomaly():
        assert CompileOptions().anomaly
    assert not CompileOptions().anomaly


def test_compiled_training_names_the_gradient_of_sqrt():
    m = sqrt_model()
    with dlg.detect_anomaly():
        step = m.train_step(compiled=True)
    with pytest.raises(dlg.DlgNumericError, match=r"in the gradient of sqrt") as e:
        step(x=np.ones((3, 2), np.float32))
    assert (e.value.span.file, e.value.span.line) == ("sqrt.dlg", 4)
    assert not np.isnan(m.params["fc.weight"]).any()


def test_compiled_training_loop_names_the_op_of_the_step_that_stopped():
    """A native loop runs a step a call in anomaly mode, so the stopped step's batch is known
    and the interpreter names the op; the steps before it were taken."""
    m = sqrt_model()
    m.params["fc.bias"] = np.ones((1,), np.float32)
    with dlg.detect_anomaly():
        step = m.train_step(compiled=True)
    x = np.ones((6, 2), np.float32)
    x[4:] = -5.0  # the third batch: fc(x) about 0.9 - 2 * 5 * 0.4 < 0, sqrt of it nan
    m.params["fc.weight"] = np.full((1, 2), 0.45, np.float32)
    with pytest.raises(dlg.DlgNumericError, match=r"sqrt produced nan") as e:
        step.run(5, x=x, batch_size=2)
    assert e.value.span.line == 4
    assert (m.params["fc.weight"] < 0.45).all()  # the two steps before it were taken
    assert any("compiled as kernel" in n for n in e.value.notes)


def test_compiled_training_off_reports_the_loss():
    m = sqrt_model()
    m.params["fc.bias"] = np.full((1,), -1.0, np.float32)  # sqrt(-1): a nan loss
    with pytest.raises(dlg.DlgValueError, match="the loss is nan") as e:
        m.train_step(compiled=True)(x=np.ones((3, 2), np.float32))
    assert not isinstance(e.value, dlg.DlgNumericError)


# ---- dlgc train --detect-anomaly ---------------------------------------------------------------
BAD = """model Bad {
    input x: f32[N, 1, 8, 8]
    layer fc = Linear(64, 10)
    output log_probs = log_softmax(log(fc(flatten(x))), axis=1)
}
train Bad {
    input y: i64[N]
    loss = nll_loss(log_probs, y)
    optimizer = SGD(lr=0.01)
}
"""


@pytest.mark.parametrize("flags", [[], ["--interpreter"]])
def test_dlgc_train_detect_anomaly_names_log(tmp_path, capsys, flags):
    from dlg.cli import main
    path = tmp_path / "bad.dlg"
    path.write_text(BAD)
    argv = ["train", str(path), "--data", "digits", "--epochs", "1", "-q", *flags]
    assert main(argv) != 0
    assert "the loss is nan" in capsys.readouterr().err
    assert main([*argv, "--detect-anomaly"]) != 0
    err = capsys.readouterr().err
    assert f"{path}:4:36: error:" in err and "log" in err and "the loss is" not in err


CLASSIFY = """model C {
    input x: f32[N, 2]
    layer fc = Linear(2, 3)
    output log_probs = log_softmax(log(fc(x)), axis=1)
}
train C {
    input y: i64[N]
    loss = nll_loss(log_probs, y)
    optimizer = SGD(lr=0.01)
}
"""


def test_fit_recompiles_its_step_when_the_mode_changes():
    m = dlg.loads(CLASSIFY, file="c.dlg")
    m.params["fc.weight"] = np.zeros((3, 2), np.float32)
    m.params["fc.bias"] = np.ones((3,), np.float32)
    x, y = np.ones((4, 2), np.float32), np.zeros(4, np.int64)
    m.fit(x, y, epochs=1, batch_size=2, verbose=0)  # compiled without checks
    m.params["fc.bias"] = np.full((3,), -1.0, np.float32)
    with pytest.raises(dlg.DlgValueError, match="the loss is nan"):
        m.fit(x, y, epochs=1, batch_size=2, verbose=0)
    with dlg.detect_anomaly(), pytest.raises(dlg.DlgNumericError, match="log produced nan") as e:
        m.fit(x, y, epochs=1, batch_size=2, verbose=0)
    assert e.value.span.line == 4


@pytest.mark.parametrize("saved_with", [False, True])
def test_artifacts_load_as_built_whatever_the_mode(tmp_path, log_model, saved_with):
    """An artifact's code is checked against its graph lowered as it was built, so one saved
    with anomaly checks or without loads in either mode, and keeps its checks or their lack."""
    with dlg.set_anomaly(saved_with):
        dlg.compile(log_model).save(tmp_path / "m.dlgx")
    with dlg.set_anomaly(not saved_with):
        exe = dlg.load(tmp_path / "m.dlgx")
    assert (exe.native.anomaly is not None) == saved_with
    if saved_with:
        with pytest.raises(dlg.DlgNumericError, match="log produced nan"):
            exe(x=NEGATIVE)
    else:
        assert np.isnan(exe(x=NEGATIVE)[1])


def test_traced_code_is_named_at_its_python_line():
    """A traced function's nodes carry the Python lines that made them: the interpreter and
    the compiled model name the line inside the function."""
    def f(x):
        return dlg.log(x * 2.0) + 1.0
    line = inspect.getsourcelines(f)[1] + 1
    m = dlg.trace(f, dlg.tensor([1.0, 2.0]))
    with dlg.detect_anomaly():
        exe = dlg.compile(m)
        for run in (m, exe):
            with pytest.raises(dlg.DlgNumericError, match="log produced nan") as e:
                run(NEGATIVE)
            assert (e.value.span.file, e.value.span.line) == (__file__, line)
