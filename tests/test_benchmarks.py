"""The benchmark runner's own logic (nothing here times anything): FLOP counts against closed
forms, the checks that keep a wrong peer out of the table, a missing peer reported, and one
end-to-end run of `python -m benchmarks` with dlg alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dlg
from benchmarks import peers, runner
from benchmarks.flops import count_flops, flops_by_op
from dlg.ir.ops.control import SCAN
from dlg.ir.ops.conv import CONV, CONV_WEIGHT_GRAD
from dlg.ir.ops.linalg import MATMUL
from dlg.runtime.training import TrainStep

ROOT = Path(__file__).resolve().parent.parent

MLP = """
model Tiny {
    input x: f32[N, 5]
    layer fc1 = Linear(5, 3)
    layer fc2 = Linear(3, 2)
    output y = fc2(relu(fc1(x)))
}
train Tiny {
    input t: f32[N, 2]
    loss = mse_loss(y, t)
    optimizer = SGD(lr=0.1)
}
"""

CONV_NET = """
model Conv {
    input x: f32[N, 4, 7, 7]
    layer conv = Conv2d(4, 6, 3, stride=2, groups=2)
    output y = relu(conv(x))
}
train Conv {
    input t: f32[N, 6, 3, 3]
    loss = mse_loss(y, t)
    optimizer = SGD(lr=0.1)
}
"""

RNN = """
model Recurrent {
    input x: f32[N, T, 3]
    layer rnn = RNN(3, 4, batch_first=true)
    seq, state = rnn(x)
    output y = seq
}
"""


def test_flops_mlp_closed_form():
    m, n = dlg.loads(MLP), 7
    # matmuls 2·N·5·3 + 2·N·3·2, bias adds N·3 + N·2, relu N·3
    assert count_flops(m.graph, {"N": n}) == 42 * n + 5 * n + 3 * n
    # backward: dW2 2·N·3·2, dh 2·N·2·3, dW1 2·N·5·3; no gradient for the input x
    train = flops_by_op(TrainStep(m).graph, {"N": n})
    assert train[MATMUL] == 42 * n + 12 * n + 12 * n + 30 * n


def test_flops_conv_closed_form():
    m, n = dlg.loads(CONV_NET), 3
    conv = 2 * n * 6 * 3 * 3 * (4 // 2) * 3 * 3  # 2·N·O·P·(C/groups)·KH·KW, output 3x3
    assert count_flops(m.graph, {"N": n}) == conv + 2 * n * 6 * 3 * 3  # + bias add, relu
    train = flops_by_op(TrainStep(m).graph, {"N": n})
    assert train[CONV] == conv and train[CONV_WEIGHT_GRAD] == conv


def test_flops_scan_is_its_body_times_its_length():
    m, n = dlg.loads(RNN), 2
    short, long = (flops_by_op(m.graph, {"N": n, "T": t})[SCAN] for t in (4, 8))
    assert long == 2 * short
    assert short + flops_by_op(m.graph, {"N": n, "T": 4})[MATMUL] >= 4 * 2 * n * (3 * 4 + 4 * 4)


def test_checks_refuse_a_wrong_peer():
    ref = np.array([[1.0, -2.0], [0.5, 4.0]])
    assert runner.output_error(ref + 1e-5, ref) is None
    assert runner.output_error(ref * 1.01, ref) is not None
    assert runner.output_error(ref[:1], ref) is not None
    init = {"w": np.zeros(3)}
    assert runner.update_error({"w": np.array([1.0, 2.0, 3.0])},
                               {"w": np.array([1.0, 2.0, 3.001])}, init) is None
    assert runner.update_error({"w": np.array([1.0, 2.0, 3.3])},
                               {"w": np.array([1.0, 2.0, 3.0])}, init) is not None
    assert runner.update_error({"w": np.array([np.nan, 2.0, 3.0])},
                               {"w": np.array([1.0, 2.0, 3.0])}, init) is not None


def test_missing_peer_is_reported(monkeypatch):
    monkeypatch.setitem(peers.PEERS, "ghost", "benchmarks.no_such_peer")
    missing: dict[str, str] = {}
    assert peers.load_peers(["ghost"], missing) == []
    assert "no_such_peer" in missing["ghost"]


def test_runner_end_to_end(tmp_path):
    md = tmp_path / "table.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--models", "linear_regression", "--batches", "1",
         "--repeat", "1", "--min-time", "0", "--peers", "none", "--peak", "100",
         "--markdown", str(md)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for what in ("infer b1", "train b64", "100 steps b100", "dlg inference"):
        assert what in done.stdout
    assert "| linear_regression | infer b1 |" in md.read_text()


def test_eager_loop_runs_each_model_on_torch_and_dlg(capsys):
    """`python -m benchmarks.eager_loop`'s models build and train on torch, dlg eager and
    dlg.compile(model) (one step timed, no warmup; nothing asserted about time)."""
    pytest.importorskip("torch")
    from benchmarks import eager_loop
    eager_loop.main(["--models", ",".join(eager_loop.MODELS), "--batch", "2", "--steps", "1",
                     "--rounds", "1", "--warmup", "0", "--no-torch-compile"])
    out = capsys.readouterr().out
    for name in eager_loop.MODELS:
        assert f"{name}, Adam, batch 2" in out
    assert out.count("dlg.compile(model)") == len(eager_loop.MODELS)
