"""The example programs run, eagerly and traced + compiled, with the same results."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("script, args", [("mnist_mlp.py", ["--epochs", "2"]),
                                          ("mnist_convnet.py", ["--batches", "3"])])
def test_eager_and_compiled_reach_the_same_accuracy(script, args):
    out = run(script, *args)
    eager = re.search(r"eager: test accuracy ([\d.]+)%", out).group(1)
    compiled = re.search(r"compiled: test accuracy ([\d.]+)%", out).group(1)
    assert eager == compiled, out
    eager_losses = re.findall(r"eager +epoch \d+: loss ([\d.]+)", out)
    assert eager_losses == re.findall(r"compiled epoch \d+: loss ([\d.]+)", out)


def test_linear_regression_example():
    out = run("linear_regression.py")
    eager = re.search(r"eager: w = ([\d.]+), b = ([\d.]+)", out).groups()
    compiled = re.search(r"compiled: w = ([\d.]+), b = ([\d.]+)", out).groups()
    assert eager == compiled
    assert abs(float(eager[0]) - 2) < 0.3 and abs(float(eager[1]) - 1) < 0.2
