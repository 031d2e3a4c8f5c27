"""Traced modules built from nn.Sequential, nn.ModuleList and nn.ModuleDict print as .dlg (layer
lists) and load back to the same graph, state_dict keys and results."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
import dlg.nn as nn
import dlg.nn.functional as F
from dlg.cli import main
from tests.frontend.test_to_dlg import ops


class ConvBlock(nn.Module):
    """A custom block holding a nested Sequential."""

    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                                  nn.Sequential(nn.Conv2d(c, c, 1), nn.Tanh()))

    def forward(self, x):
        return x + self.body(x)


class BasicBlock(nn.Module):
    """ResNet's, with a downsampling shortcut (an nn.Sequential) when the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetStack(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.layers = nn.Sequential(BasicBlock(4, 4, 1), BasicBlock(4, 8, 2))
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.layers(self.stem(x)).mean((2, 3)))


class Blocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(ConvBlock(2), ConvBlock(2))

    def forward(self, x):
        return self.blocks(x).flatten(1)


class Heads(nn.Module):
    """A ModuleList iterated in forward, and one indexed."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))
        self.heads = nn.ModuleList([nn.Linear(4, 2), nn.Linear(4, 5)])

    def forward(self, x):
        for layer in self.layers:
            x = F.gelu(layer(x))
        return self.heads[0](x), self.heads[-1](x)


class Towers(nn.Module):
    """A ModuleDict, with keys that are .dlg keywords, `self`, or not names at all."""

    def __init__(self):
        super().__init__()
        self.towers = nn.ModuleDict({"a": nn.Linear(4, 4), "in": nn.Linear(4, 4),
                                     "self": nn.Linear(4, 4),
                                     "out-proj": nn.Sequential(nn.ReLU(), nn.Linear(4, 2))})

    def forward(self, x):
        h = self.towers["a"](x) * self.towers["in"](x) + self.towers["self"](x)
        return self.towers["out-proj"](h)


class Shared(nn.Module):
    """One submodule used twice, and one module under two names."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.seq = nn.Sequential(self.lin, nn.Tanh(), self.lin)

    def forward(self, x):
        return self.lin(self.lin(x)) + self.seq(x)


def top_level_sequential():
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(8, 2))


ZOO = [(Blocks, (2, 2, 4, 4)), (ResNetStack, (2, 3, 8, 8)), (Heads, (3, 4)),
       (Towers, (3, 4)), (Shared, (3, 4)), (top_level_sequential, (2, 3, 4))]


@pytest.mark.parametrize("make, shape", ZOO, ids=[m.__name__ for m, _ in ZOO])
def test_traced_containers_print_and_load_back(make, shape):
    dlg.manual_seed(0)
    net = make().eval()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    traced = dlg.trace(net, x)
    source = traced.to_dlg()
    again = dlg.loads(source)
    first_names = dict(net.named_parameters()) | dict(net.named_buffers())  # a tensor once
    assert list(again.params) == list(traced.params) == [k for k in net.state_dict()
                                                         if k in first_names]
    assert ops(again.graph) == ops(traced.graph)
    again.load_state_dict(traced.state_dict())
    for a, b in zip(again(x), traced(x)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_printed_names_read_like_pytorch():
    source = dlg.trace(Towers().eval(), np.zeros((1, 4), np.float32)).to_dlg()
    assert ('layer self = {"in": Params_towers_in(), self: Params_towers_self(), '
            '"out-proj": [NoParams(), ') in source
    assert 'towers.self["out-proj"][1].weight' in source
    source = dlg.trace(ResNetStack().eval(), np.zeros((1, 3, 8, 8), np.float32)).to_dlg()
    assert "layer layers = [Params_layers_0(), Params_layers_1()]" in source
    assert "layers[1].shortcut[1].running_mean" in source


def test_dlgc_trace_prints_a_module_with_containers(tmp_path, capsys):
    path = tmp_path / "net.py"
    path.write_text("import dlg.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n"
                    "        super().__init__()\n"
                    "        self.blocks = nn.Sequential(nn.Linear(3, 3), nn.ReLU())\n"
                    "    def forward(self, x):\n        return self.blocks(x)\n")
    assert main(["trace", f"{path}:Net", "--shape", "2,3"]) == 0
    source = capsys.readouterr().out
    assert list(dlg.loads(source).params) == ["blocks.0.weight", "blocks.0.bias"]
