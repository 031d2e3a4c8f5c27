"""examples/pytorch_mnist.py (pytorch/examples' MNIST program with dlg's imports) against the
same program on torch: its own Net, train() and test() run in both from the same weights and
batches (dropout off: p = 0), eagerly and with the compiled step; and the script itself runs."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "pytorch_mnist.py"
TORCH_IMPORTS = {"import dlg as torch": "import torch",
                 "import dlg.nn as nn": "import torch.nn as nn",
                 "import dlg.nn.functional as F": "import torch.nn.functional as F",
                 "import dlg.optim as optim": "import torch.optim as optim",
                 "from dlg.optim.lr_scheduler import StepLR":
                     "from torch.optim.lr_scheduler import StepLR"}
LOSS = re.compile(r"Loss: ([\d.]+)")
TEST = re.compile(r"Average loss: ([\d.]+), Accuracy: (\d+)/(\d+)")


def program(on_torch: bool) -> types.ModuleType:
    """The example as a module; on torch, with PyTorch's imports in place of dlg's."""
    source = SCRIPT.read_text()
    if on_torch:
        for ours, theirs in TORCH_IMPORTS.items():
            assert source.count(ours + "\n") == 1, ours
            source = source.replace(ours + "\n", theirs + "\n")
    module = types.ModuleType("pytorch_mnist_torch" if on_torch else "pytorch_mnist")
    exec(compile(source, str(SCRIPT), "exec"), module.__dict__)  # noqa: S102 (our example)
    return module


@pytest.fixture(scope="module")
def data():
    x, y = dlg.data.load_digits(split="train")
    xt, yt = dlg.data.load_digits(split="test")
    normal = lambda a: ((a - 0.1307) / 0.3081).astype(np.float32)  # noqa: E731
    return normal(x[:96]), y[:96], normal(xt[:60]), yt[:60]


def loaders(on_torch, data):
    x, y, xt, yt = data
    if on_torch:
        make = lambda a, b, n: torch.utils.data.DataLoader(  # noqa: E731
            torch.utils.data.TensorDataset(torch.from_numpy(a), torch.from_numpy(b)),
            batch_size=n)
    else:
        make = lambda a, b, n: dlg.utils.data.DataLoader(  # noqa: E731
            dlg.utils.data.TensorDataset(a, b), batch_size=n)
    return make(x, y, 32), make(xt, yt, 30)


def run(on_torch, data, start, compiled=False):
    """Two epochs of three batches with the program's own functions; returns the printed
    losses, the test results and the final weights."""
    mod = program(on_torch)
    model = mod.Net()
    model.load_state_dict(start)
    model.dropout1.p = model.dropout2.p = 0.0
    train_loader, test_loader = loaders(on_torch, data)
    optimizer = mod.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = mod.StepLR(optimizer, step_size=1, gamma=0.7)
    args = argparse.Namespace(log_interval=1, dry_run=False)
    if compiled:
        x, y = next(iter(train_loader))
        step = dlg.trace_train(model, mod.F.nll_loss, optimizer, x, y).train_step(compiled=True)
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        for epoch in (1, 2):
            if compiled:
                mod.train_compiled(args, step, optimizer, train_loader, epoch)
            else:
                mod.train(args, model, "cpu", train_loader, optimizer, epoch)
            mod.test(model, "cpu", test_loader)
            scheduler.step()
    out = printed.getvalue()
    weights = {k: np.array(v.detach().numpy()) for k, v in model.state_dict().items()}
    return [float(v) for v in LOSS.findall(out)], TEST.findall(out), weights


@pytest.fixture(scope="module")
def start():
    torch.manual_seed(0)
    return {k: v.clone() for k, v in program(True).Net().state_dict().items()}


@pytest.fixture(scope="module")
def on_torch(data, start):
    return run(True, data, start)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_training_matches_torch(data, start, on_torch, compiled):
    want_losses, want_tests, want = on_torch
    losses, tests, got = run(False, data, start, compiled)
    assert len(losses) == len(want_losses) == 6
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
    assert len(tests) == 2
    for (loss, correct, total), (want_loss, want_correct, want_total) in zip(tests, want_tests):
        assert (correct, total) == (want_correct, want_total)
        assert float(loss) == pytest.approx(float(want_loss), abs=1e-4)
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-4, atol=1e-5, err_msg=k)
    assert not np.allclose(got["fc2.weight"], start["fc2.weight"].numpy())


@pytest.mark.parametrize("extra", [[], ["--compile"]], ids=["eager", "compiled"])
def test_the_script_runs(extra):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--epochs", "1", *extra],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"Train Epoch: 1 \[0/1438 \(0%\)\]\tLoss: 2\.\d+", proc.stdout)
    loss, correct, total = TEST.search(proc.stdout).groups()
    assert total == "359" and 0 <= int(correct) <= 359 and float(loss) < 3
