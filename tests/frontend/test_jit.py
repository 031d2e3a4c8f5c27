"""`dlg.jit` against torch.jit: a traced module (compiled code) gives what torch's traced twin
gives with the same weights, gradients included; save/load round-trips it through a .dlgx
file (path or binary file) without the module's class; a scripted module keeps the Python
forward's value-dependent branches as TorchScript does; torch.jit's decorators are no-ops."""

import copy
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dlg  # noqa: E402
import dlg.nn as nn  # noqa: E402


class Encoder(nn.Module):
    """A linear layer into a GRU given its state; returns (pooled, (h, out))."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.rnn = nn.GRU(3, 5, batch_first=True)

    def forward(self, x, h):
        out, h = self.rnn(self.fc(x).relu(), h)
        return out.sum(1), (h, out)


class TorchEncoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.rnn = torch.nn.GRU(3, 5, batch_first=True)

    def forward(self, x, h):
        out, h = self.rnn(self.fc(x).relu(), h)
        return out.sum(1), (h, out)


class Gate(nn.Module):
    """A branch on a tensor's value, and methods under torch.jit's decorators."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        if x.sum() > 0:
            return self.scale(self.fc(x))
        return -x

    @dlg.jit.ignore
    def scale(self, x):
        return x * float(np.sqrt(2.0))  # NumPy: code TorchScript could not compile

    @dlg.jit.export
    def double(self, x):
        return 2 * x

    @dlg.jit.unused
    def debug(self, x):
        raise RuntimeError("not called")


class TorchGate(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 3)

    def forward(self, x):
        if x.sum() > 0:
            return self.scale(self.fc(x))
        return -x

    @torch.jit.ignore
    def scale(self, x):
        return x * float(np.sqrt(2.0))  # NumPy: code TorchScript could not compile

    @torch.jit.export
    def double(self, x):
        return 2 * x

    @torch.jit.unused
    def debug(self, x):
        raise RuntimeError("not called")


def twin_of(net: nn.Module, twin: torch.nn.Module) -> torch.nn.Module:
    twin.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy())
                          for k, v in net.state_dict().items()})
    return twin


def inputs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 6, 4)).astype(np.float32),
            rng.standard_normal((1, n, 5)).astype(np.float32))


def flat(out) -> list[np.ndarray]:
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in flat(o)]
    return [out.detach().numpy()]


def assert_same(got, want) -> None:
    assert isinstance(got, tuple) == isinstance(want, tuple)
    for g, w in zip(flat(got), flat(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def traced():
    dlg.manual_seed(0)
    net = Encoder()
    twin = twin_of(net, TorchEncoder())
    x, h = inputs(2, 0)
    mine = dlg.jit.trace(net, (dlg.tensor(x), dlg.tensor(h)))
    theirs = torch.jit.trace(twin, (torch.from_numpy(x), torch.from_numpy(h)))
    return net, mine, theirs


def test_trace_runs_what_torch_s_trace_runs_with_its_gradients(traced):
    net, mine, theirs = traced
    assert isinstance(mine, dlg.jit.ScriptModule) and isinstance(mine, nn.Module)
    assert list(mine.state_dict()) == list(theirs.state_dict())  # the module's own names
    x, h = inputs(3, 1)  # another batch size than the example's
    got = mine(dlg.tensor(x), dlg.tensor(h))
    want = theirs(torch.from_numpy(x), torch.from_numpy(h))
    assert_same(got, want)
    got[0].sum().backward()
    want[0].sum().backward()
    for (name, p), q in zip(mine.named_parameters(), theirs.parameters(), strict=True):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=name)
    assert net.fc.weight.grad is mine.fc.weight.grad  # the parameters are the module's


def test_save_and_load_round_trip_as_torch_s(traced, tmp_path):
    _, mine, theirs = traced
    buffer = io.BytesIO()
    dlg.jit.save(mine, buffer)
    mine.save(tmp_path / "encoder.pt")
    torch.jit.save(theirs, tmp_path / "torch.pt")
    theirs = torch.jit.load(tmp_path / "torch.pt")
    x, h = inputs(4, 2)
    want = theirs(torch.from_numpy(x), torch.from_numpy(h))
    for loaded in (dlg.jit.load(io.BytesIO(buffer.getvalue())),
                   dlg.jit.load(tmp_path / "encoder.pt")):
        got = loaded(dlg.tensor(x), dlg.tensor(h))
        assert_same(got, want)
        assert sorted(loaded.state_dict()) == sorted(theirs.state_dict())


def test_script_keeps_value_dependent_branches_and_torch_s_decorators():
    dlg.manual_seed(1)
    net = Gate()
    theirs = torch.jit.script(twin_of(net, TorchGate()))
    mine = dlg.jit.script(net)
    assert dlg.jit.script(mine) is mine
    for sign in (1.0, -1.0):
        x = sign * np.abs(np.random.default_rng(3).standard_normal((2, 3))).astype(np.float32)
        assert_same(mine(dlg.tensor(x)), theirs(torch.from_numpy(x)))
        assert_same(mine.double(dlg.tensor(x)), theirs.double(torch.from_numpy(x)))
    with pytest.raises(dlg.DlgValueError, match="needs a tensor's value"):
        dlg.jit.save(mine, io.BytesIO())  # a .dlgx graph has no branches: refused, not frozen


def test_a_scripted_module_saves_as_traced_on_its_first_call(traced):
    net, _, theirs = traced
    mine = dlg.jit.script(net)
    x, h = inputs(2, 5)
    mine(dlg.tensor(x), dlg.tensor(h))
    buffer = io.BytesIO()
    dlg.jit.save(mine, buffer)
    x, h = inputs(6, 6)
    assert_same(dlg.jit.load(io.BytesIO(buffer.getvalue()))(dlg.tensor(x), dlg.tensor(h)),
                theirs(torch.from_numpy(x), torch.from_numpy(h)))


def test_the_legacy_script_module_api_runs_its_python_as_torch_s():
    """class M(torch.jit.ScriptModule) with @torch.jit.script_method (RWKV-4's blocks): a
    module whose methods run as written, state_dict, training and isinstance as torch's."""
    outs = []
    for lib in (torch, dlg):
        class Mix(lib.jit.ScriptModule):
            def __init__(self, lib=lib):
                super().__init__()
                self.time_shift = lib.nn.ZeroPad2d((0, 0, 1, -1))
                self.key = lib.nn.Linear(3, 3, bias=False)
                self.time_mix_k = lib.nn.Parameter(lib.ones(1, 1, 3) * 0.25)

            @lib.jit.script_method
            def forward(self, x):
                xx = self.time_shift(x)
                return self.key(x * self.time_mix_k + xx * (1 - self.time_mix_k))

        m = Mix()
        assert isinstance(m, lib.jit.ScriptModule) and isinstance(m, lib.nn.Module)
        assert sorted(m.state_dict()) == ["key.weight", "time_mix_k"]
        m.key.weight.data.copy_(lib.arange(9.0).reshape(3, 3) / 9)
        m.eval()
        assert not m.training and not m.key.training
        outs.append(m(lib.arange(12.0).reshape(2, 2, 3)).detach().numpy())
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-6)


def test_functions_and_tracing_state():
    seen = []

    def f(x, y):
        seen.append((dlg.jit.is_tracing(), dlg.jit.is_scripting()))
        return (x * y).tanh()

    assert dlg.jit.script(f) is f
    g = dlg.jit.trace(f, (dlg.ones(2, 3), dlg.ones(2, 3)))
    assert seen[-1] == (True, False)
    x = np.random.default_rng(4).standard_normal((4, 3)).astype(np.float32)
    want = torch.jit.trace(lambda a, b: (a * b).tanh(), (torch.ones(2, 3), torch.ones(2, 3)))
    assert_same(g(dlg.tensor(x), dlg.tensor(x)), want(torch.from_numpy(x), torch.from_numpy(x)))
    assert dlg.jit.annotate(list, [1]) == [1] and not dlg.jit.is_tracing()


def test_refusals_are_clear():
    with pytest.raises(dlg.DlgValueError, match="has not been called yet"):
        dlg.jit.save(dlg.jit.script(Gate()), io.BytesIO())
    with pytest.raises(dlg.DlgTypeError, match="takes what dlg.jit.trace or dlg.jit.script"):
        dlg.jit.save(Gate(), io.BytesIO())
    with pytest.raises(dlg.DlgError, match="item"):  # traced at trace time, as torch's
        dlg.jit.trace(lambda x: x * x.sum().item(), dlg.ones(2))
    with pytest.raises(dlg.DlgTypeError, match="needs example_inputs"):
        dlg.jit.trace(Gate())


class Head(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.fc = nn.Linear(4, 1)

    def forward(self, x, *, scale, shift):
        return self.fc(self.encoder(x).relu()) * scale + shift


def test_traced_modules_nest_in_traced_code_and_keywords_load_by_name():
    """A traced submodule's ops join the trace of a module holding it (dlg.compile, save);
    keyword arguments of a loaded module are matched by name, not by order."""
    dlg.manual_seed(2)
    net = Head(dlg.jit.trace(nn.Linear(3, 4), dlg.randn(2, 3)))
    x, scale, shift = dlg.randn(5, 3), dlg.rand(5, 1), dlg.randn(5, 1)
    want = net(x, scale=scale, shift=shift)
    assert_same(dlg.compile(net)(x, scale=scale, shift=shift), want)
    traced = dlg.jit.trace(net, (x,), example_kwarg_inputs={"scale": scale, "shift": shift})
    buffer = io.BytesIO()
    dlg.jit.save(traced, buffer)
    loaded = dlg.jit.load(io.BytesIO(buffer.getvalue()))
    assert_same(loaded(x, shift=shift, scale=scale), want)


def test_a_traced_sequential_indexes_copies_and_trains_as_the_original():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = dlg.randn(5, 3)
    traced = dlg.jit.trace(net, x)
    assert len(traced) == 3 and traced[0] is net[0] and list(traced) == list(net)
    copied = copy.deepcopy(traced)
    copied.load_state_dict({k: v * 0 for k, v in traced.state_dict().items()})
    assert float(copied(x).abs().sum()) == 0 and float(traced(x).abs().sum()) > 0
    opt = dlg.optim.SGD(traced.parameters(), lr=0.1)
    traced(x).sum().backward()
    opt.step()  # the original's parameters moved; the next call reads them
    assert_same(traced(x), torch.from_numpy(net(x).detach().numpy()))
