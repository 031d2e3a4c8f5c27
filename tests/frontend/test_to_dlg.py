"""Traced models written as .dlg source load back to the same graph and results."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
import dlg.nn as nn
import dlg.nn.functional as F
from dlg.ir.decompose import decompose


def ops(g):
    return [(n.op.name, str(n.types[0])) for n in decompose(g)
            if n.op.name not in ("input", "param", "constant")]


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.AvgPool2d(2)
        self.norm = nn.LayerNorm(16)
        self.gru = nn.GRU(16, 8, batch_first=True)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.pool(F.relu(self.bn(self.conv(x))))            # [N, 4, 4, 4]
        x = self.norm(x.reshape(x.size(0), 4, 16)) * 2.0 - 1.0  # [N, 4, 16]
        seq, _ = self.gru(x)
        return F.softmax(self.head(seq[:, -1]), dim=-1), seq.mean(1)


class NonFinite(nn.Module):
    """Constants .dlg has no literal for: a -inf mask fill, +inf and NaN."""

    def forward(self, x):
        masked = x.masked_fill(x < 0, float("-inf")).softmax(-1)
        return masked, dlg.where(x > 1, float("inf"), x), dlg.where(x > 2, float("nan"), x)


@pytest.mark.parametrize("module, shape", [(Small, (2, 3, 8, 8)), (NonFinite, (4, 3))])
def test_printed_model_loads_back_to_the_same_graph(module, shape):
    net = module().eval()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    traced = dlg.trace(net, x)
    source = traced.to_dlg()
    again = dlg.loads(source)
    assert list(again.params) == list(traced.params)
    assert ops(again.graph) == ops(traced.graph)
    again.load_state_dict(traced.state_dict())
    for a, b in zip(again(x), traced(x)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)  # NaN where NaN


def test_unprintable_models_are_clear_errors():
    class KeywordParam(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_parameter("in", nn.Parameter(np.zeros(3, np.float32)))

        def forward(self, x):
            return x * getattr(self, "in")
    with pytest.raises(dlg.DlgValueError, match="'in' is not a .dlg name"):
        dlg.trace(KeywordParam(), np.zeros((2, 3), np.float32)).to_dlg()

    class WithTable(nn.Module):
        def forward(self, x):
            return x + dlg.tensor([1.0, 2.0, 3.0])
    with pytest.raises(dlg.DlgValueError, match="constant tensor of shape"):
        dlg.trace(WithTable(), np.zeros((2, 3), np.float32)).to_dlg()


def test_dlgc_trace_writes_a_loadable_file(tmp_path, capsys):
    from dlg.cli import main
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    out = tmp_path / "net.dlg"
    assert main(["trace", f"{root / 'examples' / 'mnist_mlp.py'}:Net", "--shape", "1,1,28,28",
                 "-o", str(out)]) == 0
    m = dlg.load(out)
    assert str(m.inputs["x"]) == "f32[N,1,28,28]" and list(m.params) == [
        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert main(["trace", "nothing.py:Net", "--shape", "1"]) == 1
    assert "no such Python file" in capsys.readouterr().err


def test_a_traced_lambda_prints_as_a_named_model():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    source = dlg.trace(lambda x: x * 2.0, x).to_dlg()
    assert source.startswith("model lambda {")
    np.testing.assert_allclose(dlg.loads(source)(x), x * 2.0)
