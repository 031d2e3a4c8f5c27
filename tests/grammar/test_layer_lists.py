"""Layer lists in .dlg (Sequential, [...] and {...}): PyTorch's names and results, indexing,
iteration, the formatter, and the errors of misuse."""

from __future__ import annotations

import re

import numpy as np
import pytest

import dlg
from dlg.errors import DlgError, DlgNameError, DlgSyntaxError, DlgTypeError, DlgValueError
from dlg.grammar.format import format_module
from dlg.grammar.parser import parse

SOURCE = """
layer Block(c: int) {
    layer fc1 = Linear(c, c)
    layer fc2 = Linear(c, c)
    forward(x) { return x + fc2(relu(fc1(x))) }
}

layer Tower(c: int) {
    layer convs = [Linear(c, c) for i in range(2)]
    forward(x) {
        for conv in convs { x = tanh(conv(x)) }
        return x
    }
}

model M {
    input x: f32[N, 4]
    layer blocks = Sequential(Block(4), Sequential(Linear(4, 4), ReLU()), Block(4))
    layer heads = [Linear(4, 2) for i in range(3)]
    layer towers = {a: Tower(4), "b": Linear(4, 4)}
    layer stack = Sequential(Block(4) for i in range(2))
    h = stack(blocks(x))
    h = towers.a(h) + towers["b"](h)
    outs = [heads[i](h) for i in range(3)]
    output y = outs[0] - outs[1] + heads[-1](h) * heads[1:][0](h)
    for key in towers { h = towers[key](h) }
    for blk in blocks[::2] { h = blk(h) }
    output z = h
}
"""


def torch_twin():
    """The same model in PyTorch, its modules made in the .dlg declaration order."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(c, c), nn.Linear(c, c)

        def forward(self, x):
            return x + self.fc2(torch.relu(self.fc1(x)))

    class Tower(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.convs = nn.ModuleList(nn.Linear(c, c) for _ in range(2))

        def forward(self, x):
            for conv in self.convs:
                x = torch.tanh(conv(x))
            return x

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.Sequential(Block(4), nn.Sequential(nn.Linear(4, 4), nn.ReLU()),
                                        Block(4))
            self.heads = nn.ModuleList(nn.Linear(4, 2) for _ in range(3))
            self.towers = nn.ModuleDict({"a": Tower(4), "b": nn.Linear(4, 4)})
            self.stack = nn.Sequential(*(Block(4) for _ in range(2)))

        def forward(self, x):
            h = self.stack(self.blocks(x))
            h = self.towers.a(h) + self.towers["b"](h)
            outs = [self.heads[i](h) for i in range(3)]
            y = outs[0] - outs[1] + self.heads[-1](h) * self.heads[1:][0](h)
            for key in self.towers:
                h = self.towers[key](h)
            for blk in self.blocks[::2]:
                h = blk(h)
            return y, h

    torch.manual_seed(0)
    return torch, M()


@pytest.fixture(scope="module")
def model():
    return dlg.loads(SOURCE, seed=0)


def test_names_and_results_match_pytorch(model):
    torch, net = torch_twin()
    assert list(model.params) == list(net.state_dict())
    assert model.params["blocks.0.fc1.weight"].shape == (4, 4)
    model.load_state_dict(net.state_dict())
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    y, z = model(x=x)
    want_y, want_z = net(torch.from_numpy(x))
    np.testing.assert_allclose(y, want_y.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z, want_z.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_layer_calls_are_named_like_pytorch_modules(model):
    names = [c.name for c in model.layer_calls]
    assert names[:3] == ["blocks.0.fc1", "blocks.0.fc2", "blocks.0"]
    assert "blocks.1.0" in names and "towers.a.convs.1" in names and "heads.2" in names


def test_comprehensions_of_static_values():
    m = dlg.loads("model M { input x: f32[N, 3] t = [i * i for i in range(4)] "
                  "output y = x * t[3] + sum([k for k in t]) }")
    np.testing.assert_allclose(m(x=np.ones((1, 3), np.float32)), np.full((1, 3), 23.0))


def test_len_of_a_layer_list_loops_over_it_by_index():
    m = dlg.loads("""model M {
        input x: f32[N, 4]
        layer fcs = [Linear(4, 4) for i in range(3)]
        layer towers = {a: Linear(4, 4), b: Linear(4, 4)}
        h = x
        for i in range(len(fcs)) { h = relu(fcs[i](h)) }
        output y = h * len(towers)
    }""")
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    want = x
    for i in range(3):
        want = np.maximum(want @ m.params[f"fcs.{i}.weight"].T + m.params[f"fcs.{i}.bias"], 0)
    np.testing.assert_allclose(m(x=x), want * 2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("src", [
    "layer s = Sequential(A(), B(1, k=2))", "layer s = Sequential(A(c) for c in (1, 2))",
    "layer l = [A(i) for i in range(3)]", "layer l = [A(), [B(), C()], {a: D()}]",
    'layer d = {a: A(), "b-c": B(), "for": C(), d: Sequential(E())}', "layer e = []",
    "layer f = {}", "y = [f(i) for i in g(x)[1:]]", "y = heads[i](x)", "y = d.a.b[0](x)",
])
def test_format_round_trips(src):
    module = parse(f"model M {{ {src} }}")
    text = format_module(module)
    assert parse(text) == module and format_module(parse(text)) == text


M = "model M { input x: f32[N, 4] "
X = M + "layer h = [Linear(4, 4), Linear(4, 4)] "
D = M + "layer t = {a: Linear(4, 4)} "


@pytest.mark.parametrize("src, cls, where, pattern", [
    (X + "output y = h[2](x) }", DlgValueError, "1:80",
     r"index 2 is out of range for ModuleList h \(2 layers\)"),
    (X + "output y = h[-3](x) }", DlgValueError, "1:80", r"index -3 is out of range"),
    (X + "output y = h[x](x) }", DlgTypeError, "1:80",
     r"a layer list index must be an int known when the model is built, got a tensor"),
    (X + "output y = h(x) }", DlgTypeError, "1:80",
     r"ModuleList h \(2 layers\) is not callable: call its layers \(h\[0\]\(x\)"),
    (X + "output y = h.fc(x) }", DlgNameError, "1:80", r"has numbered layers: index it, h\[0\]"),
    (X + "layer f = Linear(4, 4) for l in f { x = l(x) } output y = x }", DlgTypeError, "1:101",
     r"`for` iterates over a tuple, range\(\.\.\.\) or a layer list, got layer f \(Linear\)"),
    (D + "output y = t.b(x) }", DlgNameError, "1:69",
     r"ModuleDict t \(1 layer\) has no layer 'b'"),
    (D + "output y = t[0](x) }", DlgTypeError, "1:69", r"is indexed by a key string, got int 0"),
    (M + 'layer t = {"a.b": Linear(4, 4)} output y = x }', DlgNameError, "1:48",
     r"a layer name cannot be empty or contain '\.', got 'a\.b'"),
    (M + "layer t = {a: ReLU(), a: ReLU()} output y = x }", DlgSyntaxError, "1:55",
     r"key 'a' is given twice"),
    (X + "output y = Sequential(x) }", DlgTypeError, "1:80",
     r"Sequential\(\.\.\.\) makes a layer list: declare it with `layer name = Sequential"),
    (X + "layer s = Sequential(Linear(4, 4), bias=true) output y = x }", DlgTypeError, "1:104",
     r"Sequential takes layers, not keyword arguments"),
    (X + "layer s = Sequential(ReLU()) output y = s(x, x) }", DlgTypeError, "1:109",
     r"Sequential s takes one argument, got 2"),
    (X + "layer s = [ReLU(), 3] output y = x }", DlgTypeError, "1:88",
     r"a layer declaration needs a call, .* or a layer list"),
    (X + "layer s = [ReLU() for i in 3] output y = x }", DlgTypeError, "1:96",
     r"`for` iterates over a tuple, range\(\.\.\.\) or a layer list, got int 3"),
    (X + "y = {a: x} output z = x }", DlgTypeError, "1:73", r"\{name: \.\.\.\} declares named"),
    (M + "layer h = ModuleList([ReLU()]) output y = x }", DlgNameError, "1:40",
     r"a ModuleList is written in brackets: `layer heads = \[Linear"),
])
def test_misuse_is_a_located_error(src, cls, where, pattern):
    with pytest.raises(DlgError) as info:
        dlg.loads(src, file="t.dlg")
    e = info.value
    assert type(e) is cls, f"{type(e).__name__}: {e}"
    assert e.span is not None and f"{e.span.line}:{e.span.col}" == where, e.format()
    assert re.search(pattern, e.message), e.message


def test_a_sequential_of_named_layers():
    m = dlg.loads("model M { input x: f32[N, 3] layer s = Sequential({fc: Linear(3, 2), "
                  "act: Sigmoid()}) output y = s(x) - s.fc(x) + s[0](x) }", seed=0)
    p = m.params
    assert list(p) == ["s.fc.weight", "s.fc.bias"]
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    fc = x @ p["s.fc.weight"].T + p["s.fc.bias"]
    np.testing.assert_allclose(m(x=x), 1 / (1 + np.exp(-fc)), rtol=1e-5, atol=1e-6)


def test_a_layer_that_is_its_own_list():
    m = dlg.loads("layer Stage(c: int) { param scale: f32[c] = 2.0 "
                  "layer self = Sequential(Linear(c, c), ReLU()) "
                  "forward(x) { return self(x) * scale } }\n"
                  "model M { input x: f32[N, 3] layer self = [Stage(3), Linear(3, 2)] "
                  "output y = self[1](self[0](x)) }", seed=0)
    p = m.params
    assert list(p) == ["0.scale", "0.0.weight", "0.0.bias", "1.weight", "1.bias"]
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    h = np.maximum(x @ p["0.0.weight"].T + p["0.0.bias"], 0) * 2.0
    np.testing.assert_allclose(m(x=x), h @ p["1.weight"].T + p["1.bias"], rtol=1e-5, atol=1e-6)
