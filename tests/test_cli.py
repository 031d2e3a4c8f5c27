"""dlgc end to end, in-process (fast) and once through a real subprocess (the console script's
exit codes and stderr)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dlg
from dlg.cli import main

MODELS = Path(__file__).resolve().parent.parent / "models"


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", sorted(p.name for p in MODELS.glob("*.dlg")))
def test_check_prints_a_summary(capsys, name):
    code, out, err = run_cli(capsys, "check", MODELS / name)
    assert code == 0 and err == ""
    m = dlg.load(MODELS / name)
    assert f"Model: {m.name}" in out
    assert f"{m.num_params():,} trainable" in out
    for layer in m.layer_calls:
        assert layer.name in out


def test_check_emits_graph_json_and_dlg(capsys):
    code, out, _ = run_cli(capsys, "check", MODELS / "mlp.dlg", "--emit", "graph", "--no-spans")
    assert code == 0 and out.startswith("graph MLP(") and "log_softmax" in out
    code, out, _ = run_cli(capsys, "check", MODELS / "mlp.dlg", "--emit", "json")
    assert code == 0 and json.loads(out)["name"] == "MLP"
    code, out, _ = run_cli(capsys, "check", MODELS / "mlp.dlg", "--emit", "dlg")
    assert code == 0 and "model MLP {" in out
    code, out, _ = run_cli(capsys, "check", MODELS / "mlp.dlg", "--train", "--emit", "graph")
    assert code == 0 and "nll_loss" in out


def test_run_reads_npy_and_writes_outputs(capsys, tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out_path = tmp_path / "out.npy"
    code, out, err = run_cli(capsys, "run", MODELS / "mlp.dlg", "--input",
                             f"x={tmp_path / 'x.npy'}", "--seed", "3", "-o", out_path)
    assert code == 0, err
    np.testing.assert_allclose(np.load(out_path), dlg.load(MODELS / "mlp.dlg", seed=3)(x=x),
                               rtol=1e-6)


def test_run_loads_weights(capsys, tmp_path):
    m = dlg.load(MODELS / "linear_regression.dlg")
    np.savez(tmp_path / "w.npz", **{"linear.weight": np.array([[2.0]], np.float32),
                                     "linear.bias": np.array([1.0], np.float32)})
    np.save(tmp_path / "x.npy", np.array([[3.0]], np.float32))
    code, out, err = run_cli(capsys, "run", MODELS / "linear_regression.dlg", "-w",
                             tmp_path / "w.npz", "-i", f"x={tmp_path / 'x.npy'}")
    assert code == 0, err
    assert "7." in out and list(m.outputs) == ["y_hat"]


def test_run_with_a_wrong_input_is_a_clear_error(capsys, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 3), np.float32))
    code, _, err = run_cli(capsys, "run", MODELS / "mlp.dlg", "-i", f"x={tmp_path / 'x.npy'}")
    assert code == 1 and "input 'x': expected shape [N, 1, 28, 28], got [2, 3]" in err
    code, _, err = run_cli(capsys, "run", MODELS / "mlp.dlg", "-i", f"x={tmp_path / 'no.npy'}")
    assert code == 1 and "cannot read" in err and "Traceback" not in err


def test_fmt_check_and_write(capsys, tmp_path):
    path = tmp_path / "m.dlg"
    path.write_text("model M {input x: f32[N]\n output y = x*2.0}")
    code, out, _ = run_cli(capsys, "fmt", path)
    assert code == 0 and dlg.loads(out)(x=np.ones(1, np.float32))[0] == 2
    assert run_cli(capsys, "fmt", "--check", path)[0] == 1
    assert run_cli(capsys, "fmt", "--write", path)[0] == 0
    assert run_cli(capsys, "fmt", "--check", path)[0] == 0


def test_errors_have_location_and_no_traceback_in_a_subprocess(tmp_path):
    bad = tmp_path / "bad.dlg"
    bad.write_text("model M {\n    input x: f32[N, 4]\n    output y = x @ ones(3, 2)\n}\n")
    proc = subprocess.run([sys.executable, "-m", "dlg.cli", "check", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{bad}:3:16: error: matmul: inner dims differ")
    assert "^" in proc.stderr and "Traceback" not in proc.stderr
    missing = subprocess.run([sys.executable, "-m", "dlg.cli", "check", str(tmp_path / "no.dlg")],
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_a_reader_that_stops_early_ends_the_output_quietly():
    """`dlgc compile ... --emit llvm | head -1`: the pipe closes before the output ends; dlgc
    stops without a BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "dlg.cli", "compile", str(MODELS / "mlp.dlg"),
                             "--emit", "llvm"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.read(10)
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141 and b"Traceback" not in err, err.decode()


def test_help_describes_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("check", "run", "train", "fmt"):
        assert command in out


# ---- dlgc train -------------------------------------------------------------------------------
def test_train_regression_saves_weights_that_run_reads(capsys, tmp_path):
    weights = tmp_path / "w.safetensors"
    code, out, err = run_cli(capsys, "train", MODELS / "linear_regression.dlg", "--epochs", "30",
                             "-q", "-o", weights)
    assert code == 0, err
    assert "synthetic y = 2x + 1" in err and "epoch  30" in out and "test: loss" in out
    np.save(tmp_path / "x.npy", np.array([[3.0]], np.float32))
    code, out, err = run_cli(capsys, "run", MODELS / "linear_regression.dlg", "-w", weights,
                             "-i", f"x={tmp_path / 'x.npy'}")
    assert code == 0
    assert abs(float(out.split("[[")[1].split("]]")[0]) - 7) < 0.1  # 2 * 3 + 1 after training


def test_train_plot_writes_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    curve = tmp_path / "curve.png"
    code, out, err = run_cli(capsys, "train", MODELS / "linear_regression.dlg", "--epochs", "2",
                             "-q", "--interpreter", "--plot", curve)
    assert code == 0, err
    assert f"wrote curves to {curve}" in out
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_plot_without_matplotlib_is_a_clear_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # importing it fails, as if not installed
    curve = tmp_path / "curve.png"
    code, _, err = run_cli(capsys, "train", MODELS / "linear_regression.dlg", "--epochs", "1",
                           "-q", "--interpreter", "--plot", curve)
    assert code == 1 and 'error: --plot needs matplotlib: pip install "dlg[plot]"' in err
    assert not curve.exists() and "Traceback" not in err


def test_train_digits_with_npz_and_lr(capsys, tmp_path):
    x, y = dlg.data.load_digits(size=28, split="all")
    np.savez(tmp_path / "d.npz", x=x[:200], y=y[:200])
    code, out, err = run_cli(capsys, "train", MODELS / "mlp.dlg", "--data",
                             f"npz:{tmp_path / 'd.npz'}", "--epochs", "1", "--lr", "0.05",
                             "--batch-size", "50", "-q", "-o", tmp_path / "w.npz", "--interpreter")
    assert code == 0, err
    assert "160 train / 40 test" in err and "accuracy" in out
    assert set(np.load(tmp_path / "w.npz")) == set(dlg.load(MODELS / "mlp.dlg").params)


@pytest.mark.parametrize("args, message", [
    (["--data", "imagenet"], "unknown data source 'imagenet'"),
    (["--data", "mnist:/no/such/folder"], "/no/such/folder"),
    (["-o", "w.bin"], "weights are .safetensors, .npz, .pt, .pth files"),
])
def test_train_errors(capsys, tmp_path, args, message):
    code, _, err = run_cli(capsys, "train", MODELS / "mlp.dlg", "--epochs", "0", "-q", *args)
    assert code == 1 and message in err and "Traceback" not in err


def test_train_needs_a_train_section_and_fitting_data(capsys, tmp_path):
    path = tmp_path / "m.dlg"
    path.write_text("model M { input x: f32[N, 3] output y = x * 2.0 }")
    code, _, err = run_cli(capsys, "train", path)
    assert code == 1 and "has no train section" in err
    code, _, err = run_cli(capsys, "train", MODELS / "cnn.dlg")
    assert code == 1 and "no built-in data fits input f32[N,3,10,10]" in err


# ---- dlgc compile: the pipeline's switches --------------------------------------------------
def test_compile_dumps_a_training_stage_only_with_train(capsys):
    code, _, err = run_cli(capsys, "compile", MODELS / "mlp.dlg", "--dump-after", "autodiff")
    assert code == 1 and "--dump-after autodiff: that pass makes a training step; add --train" \
        in err
    code, out, err = run_cli(capsys, "compile", MODELS / "logistic_regression.dlg", "--train",
                             "--verify", "--dump-after", "autodiff", "--dump-after", "fuse")
    assert code == 0, err
    autodiff = out.split("// ---- after autodiff ----\n")[1].split("// ----")[0]
    assert autodiff.startswith("graph ") and "grad.linear.weight = %" in autodiff
    assert "// ---- after fuse ----\nfusion of " in out


def test_compile_dumps_the_last_stages_even_when_the_code_is_cached(capsys):
    for _ in range(2):  # the second compile would come from the disk cache
        code, out, err = run_cli(capsys, "compile", MODELS / "linear_regression.dlg",
                                 "--dump-after", "optimize", "--dump-after", "codegen")
        assert code == 0, err
        assert "// ---- after optimize ----\n" in out and "// ---- after codegen ----\n" in out
