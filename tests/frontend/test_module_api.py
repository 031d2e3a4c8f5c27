"""Module API torch programs use beyond the core, against torch: dtype conversion (`double`,
`float`, `half`, `to(dtype)`, `to(device, dtype)`), lookup by dotted name, forward hooks with
removable handles, gradient hooks on tensors (`Tensor.register_hook`) and modules' full
backward hooks."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.errors import DlgTypeError, DlgValueError

torch = pytest.importorskip("torch")


def _pair(lib):
    return lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.BatchNorm1d(3), lib.nn.Linear(3, 1))


def _dtypes(module):
    return {k: str(v.dtype).removeprefix("torch.") if isinstance(v, torch.Tensor)
            else v.dtype.torch_name for k, v in module.state_dict().items()}


@pytest.mark.parametrize("convert", [
    lambda m, lib: m.double(), lambda m, lib: m.half(), lambda m, lib: m.double().float(),
    lambda m, lib: m.to(lib.float64), lambda m, lib: m.to("cpu", lib.float64),
    lambda m, lib: m.to(device="cpu", dtype=lib.float16),
    lambda m, lib: m.to(lib.zeros(1, dtype=lib.float64))],
    ids=["double", "half", "float", "to-dtype", "to-device-dtype", "keywords", "to-tensor"])
def test_dtype_conversion_as_torch(convert):
    ours, theirs = _pair(dlg), _pair(torch)
    params = list(ours.parameters())
    assert convert(ours, dlg) is ours
    convert(theirs, torch)
    assert _dtypes(ours) == _dtypes(theirs)  # floats converted, num_batches_tracked kept int64
    assert [p is q for p, q in zip(params, ours.parameters())] == [True] * len(params)


def test_a_double_model_computes_and_trains_in_float64():
    dlg.manual_seed(0)
    model = dlg.nn.Linear(2, 1)
    opt = dlg.optim.SGD(model.parameters(), lr=0.1)  # made before the conversion, as is usual
    model.double()
    loss = model(dlg.ones(4, 2, dtype=dlg.float64)).pow(2).mean()
    assert loss.dtype == dlg.float64
    loss.backward()
    assert model.weight.grad.dtype == dlg.float64
    before = model.weight.detach().numpy().copy()
    opt.step()
    assert model.weight.dtype == dlg.float64
    assert not np.allclose(before, model.weight.detach().numpy())


@pytest.mark.parametrize("call, error, message", [
    (lambda m: m.to("cuda"), DlgValueError, "eager dlg modules run on the cpu"),
    (lambda m: m.to(dlg.int64), DlgTypeError, "only accepts floating point dtypes"),
    (lambda m: m.to(dlg.float64, copy=True), DlgTypeError, "unexpected keyword")])
def test_wrong_conversions_are_dlg_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(dlg.nn.Linear(2, 2))


def test_lookup_by_dotted_name_as_torch():
    def net(lib):
        outer = lib.nn.Module()
        outer.block = lib.nn.Sequential(lib.nn.Linear(2, 2), lib.nn.BatchNorm1d(2))
        return outer

    ours, theirs = net(dlg), net(torch)
    assert ours.get_submodule("") is ours and ours.get_submodule("block.1") is ours.block[1]
    assert ours.get_parameter("block.0.weight") is ours.block[0].weight
    assert ours.get_buffer("block.1.running_mean") is ours.block[1].running_mean
    for call in (lambda m: m.get_submodule("block.2"), lambda m: m.get_submodule("nope.x"),
                 lambda m: m.get_parameter("block.0.nope"),
                 lambda m: m.get_parameter("block.1.running_mean"),
                 lambda m: m.get_buffer("block.0.weight")):
        with pytest.raises(AttributeError) as theirs_error:
            call(theirs)
        with pytest.raises(AttributeError, match=str(theirs_error.value).split(" ")[-1]):
            call(ours)
    assert [n for n, _ in ours.named_parameters(prefix="net")] == [
        n for n, _ in theirs.named_parameters(prefix="net")]


def _hooked(lib, log):
    m = lib.nn.Linear(2, 2)
    m.weight.data, m.bias.data = lib.tensor([[1.0, 2.0], [3.0, 4.0]]), lib.tensor([0.5, -1.0])
    handles = [
        m.register_forward_pre_hook(lambda mod, args: log.append("pre") or (args[0] * 2,)),
        m.register_forward_pre_hook(lambda mod, args: log.append("first"), prepend=True),
        m.register_forward_hook(lambda mod, args, out: log.append(("post", args[0].tolist()))
                                or out + 1),
        m.register_forward_pre_hook(
            lambda mod, args, kwargs: log.append("kw") or ((args[0] + 1,), kwargs),
            with_kwargs=True),
        m.register_forward_hook(lambda mod, args, kwargs, out: log.append("kwpost"),
                                with_kwargs=True)]
    return m, handles


def test_forward_hooks_as_torch():
    logs = {dlg: [], torch: []}
    outs = {}
    for lib in (dlg, torch):
        m, handles = _hooked(lib, logs[lib])
        x = lib.ones(1, 2)
        outs[lib] = [m(x).tolist()]
        handles[0].remove()
        with handles[2]:
            outs[lib].append(m(x).tolist())
        outs[lib].append(m(x).tolist())  # the `with` removed the output hook
    assert logs[dlg] == logs[torch]
    assert np.allclose(outs[dlg], outs[torch])


def test_forward_hooks_see_the_traced_call():
    m = dlg.nn.Linear(2, 2)
    m.register_forward_hook(lambda mod, args, out: out * 0)
    exe = dlg.compile(m, np.ones((3, 2), np.float32))
    assert not np.any(exe(np.ones((3, 2), np.float32)))


def _grad_hooks(lib, calls):
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = lib.tensor([0.5, -1.0, 2.0], requires_grad=True)
    h = x * w
    h.retain_grad()
    h.register_hook(lambda g: calls.append(("h", g.tolist())) or g * 10)
    x.register_hook(lambda g: calls.append(("x", g.tolist())))
    removed = x.register_hook(lambda g: g * 1000)
    removed.remove()
    x.register_hook(lambda g: g + 1)
    e = h.exp()
    e.register_hook(lambda g: calls.append(("e", g.tolist())) or g * 0)
    ((h * h).sum() + h.sum() + e.sum()).backward()
    return [x.grad.tolist(), w.grad.tolist(), h.grad.tolist()]


def test_gradient_hooks_as_torch():
    ours, theirs = [], []
    assert np.allclose(_grad_hooks(dlg, ours), _grad_hooks(torch, theirs))
    assert [(n, np.round(g, 5).tolist()) for n, g in ours] == [
        (n, np.round(g, 5).tolist()) for n, g in theirs]


def test_post_accumulate_grad_hooks_fuse_the_optimizer_into_backward_as_torch():
    """The tutorial's optimizer step in backward: one optimizer per parameter, stepped and
    zeroed by each parameter's post-accumulate-grad hook; a removed hook leaves .grad."""
    def run(lib):
        torch.manual_seed(0)
        theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
                                     torch.nn.Linear(8, 2))
        model = theirs if lib is torch else lib.nn.Sequential(
            lib.nn.Linear(4, 8), lib.nn.Tanh(), lib.nn.Linear(8, 2))
        if lib is dlg:
            model.load_state_dict({k: dlg.tensor(v.detach().numpy())
                                   for k, v in theirs.state_dict().items()})
        optimizers = {p: lib.optim.Adam([p], lr=0.01, foreach=False)
                      for p in model.parameters()}

        def optimizer_hook(parameter):
            optimizers[parameter].step()
            optimizers[parameter].zero_grad()
        handles = [p.register_post_accumulate_grad_hook(optimizer_hook)
                   for p in model.parameters()]
        x = lib.tensor(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32))
        for _ in range(3):
            model(x).square().mean().backward()
        assert all(p.grad is None for p in model.parameters())
        handles[0].remove()
        model(x).square().mean().backward()
        return [p.detach().numpy().copy() for p in model.parameters()] + [
            model[0].weight.grad.numpy()]

    for ours, theirs in zip(run(dlg), run(torch)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    with pytest.raises(DlgValueError, match="non-leaf"):
        (dlg.ones(2, requires_grad=True) * 2).register_post_accumulate_grad_hook(print)


def test_a_gradient_hook_cannot_change_the_shape_nor_hook_a_constant():
    x = dlg.ones(3, requires_grad=True)
    x.register_hook(lambda g: g.sum())
    with pytest.raises(DlgValueError, match=r"changed the size of the gradient from \[3\] to \[\]"):
        (x * 2).sum().backward()
    with pytest.raises(DlgValueError, match="doesn't require gradient"):
        dlg.ones(3).register_hook(print)


def test_autograd_grad_runs_gradient_hooks_as_torch():
    def grads(lib):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        x.register_hook(lambda g: g * 2)
        h = x * 3
        h.register_hook(lambda g: g + 1)
        return [lib.autograd.grad((h * h).sum(), t)[0].tolist() for t in (x, h)]

    assert grads(dlg) == grads(torch)


def _backward_hooked(lib, log):
    """Grad-CAM's capture, guided backprop's replacement, a pre-hook scaling grad_output, a
    two-input module, a removed hook, and a first layer whose input needs no gradient."""
    nn = lib.nn

    class Pair(nn.Module):
        def forward(self, a, scale, b):
            return a * b * scale, a - b

    first, act, last, pair = nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), Pair()
    weights = np.random.default_rng(1).standard_normal(3 * 4 + 4 + 4 * 2 + 2)
    for p in (*first.parameters(), *last.parameters()):
        with lib.no_grad():
            p.copy_(lib.tensor(weights[:p.numel()].reshape(p.shape)))
        weights = weights[p.numel():]
    arrays = lambda gs: [None if g is None else g.tolist() for g in gs]  # noqa: E731
    first.register_full_backward_hook(
        lambda m, gi, go: log.append(("first", arrays(gi), arrays(go))))
    act.register_full_backward_hook(lambda m, gi, go: (gi[0].clamp(min=0.0),))
    last.register_full_backward_pre_hook(lambda m, go: (go[0] * 3,))
    pair.register_full_backward_hook(
        lambda m, gi, go: log.append(("pair", arrays(gi), arrays(go))) or (gi[0], None, -gi[2]))
    pair.register_full_backward_hook(lambda m, gi, go: log.append("removed")).remove()
    x = lib.tensor([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]])
    a = lib.tensor([1.0, 2.0], requires_grad=True)
    b = lib.tensor([3.0, -1.0], requires_grad=True)
    out = last(act(first(x)))
    p, q = pair(a, 2.0, b)
    (out.pow(2).sum() + (p * q).sum()).backward()
    return [first.weight.grad.tolist(), last.weight.grad.tolist(), a.grad.tolist(),
            b.grad.tolist()]


def test_full_backward_hooks_as_torch():
    ours, theirs = [], []
    for got, want in zip(_backward_hooked(dlg, ours), _backward_hooked(torch, theirs)):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert len(ours) == len(theirs) == 2
    for (name, gi, go), (want_name, want_gi, want_go) in zip(ours, theirs):
        assert name == want_name
        for got, want in zip(gi + go, want_gi + want_go):
            assert (got is None) == (want is None)
            if want is not None:
                np.testing.assert_allclose(got, want, rtol=1e-6)


def test_backward_hooks_are_left_out_of_traces_and_no_grad():
    m = dlg.nn.Linear(2, 2)
    calls = []
    m.register_full_backward_hook(lambda *a: calls.append(a))
    exe = dlg.compile(m, np.ones((3, 2), np.float32))
    np.testing.assert_allclose(exe(np.ones((3, 2), np.float32)),
                               m(dlg.ones(3, 2)).detach().numpy(), rtol=1e-6)
    with dlg.no_grad():
        assert m(dlg.ones(3, 2)).record is None
    assert not calls
    with pytest.raises(DlgValueError, match="register_full_backward_hook"):
        m.register_backward_hook(print)


def _causal_conv(lib):
    """A subclass that sets a plain attribute before super().__init__(), as TCN code does
    (dlg refused it: 'must call super().__init__() before assigning')."""
    class CausalConv1d(lib.nn.Conv1d):
        def __init__(self, cin, cout, k, dilation=1):
            self.__padding = (k - 1) * dilation
            super().__init__(cin, cout, k, padding=self.__padding, dilation=dilation)

        def forward(self, x):
            return super().forward(x)[:, :, :-self.__padding]
    return CausalConv1d(2, 3, 3, dilation=2)


def test_plain_attributes_may_come_before_super_init_as_in_torch():
    ours, theirs = _causal_conv(dlg), _causal_conv(torch)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 2, 7)).astype(np.float32)
    np.testing.assert_allclose(ours(dlg.tensor(x)).detach().numpy(),
                               theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_set_submodule_swaps_a_layer_in_place_as_torch():
    """Model surgery by dotted path (torch 2.3's set_submodule): the new layer takes the old
    one's place; torch's errors for a missing path, a non-module and strict."""
    def swapped(lib):
        nn = lib.nn
        model = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.Linear(3, 3), nn.ReLU()))
        model.set_submodule("1.0", nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 3)))
        model.set_submodule("2", nn.Tanh())
        return [n for n, _ in model.named_modules()], list(model.state_dict())

    assert swapped(dlg) == swapped(torch)
    model = dlg.nn.Sequential(dlg.nn.Linear(2, 3))
    with pytest.raises(DlgValueError, match="not an nn.Module"):
        model.set_submodule("0", 3)
    with pytest.raises(AttributeError, match="has no attribute `5`"):
        model.set_submodule("5", dlg.nn.ReLU(), strict=True)
    with pytest.raises(AttributeError, match="`weight` is not an nn.Module"):
        model.set_submodule("0.weight", dlg.nn.ReLU())


def test_nn_buffer_registers_a_buffer_as_torch():
    """torch >= 2.5's nn.Buffer: assigned to an attribute it is a buffer (a plain tensor),
    persistent or not."""
    def tables(lib):
        m = lib.nn.Module()
        m.x = lib.nn.Buffer(lib.ones(2), persistent=False)
        m.y = lib.nn.Buffer(lib.zeros(1))
        m.q = lib.nn.Linear(1, 1)
        m.x = lib.nn.Buffer(lib.ones(3))  # persistent now
        return (type(m.x).__name__, m.x.requires_grad, list(m.state_dict()),
                [n for n, _ in m.named_buffers()], [n for n, _ in m.named_parameters()])

    assert tables(dlg) == tables(torch)


def test_assigning_anew_keeps_the_place_as_torch():
    """A parameter or submodule assigned under its own name again keeps its place in
    named_parameters and state_dict (wrapping a layer in an adapter: `m.q = LoRA(m.q)`)."""
    def orders(lib):
        nn = lib.nn
        m = nn.Module()
        m.a, m.b, m.c = nn.Linear(1, 1), nn.Linear(1, 1), nn.Linear(1, 1)
        m.p, m.q = nn.Parameter(lib.zeros(1)), nn.Parameter(lib.zeros(1))
        m.a = nn.Sequential(m.a)
        m.p = nn.Parameter(lib.ones(1))
        m.b = nn.Parameter(lib.ones(1))  # a module's name taken by a parameter moves it
        return [n for n, _ in m.named_children()], list(m.state_dict())

    assert orders(dlg) == orders(torch)


@pytest.mark.parametrize("value", [lambda: dlg.nn.Linear(1, 1),
                                   lambda: dlg.nn.Parameter(dlg.ones(1))])
def test_modules_and_parameters_before_super_init_are_errors(value):
    class Early(dlg.nn.Module):
        def __init__(self):
            self.layer = value()
            super().__init__()
    with pytest.raises(DlgValueError, match=r"Early.__init__ must call super\(\).__init__\(\) "
                                            r"before assigning 'layer'"):
        Early()


@pytest.mark.parametrize("set_to_none", [True, False])
def test_module_zero_grad_and_register_module_as_torch(set_to_none):
    def grads(lib):
        m = lib.nn.Module()
        m.register_module("fc", lib.nn.Linear(2, 1))
        m.fc(lib.ones(3, 2)).sum().backward()
        m.zero_grad(set_to_none=set_to_none)
        return [None if p.grad is None else p.grad.tolist() for p in m.parameters()]

    assert grads(dlg) == grads(torch)


# torch.func.functional_call / torch.nn.utils.stateless.functional_call
def _maml_step(lib, functional_call):
    """Two inner SGD steps through functional_call with create_graph, the query loss
    differentiated back to the parameters (second order), a buffer given too."""
    lib.manual_seed(0)
    net = _pair(lib).eval()
    if lib is dlg:
        net.load_state_dict({k: dlg.tensor(v.numpy()) for k, v in _TORCH_STATE.items()})
    x = lib.tensor(np.linspace(-1, 1, 10, dtype=np.float32).reshape(5, 2))
    y = lib.tensor(np.linspace(0, 1, 5, dtype=np.float32).reshape(5, 1))
    params = dict(net.named_parameters())
    buffers = {"1.running_mean": lib.full((3,), 0.25)}
    for _ in range(2):
        loss = lib.nn.functional.mse_loss(functional_call(net, (params, buffers), (x,)), y)
        grads = lib.autograd.grad(loss, list(params.values()), create_graph=True)
        params = {n: p - 0.1 * g for (n, p), g in zip(params.items(), grads)}
    query = lib.nn.functional.mse_loss(functional_call(net, params, x * 2), y)
    query.backward()
    return query.item(), {n: p.grad.numpy() for n, p in net.named_parameters()}


torch.manual_seed(0)
_TORCH_STATE = _pair(torch).state_dict()


@pytest.mark.parametrize("spelling", ["func", "stateless"])
def test_functional_call_second_order_as_torch(spelling):
    ours = (dlg.func.functional_call if spelling == "func"
            else dlg.nn.utils.stateless.functional_call)
    loss, grads = _maml_step(dlg, ours)
    want_loss, want_grads = _maml_step(torch, torch.func.functional_call)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    for name, g in want_grads.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-4, atol=1e-6, err_msg=name)


def test_functional_call_restores_the_module_and_ties_weights():
    net = dlg.nn.Sequential(dlg.nn.Linear(2, 2, bias=False), dlg.nn.Linear(2, 2, bias=False))
    net[1].weight = net[0].weight  # tied, as an embedding and its output layer
    x = dlg.ones(1, 2)
    before = net(x).detach().numpy()
    eye = dlg.eye(2)
    np.testing.assert_array_equal(dlg.func.functional_call(net, {"0.weight": eye}, x).numpy(),
                                  [[1, 1]])
    untied = dlg.func.functional_call(net, {"0.weight": eye}, (x,), tie_weights=False)
    np.testing.assert_allclose(untied.detach().numpy(), (net[1].weight @ dlg.ones(2, 1)).T
                               .detach().numpy(), rtol=1e-6)
    with pytest.raises(dlg.DlgShapeError):
        dlg.func.functional_call(net, {"0.weight": dlg.eye(3)}, x)  # fails inside forward
    assert net[0].weight is net[1].weight and isinstance(net[0].weight, dlg.nn.Parameter)
    np.testing.assert_array_equal(net(x).detach().numpy(), before)


@pytest.mark.parametrize("call, pattern", [
    (lambda net, x: dlg.func.functional_call(net, {"2.weight": x}, x),
     r"Sequential has no submodule '2' \(key '2.weight'\)"),
    (lambda net, x: dlg.func.functional_call(net, {"0.scale": x}, x),
     r"Linear has no parameter or buffer 'scale'"),
    (lambda net, x: dlg.func.functional_call(net, ({"0.bias": x}, {"0.bias": x}), x),
     r"multiple values for keys \['0.bias'\]"),
    (lambda net, x: dlg.func.functional_call(net, {"0.bias": x}, x, strict=True),
     r"Missing key\(s\): '0.weight', '1.bias'"),
    (lambda net, x: dlg.func.functional_call(net, [1], x), r"expected a dict of name"),
    (lambda net, x: dlg.func.functional_call(net, {"0.bias": 1.0}, x), r"must be tensors"),
])
def test_functional_call_bad_calls(call, pattern):
    net = dlg.nn.Sequential(dlg.nn.Linear(2, 2), dlg.nn.BatchNorm1d(2))
    with pytest.raises(dlg.DlgError, match=pattern):
        call(net, dlg.ones(2))


def test_state_dict_options_as_torch():
    """keep_vars (the parameters themselves, as EMA and copying code read them), prefix and
    destination, by keyword and in torch's deprecated positions."""
    net = _pair(dlg)
    kept = net.state_dict(keep_vars=True)
    assert kept["0.weight"] is net[0].weight and kept["0.weight"].requires_grad
    assert not net.state_dict()["0.weight"].requires_grad
    into: dict = {"other": 1}
    out = net.state_dict(destination=into, prefix="model.")
    assert out is into and list(out)[1:] == ["model." + k for k in net.state_dict()]
    theirs = _pair(torch).state_dict(None, "m.", True)
    ours = net.state_dict(None, "m.", True)
    assert list(ours) == list(theirs) and ours["m.0.weight"] is net[0].weight


def test_detach_in_place_makes_a_leaf():
    """hidden.detach_() between truncated-BPTT chunks: a leaf without gradient, same values;
    traced, the gradient stops there."""
    w = dlg.tensor([2.0], requires_grad=True)
    h = w * 3
    assert h.detach_() is h and h.is_leaf and not h.requires_grad and h.grad_fn is None
    (h * w).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [6.0])

    def f(x, w):
        h = x * w
        h.detach_()
        return (h * w).sum()

    x = np.ones(3, np.float32)
    wt = dlg.tensor([2.0], requires_grad=True)
    traced = dlg.trace(f, x, wt)
    np.testing.assert_allclose(np.asarray(traced(x, np.float32([2.0]))), 12.0)


FACTORY_MODULES = [
    lambda nn, **k: nn.Linear(3, 4, bias=False, **k), lambda nn, **k: nn.Bilinear(2, 3, 4, **k),
    lambda nn, **k: nn.Embedding(5, 3, **k), lambda nn, **k: nn.EmbeddingBag(5, 3, **k),
    lambda nn, **k: nn.PReLU(**k), lambda nn, **k: nn.MultiheadAttention(4, 2, **k),
    lambda nn, **k: nn.Conv2d(2, 3, 3, **k), lambda nn, **k: nn.ConvTranspose1d(2, 3, 3, **k),
    lambda nn, **k: nn.BatchNorm2d(3, **k), lambda nn, **k: nn.GroupNorm(1, 3, **k),
    lambda nn, **k: nn.InstanceNorm1d(3, affine=True, **k), lambda nn, **k: nn.LayerNorm(3, **k),
    lambda nn, **k: nn.RMSNorm(3, **k), lambda nn, **k: nn.GRU(3, 4, **k),
    lambda nn, **k: nn.LSTMCell(3, 4, **k),
    lambda nn, **k: nn.TransformerEncoderLayer(4, 2, 8, **k),
    lambda nn, **k: nn.Transformer(4, 2, 1, 1, 8, **k),
]


@pytest.mark.parametrize("make", FACTORY_MODULES)
def test_modules_take_torchs_device_and_dtype(make):
    """factory_kwargs as torch programs pass them (Llama-style blocks): the state_dict's
    names and dtypes are torch's for dtype=float64; device must be the CPU."""
    options = {"device": "cpu", "dtype": torch.float64}
    theirs = {k: str(v.dtype).removeprefix("torch.")
              for k, v in make(torch.nn, **options).state_dict().items()}
    ours = make(dlg.nn, device=dlg.device("cpu"), dtype=dlg.float64)
    assert {k: v.dtype.torch_name for k, v in ours.state_dict().items()} == theirs
    assert all(v.dtype.torch_name != "float64" for v in make(dlg.nn, device=None).state_dict()
               .values())
    with pytest.raises(DlgValueError, match="device 'cuda'.*live on the CPU"):
        make(dlg.nn, device="cuda")


@pytest.mark.parametrize("cls, args", [("Linear", (3, 4, True)), ("Conv2d", (1, 2, 3, 1, 0, 1, 1,
                                                                     True, "zeros")),
                                        ("LayerNorm", (4, 1e-5, True, True))])
def test_device_and_dtype_positionally_as_torch(cls, args):
    """torch declares device and dtype after a module's own parameters (mnist_forward_forward's
    `super().__init__(in_features, out_features, bias, device, dtype)`): positional too."""
    import inspect

    ours, theirs = getattr(dlg.nn, cls), getattr(torch.nn, cls)
    assert list(inspect.signature(ours.__init__).parameters)[-2:] == ["device", "dtype"]
    assert list(inspect.signature(ours.__init__).parameters) == list(
        inspect.signature(theirs.__init__).parameters)[:len(args) + 3]
    made = ours(*args, None, dlg.float64)
    assert all(v.dtype == dlg.float64 for v in made.state_dict().values())
    assert all(v.dtype == dlg.float32 for v in ours(*args, "cpu").state_dict().values())
    with pytest.raises(DlgValueError, match="device 'cuda'"):
        ours(*args, "cuda")


def test_lazy_linear_draws_its_parameters_in_its_dtype():
    m = dlg.nn.LazyLinear(4, dtype=dlg.float64)
    assert m(dlg.ones(2, 3, dtype=dlg.float64)).dtype == dlg.float64
    assert m.weight.dtype == dlg.float64 and type(m) is dlg.nn.Linear


def test_load_state_dict_assign_as_torch():
    """assign=True: the given tensors become the parameters (their dtype kept, requires_grad
    the old parameters'), buffers too; the module's outputs are the state's."""
    theirs = _pair(torch).double()
    ours = _pair(dlg)
    old = ours[0].weight
    ours[0].weight.requires_grad_(False)
    result = ours.load_state_dict(theirs.state_dict(), assign=True)
    assert result.missing_keys == result.unexpected_keys == []
    assert ours[0].weight is not old and isinstance(ours[0].weight, dlg.nn.Parameter)
    assert ours[0].weight.dtype == dlg.float64 and not ours[0].weight.requires_grad
    assert ours[2].weight.requires_grad and ours[1].running_var.dtype == dlg.float64
    x = np.linspace(-1, 1, 8).reshape(4, 2)
    ours.eval(), theirs.eval()
    np.testing.assert_allclose(ours(dlg.tensor(x)).detach().numpy(),
                               theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12)


def test_dtype_switches_name_what_dlg_lacks():
    dlg.set_default_dtype(dlg.float32)
    assert dlg.get_default_dtype() == dlg.float32
    with pytest.raises(DlgValueError, match=r"default float dtype is float32 and cannot be "
                                            r"changed; make dlg.float64 tensors with dtype="):
        dlg.set_default_dtype(dlg.float64)
    with pytest.raises(DlgTypeError, match="dlg has no bfloat16 tensors"):
        dlg.ones(2).bfloat16()


def test_init_functions_draw_from_a_generator():
    """torch's nn.init take generator=: the same seed gives the same weights, another seed
    other ones, and dlg's own generator is left alone."""
    def draw(fn, seed, *args):
        return fn(dlg.empty(4, 5), *args, generator=dlg.Generator().manual_seed(seed)).numpy()

    init = dlg.nn.init
    for fn, args in [(init.uniform_, (-1, 1)), (init.normal_, (0, 2)), (init.xavier_uniform_, ()),
                     (init.xavier_normal_, ()), (init.kaiming_uniform_, ()),
                     (init.kaiming_normal_, ()), (init.trunc_normal_, (0, 0.02)),
                     (init.orthogonal_, ()), (init.sparse_, (0.5,))]:
        dlg.manual_seed(1)
        state = dlg.get_rng_state().numpy()
        np.testing.assert_array_equal(draw(fn, 3, *args), draw(fn, 3, *args))
        assert not np.array_equal(draw(fn, 3, *args), draw(fn, 4, *args)), fn.__name__
        np.testing.assert_array_equal(dlg.get_rng_state().numpy(), state)


def test_to_empty_and_share_memory():
    """The meta-device pattern: `with torch.device("meta"): m = ...; m.to_empty(device="cpu");
    m.reset_parameters()`; share_memory() for multiprocessing. Both give the module back."""
    with dlg.device("meta"):
        m = dlg.nn.Linear(3, 2)
    assert m.to_empty(device="cpu") is m and m.share_memory() is m
    m.reset_parameters()
    assert m(dlg.ones(1, 3)).shape == (1, 2)
    with pytest.raises(DlgValueError, match="eager dlg modules run on the cpu"):
        m.to_empty(device="cuda")
    assert torch.nn.Linear(3, 2).to_empty(device="cpu").weight.shape == (2, 3)


def test_reset_parameters_where_torch_has_it():
    """`for m in model.modules(): if hasattr(m, "reset_parameters"): m.reset_parameters()`
    re-initialises torch models and skipped every dlg module: the modules that draw parameters
    have it, torch's initialisers drawn in place (identities kept, optimizers still hold them)."""
    import inspect

    made = {"Linear": (30, 20), "Conv2d": (3, 4, 3), "ConvTranspose1d": (3, 4, 3),
            "Embedding": (50, 8, 3), "EmbeddingBag": (50, 8), "BatchNorm1d": (4,),
            "InstanceNorm2d": (3, 1e-5, 0.1, True), "LayerNorm": (5,), "GroupNorm": (2, 4),
            "RMSNorm": (5,), "LSTM": (4, 16, 2), "GRU": (4, 16), "RNN": (4, 16),
            "LSTMCell": (3, 9), "GRUCell": (3, 9), "RNNCell": (3, 9), "Bilinear": (3, 4, 5),
            "PReLU": (3, 0.1), "MultiheadAttention": (8, 2), "ReLU": (), "Dropout": ()}
    for name, args in made.items():
        theirs, ours = getattr(torch.nn, name)(*args), getattr(dlg.nn, name)(*args)
        assert hasattr(ours, "reset_parameters") == hasattr(theirs, "reset_parameters"), name
        if not hasattr(ours, "reset_parameters"):
            continue
        params = list(ours.parameters())
        with dlg.no_grad():
            for p in params:
                p.fill_(7.0)
        ours.reset_parameters()
        assert [id(p) for p in ours.parameters()] == [id(p) for p in params], name
        theirs.reset_parameters()
        for p, q in zip(ours.parameters(), theirs.parameters()):
            mine, want = np.abs(p.detach().numpy()), np.abs(q.detach().numpy())
            assert mine.max() < 7.0, name
            if want.max() > 0 and "Embedding" not in name:  # uniform bounds as torch's
                assert mine.max() <= want.max() * 1.6 + 1e-6, (name, mine.max(), want.max())
    emb = dlg.nn.Embedding(5, 2, padding_idx=1)
    emb.reset_parameters()
    assert emb.weight[1].tolist() == [0.0, 0.0]
    bn = dlg.nn.BatchNorm1d(2)
    bn(dlg.randn(8, 2))
    bn.reset_parameters()
    assert bn.running_mean.tolist() == [0.0, 0.0] and bn.num_batches_tracked.item() == 0
    assert inspect.ismethod(dlg.nn.MultiheadAttention(8, 2)._reset_parameters)


def test_data_parallel_without_gpus_as_torch():
    """nn.DataParallel(model) on a machine without GPUs runs the model as it is; state_dict
    keys take torch's `module.` prefix, and a checkpoint moves between the two."""
    theirs = torch.nn.DataParallel(torch.nn.Linear(2, 3))
    ours = dlg.nn.DataParallel(dlg.nn.Linear(2, 3))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["module.weight",
                                                                     "module.bias"]
    ours.load_state_dict({k: dlg.from_numpy(v.detach().numpy())
                          for k, v in theirs.state_dict().items()})
    x = np.ones((4, 2), np.float32)
    np.testing.assert_allclose(ours(dlg.from_numpy(x)).detach().numpy(),
                               theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-6)
    assert ours.device_ids == theirs.device_ids == [] and isinstance(ours.module, dlg.nn.Linear)
    with pytest.raises(DlgValueError, match="run on the CPU"):
        dlg.nn.DataParallel(dlg.nn.Linear(2, 3), device_ids=[0])
