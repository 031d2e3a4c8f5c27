"""Gradients stop where torch's do, traced and compiled too: `x.detach()` (of a computed tensor
or of a parameter), `no_grad` blocks, parameters that do not require grad and embedding's
padding_idx. Each program is written once over a library (torch or dlg), and trained from the
same weights and data by torch, eager dlg, and dlg's traced step on the interpreter and compiled;
the parameters must agree after every step."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.ir.decompose import decompose
from dlg.ir.ops.custom import STOP_GRADIENT
from dlg.ir.ops.source import CONSTANT

torch = pytest.importorskip("torch")

R = np.random.default_rng(0)
f = lambda *s: R.standard_normal(s).astype(np.float32)  # noqa: E731
X, Y = f(6, 3), f(6, 2)
A_W, B_W = f(2, 3), f(2, 2)


def mse(out, y):
    return ((out - y) ** 2).mean()


class Programs:
    """forward(lib, module, x) per case; the module holds a = Linear(3, 2), b = Linear(2, 2)."""

    @staticmethod
    def detach_factor(lib, m, x):  # the gradient flows through the first factor only
        h = m.a(x)
        return m.b(h * h.detach())

    @staticmethod
    def detach_target(lib, m, x):  # a stop-gradient target: (h - sg(b(h)))^2 pulls h alone
        h = m.a(x)
        return h + (h - m.b(h).detach()) ** 2

    @staticmethod
    def no_grad_block(lib, m, x):
        h = m.a(x)
        with lib.no_grad():
            t = lib.tanh(m.b(h)) * 2
        return h * t + m.b(h)

    @staticmethod
    def detached_parameter(lib, m, x):  # b.weight trains through b and is read detached too
        h = m.a(x)
        return m.b(h) + h @ m.b.weight.detach().t()

    @staticmethod
    def frozen_parameter(lib, m, x):  # b.weight.requires_grad_(False): b.bias still trains
        return m.b(lib.relu(m.a(x)))


CASES = [n for n in vars(Programs) if not n.startswith("_")]


def make(lib, case):
    forward = getattr(Programs, case)

    class Net(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = lib.nn.Linear(3, 2), lib.nn.Linear(2, 2)
            with lib.no_grad():
                self.a.weight.copy_(lib.tensor(A_W))
                self.a.bias.fill_(0.1)
                self.b.weight.copy_(lib.tensor(B_W))
                self.b.bias.fill_(-0.2)
            if case == "frozen_parameter":
                self.b.weight.requires_grad_(False)

        def forward(self, x):
            return forward(lib, self, x)
    return Net()


def torch_steps(case, steps):
    net = make(torch, case)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    states = []
    for _ in range(steps):
        opt.zero_grad()
        mse(net(torch.tensor(X)), torch.tensor(Y)).backward()
        opt.step()
        states.append({k: v.detach().numpy().copy() for k, v in net.state_dict().items()})
    return states


def assert_params(got, want, where):
    for key, value in want.items():
        np.testing.assert_allclose(np.asarray(got[key]), value, rtol=1e-5, atol=1e-6,
                                   err_msg=f"{where}: {key}")


@pytest.mark.parametrize("case", CASES)
def test_eager_steps_match_torch(case):
    net = make(dlg, case)
    opt = dlg.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    for i, want in enumerate(torch_steps(case, 3)):
        opt.zero_grad()
        mse(net(dlg.tensor(X)), dlg.tensor(Y)).backward()
        opt.step()
        assert_params({k: v.detach().numpy() for k, v in net.state_dict().items()}, want,
                      f"eager step {i}")


@pytest.mark.parametrize("compiled", [False, True], ids=["interpreted", "compiled"])
@pytest.mark.parametrize("case", CASES)
def test_traced_steps_match_torch(case, compiled):
    net = make(dlg, case)
    opt = dlg.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    model = dlg.trace_train(net, mse, opt, X, Y)
    step = model.train_step(compiled=compiled)
    for i, want in enumerate(torch_steps(case, 3)):
        step(x=X, y=Y)
        assert_params(model.params, want, f"traced step {i}")


def test_traced_detach_is_a_stop_gradient_node_the_compiler_removes():
    """The traced graph holds the cut (not a constant copy of a parameter's values), and
    decomposing after autodiff leaves none: the compiled step pays nothing for it."""
    net = make(dlg, "detached_parameter")
    g = dlg.trace(net, X).graph
    assert sum(n.op is STOP_GRADIENT for n in g) == 1
    assert not any(n.op is CONSTANT and n.types[0].shape == (2, 2) for n in g)
    assert not any(n.op is STOP_GRADIENT for n in decompose(g))


def test_no_grad_cuts_each_value_once():
    """A no_grad block reads each outside value through one stop_gradient; what it computes
    from them needs none."""
    net = make(dlg, "no_grad_block")
    g = dlg.trace(net, X).graph
    cut = [g.node(n.inputs[0]).op.name for n in g if n.op is STOP_GRADIENT]
    assert sorted(cut) == ["linear", "param", "param"]  # h, b.weight, b.bias


# ---- nn.Embedding(padding_idx=...) ----------------------------------------------------------
TOKENS = np.array([[1, 0, 3, 0], [2, 2, 0, 4], [0, 0, 0, 1]], np.int64)  # 0: padding
TARGET = f(3, 2)
TABLE, HEAD = f(5, 4), f(2, 4)


def embedder(lib, padding_idx):
    class Bag(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = lib.nn.Embedding(5, 4, padding_idx=padding_idx)
            self.head = lib.nn.Linear(4, 2)
            with lib.no_grad():
                self.emb.weight.copy_(lib.tensor(TABLE))
                self.head.weight.copy_(lib.tensor(HEAD))
                self.head.bias.zero_()

        def forward(self, tokens):
            return self.head(self.emb(tokens).sum(1))
    return Bag()


@pytest.mark.parametrize("padding_idx", [0, -5])
@pytest.mark.parametrize("compiled", [False, True], ids=["interpreted", "compiled"])
def test_embedding_padding_row_stays_fixed_in_traced_training(padding_idx, compiled):
    theirs = embedder(torch, padding_idx)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.5, momentum=0.9)
    ours = embedder(dlg, padding_idx)
    opt = dlg.optim.SGD(ours.parameters(), lr=0.5, momentum=0.9)
    model = dlg.trace_train(ours, mse, opt, TOKENS, TARGET)
    step = model.train_step(compiled=compiled)
    for i in range(3):
        step(x=TOKENS, y=TARGET)
        topt.zero_grad()
        mse(theirs(torch.tensor(TOKENS)), torch.tensor(TARGET)).backward()
        topt.step()
        assert_params(model.params, {k: v.detach().numpy() for k, v in
                                     theirs.state_dict().items()}, f"step {i}")
    np.testing.assert_array_equal(model.params["emb.weight"][0], TABLE[0])
    assert not np.allclose(model.params["emb.weight"][1:], TABLE[1:])


def test_traced_embedding_reads_the_padding_row_from_the_parameter():
    """The padding row comes from the weight as it is at run time (load a state_dict after
    tracing), not from a copy taken when tracing."""
    ours, theirs = embedder(dlg, 0), embedder(torch, 0)
    model = dlg.trace(ours.eval(), TOKENS)
    table = TABLE.copy()
    table[0] = 7.0
    with torch.no_grad():
        theirs.emb.weight.copy_(torch.tensor(table))
    model.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    np.testing.assert_allclose(model(TOKENS), theirs(torch.tensor(TOKENS)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


# ---- the .dlg spelling and the functional form ------------------------------------------------
def test_traced_detach_prints_as_dlg_and_loads_back():
    net = make(dlg, "detach_target")
    traced = dlg.trace(net, X)
    source = traced.to_dlg()
    assert "detach(" in source
    again = dlg.loads(source)
    assert [n.op.name for n in again.graph] == [n.op.name for n in traced.graph]
    again.load_state_dict(traced.state_dict())
    np.testing.assert_allclose(again(X), traced(X), rtol=1e-6)


def test_dlg_detach_is_torch_detach():
    """dlg.detach(x) shares x's storage and records nothing, as torch.detach."""
    x = dlg.tensor([1.0, 2.0], requires_grad=True)
    d = dlg.detach(x * 1)
    assert not d.requires_grad and d.is_leaf
    y = dlg.tensor([3.0, 4.0])
    assert dlg.detach(y).numpy_view() is y.numpy_view()
    (x * dlg.detach(x)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0])
