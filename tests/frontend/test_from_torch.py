"""dlg.from_torch against PyTorch: a zoo of torch modules (the reference MLP, CNN and ConvNet,
a ResNet-style block in eval mode, an LSTM classifier, every spelling of the same ops) read
through torch.fx; the dlg model's state_dict keys are torch's, and its outputs equal torch's
interpreted and compiled, for a batch size other than the example's; a parameter's gradient
through the converted eager module equals torch.autograd's; unsupported nodes are listed
together."""

from __future__ import annotations

import inspect
import operator

import numpy as np
import pytest

import dlg
from dlg.errors import DlgError, DlgImportError
from dlg.ir.shapes import Sym

torch = pytest.importorskip("torch")
tnn, F = torch.nn, torch.nn.functional
from dlg.frontend.from_torch import convert  # noqa: E402  (needs torch, skipped above)


class MLP(tnn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = tnn.Linear(784, 32), tnn.Linear(32, 10)

    def forward(self, x):
        return F.log_softmax(self.fc2(F.relu(self.fc1(torch.flatten(x, 1)))), dim=1)


class CNN(tnn.Module):  # models/cnn.dlg
    def __init__(self):
        super().__init__()
        self.conv1, self.pool = tnn.Conv2d(3, 64, 3, padding=1), tnn.MaxPool2d(2, 2)
        self.fc1, self.fc2 = tnn.Linear(64 * 5 * 5, 128), tnn.Linear(128, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class ConvNet(tnn.Module):  # models/convnet.dlg, on 12x12 images
    def __init__(self):
        super().__init__()
        self.conv1 = tnn.Conv2d(1, 8, 3, 1)
        self.fc1, self.fc2 = tnn.Linear(8 * 10 * 10, 16), tnn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = x.view(x.size(0), -1)
        return self.fc2(F.relu(self.fc1(x)))


class Block(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = tnn.Sequential(tnn.Conv2d(c, c, 3, padding=1, bias=False), tnn.BatchNorm2d(c),
                                   tnn.ReLU(), tnn.Conv2d(c, c, 3, padding=1, bias=False),
                                   tnn.BatchNorm2d(c))

    def forward(self, x):
        return torch.relu(self.body(x) + x)


class ResNet(tnn.Module):
    def __init__(self):
        super().__init__()
        self.stem = tnn.Sequential(tnn.Conv2d(3, 4, 3, padding=1), tnn.BatchNorm2d(4), tnn.ReLU())
        self.blocks = tnn.ModuleList([Block(4), Block(4)])
        self.head = tnn.Sequential(tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Dropout(0.5),
                                   tnn.Linear(4, 3))

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


class LSTMClassifier(tnn.Module):
    def __init__(self):
        super().__init__()
        self.embed = tnn.Embedding(20, 6)
        self.lstm = tnn.LSTM(6, 8, batch_first=True)
        self.norm, self.out = tnn.LayerNorm(8), tnn.Linear(8, 3)

    def forward(self, tokens):
        seq, (h, c) = self.lstm(self.embed(tokens))
        return F.softmax(self.out(self.norm(seq[:, -1] + h[0])), dim=-1)


class Spellings(tnn.Module):
    """The same ops as call_module, call_function and call_method nodes, and a parameter read
    by get_attr."""

    def __init__(self):
        super().__init__()
        self.fc = tnn.Linear(6, 6)
        self.act = tnn.GELU()
        self.scale = tnn.Parameter(torch.linspace(0.5, 1.5, 6))
        self.register_buffer("shift", torch.arange(6.0) / 10)

    def forward(self, x, y):
        k = x.size(1) // 2  # a slice bound computed from a size
        a = self.act(self.fc(x)) + F.gelu(x) - torch.sigmoid(x).relu()
        b = F.linear(y, self.fc.weight, self.fc.bias) * self.scale + self.shift
        c = torch.cat([a, b], dim=1).reshape(-1, 2, 6).permute(0, 2, 1).transpose(1, 2)
        d = torch.matmul(c, c.transpose(-1, -2)).view(x.shape[0], -1)
        return operator.mul(d.mean(dim=1, keepdim=True), torch.tanh(a).sum(-1, keepdim=True)) \
            + F.silu(b).max(dim=1)[0].unsqueeze(1) + F.leaky_relu(y, 0.2)[:, k:].repeat(1, 2) \
            * torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])  # a constant fx keeps on the module


def _f(*shape):
    return torch.randn(*shape)


ZOO = [  # name, module, example inputs (the test calls the model at another batch size too)
    ("mlp", MLP, lambda n: (_f(n, 1, 28, 28),)),
    ("cnn", CNN, lambda n: (_f(n, 3, 10, 10),)),
    ("convnet", ConvNet, lambda n: (_f(n, 1, 12, 12),)),
    ("resnet", ResNet, lambda n: (_f(n, 3, 6, 6),)),
    ("lstm", LSTMClassifier, lambda n: (torch.randint(0, 20, (n, 5)),)),
    ("spellings", Spellings, lambda n: (_f(n, 6), _f(n, 6))),
]


def _torch_module(make):
    torch.manual_seed(0)
    module = make()
    for m in module.modules():  # running statistics that are not 0 and 1
        if isinstance(m, tnn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    return module.eval()


@pytest.fixture(scope="module", params=ZOO, ids=[z[0] for z in ZOO])
def converted(request):
    _, make, inputs = request.param
    module = _torch_module(make)
    model = dlg.from_torch(module, inputs(4))
    return module, model, inputs


def test_names_and_weights_are_torchs(converted):
    module, model, _ = converted
    assert model.name == type(module).__name__
    assert list(model.inputs) == list(inspect.signature(module.forward).parameters)
    theirs = module.state_dict()
    assert list(model.state_dict()) == list(theirs)
    for key, value in theirs.items():
        np.testing.assert_array_equal(np.asarray(model.state_dict()[key]), value.numpy())


def test_interpreted_and_compiled_match_torch(converted):
    module, model, inputs = converted
    batch = inputs(3)  # not the example's batch size: N stays symbolic
    with torch.no_grad():
        expected = module(*batch).numpy()
    arrays = [t.numpy() for t in batch]
    np.testing.assert_allclose(model(*arrays), expected, rtol=1e-4, atol=1e-5)
    exe = dlg.compile(model)
    np.testing.assert_allclose(exe(*arrays), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make, inputs, param", [
    (ResNet, lambda: (_f(2, 3, 6, 6),), "blocks.1.body.3.weight"),
    (Spellings, lambda: (_f(3, 6), _f(3, 6)), "scale"),
    (LSTMClassifier, lambda: (torch.randint(0, 20, (2, 5)),), "lstm.weight_hh_l0"),
], ids=["resnet", "spellings", "lstm"])
def test_parameter_gradient_matches_torch(make, inputs, param):
    module = _torch_module(make)
    net = convert(module)
    x = inputs()
    weights = torch.randn(module(*x).shape)
    (module(*x) * weights).sum().backward()
    out = net(*[dlg.tensor(t.numpy()) for t in x])
    (out * dlg.tensor(weights.numpy())).sum().backward()
    ours = dict(net.named_parameters())[param].grad.numpy()
    theirs = dict(module.named_parameters())[param].grad.numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


class Call(tnn.Module):
    """`fn(self.inner, *inputs)` as a module: a leaf module called, or a functional form."""

    def __init__(self, fn, inner=None):
        super().__init__()
        self.fn, self.inner = fn, inner

    def forward(self, a, b, c):
        return self.fn(self.inner, a, b, c)


FORMS = [  # options read back from the module, aliases, torch's default keywords, inputs' N
    ("InstanceNorm1d(affine)", tnn.InstanceNorm1d(3, affine=True), lambda m, a, b, c: m(a)),
    ("MultiheadAttention(batch_first, no bias)",
     tnn.MultiheadAttention(3, 1, bias=False, batch_first=True), lambda m, a, b, c: m(a, b, b)[0]),
    ("MultiheadAttention(source longer than target)", tnn.MultiheadAttention(3, 1),
     lambda m, a, b, c: m(a, c, c)[0]),
    ("F.logsigmoid (torch's log_sigmoid)", None, lambda m, a, b, c: F.logsigmoid(a)),
    ("F.kl_div (legacy size_average=None)", None,
     lambda m, a, b, c: F.kl_div(a, b.exp(), reduction="batchmean")),
]


@pytest.mark.parametrize("name, inner, fn", FORMS, ids=[f[0] for f in FORMS])
def test_module_options_and_function_forms_match_torch(name, inner, fn):
    torch.manual_seed(0)
    module = Call(fn, inner).eval()
    a, b, c = _f(2, 3, 3), _f(2, 3, 3), _f(5, 3, 3)
    with torch.no_grad():
        expected = module(a, b, c)
    got = dlg.from_torch(module, (a, b, c))(a.numpy(), b.numpy(), c.numpy())
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-6)


def test_a_batch_size_written_in_the_module_gives_static_shapes():
    class Fixed(tnn.Module):
        def forward(self, x):
            return x.reshape(4, 2, 3).sum(1)

    x = _f(4, 6)
    with pytest.warns(UserWarning, match=r"Fixed does not trace with a symbolic batch size "
                                         r"\(reshape: .*\); the model takes the example's"):
        model = dlg.from_torch(Fixed(), x)
    assert model.inputs["x"].shape == (4, 6)
    np.testing.assert_allclose(model(x.numpy()), Fixed()(x).numpy(), rtol=1e-6)


def test_positions_expanded_to_the_batch_follow_it():
    class Positions(tnn.Module):
        def forward(self, x):
            return x + torch.arange(x.shape[1]).expand(x.shape[0], -1)

    model = dlg.from_torch(Positions(), _f(2, 5))
    assert model.inputs["x"].shape == (Sym.named("N"), 5)
    x = _f(3, 5)
    for run in (model, dlg.compile(model)):
        np.testing.assert_allclose(run(x.numpy()), Positions()(x).numpy(), rtol=1e-6)


@pytest.mark.parametrize("make,shape", [(lambda: tnn.BatchNorm1d(4).eval(), (3, 4)),
                                         (lambda: tnn.LSTM(4, 5, batch_first=True), (2, 3, 4)),
                                         (lambda: tnn.Linear(4, 2), (3, 4)),
                                         (lambda: tnn.LPPool2d(2, (2, 3)), (2, 3, 4, 6))],
                         ids=["batchnorm", "lstm", "linear", "lppool"])
def test_a_bare_torch_leaf_converts_to_its_dlg_module(make, shape):
    """fx cannot trace inside torch.nn's own modules: one passed by itself is its dlg.nn
    module, with torch's state_dict names and mode."""
    torch.manual_seed(0)
    module = make()
    x = _f(*shape)
    model = dlg.from_torch(module, x)
    assert list(model.params) == list(module.state_dict())
    want = module(x)
    want = want[0] if isinstance(want, tuple) else want
    got = model(x.numpy())
    got = got[0] if isinstance(got, tuple) else got
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-5, atol=1e-6)


class Unsupported(tnn.Module):
    def __init__(self):
        super().__init__()
        self.fc = tnn.Linear(4, 4)
        self.frac = tnn.FractionalMaxPool2d(1, output_size=1)
        self.pool = tnn.AvgPool2d(2, divisor_override=3)

    def forward(self, x):
        y = torch.special.erfcx(self.fc(x)) + torch.special.erfcx(x)
        return self.pool(self.frac(y.igamma(x.abs()).view(-1, 4, 1, 1)))


def test_unsupported_nodes_are_listed_together():
    with pytest.raises(DlgImportError) as e:
        dlg.from_torch(Unsupported(), _f(2, 4))
    message = e.value.message
    assert message.startswith("4 unsupported torch ops")
    line = Unsupported.forward.__code__.co_firstlineno
    for part in [f"special_erfcx at nodes special_erfcx ({__file__}:{line + 1}:9), "
                 f"special_erfcx_1 ({__file__}:{line + 1}:9)",
                 f"Tensor.igamma at node igamma ({__file__}:{line + 2}:9)",
                 "module frac (dlg.nn has no FractionalMaxPool2d) at node frac",
                 "module pool (dlg.nn.AvgPool2d has no option divisor_override (here 3))"]:
        assert part in message


def test_errors_point_at_the_torch_source_line():
    class Misfit(tnn.Module):
        def __init__(self):
            super().__init__()
            self.fc = tnn.Linear(5, 2)

        def forward(self, x):
            return self.fc(x * 2)

    with pytest.raises(DlgError, match="linear: input f32.*does not fit weight") as e:
        dlg.from_torch(Misfit(), _f(2, 4))
    assert (e.value.span.file, e.value.span.line) == (__file__,
                                                      Misfit.forward.__code__.co_firstlineno + 1)
    assert e.value.notes == ("in torch.fx node 'fc' (call_module fc)",)


def test_untraceable_and_wrong_arguments_are_dlg_errors():
    class Branchy(tnn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(DlgImportError, match="torch.fx cannot trace Branchy"):
        dlg.from_torch(Branchy(), _f(2, 3))
    with pytest.raises(DlgError, match="takes a torch.nn.Module, not Linear"):
        dlg.from_torch(dlg.nn.Linear(2, 2), _f(2, 3))

    class Retype(tnn.Module):
        def forward(self, x, y):
            return x.type(torch.float64) + y

    with pytest.raises(DlgError, match="argument 'y' has no default and no example input"):
        dlg.from_torch(Retype(), _f(2, 3))
    x, y = _f(2, 3), _f(2, 3)
    out = dlg.from_torch(Retype(), (x, y))(x=x.numpy(), y=y.numpy())
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, Retype()(x, y).numpy(), rtol=1e-6)


def _first_inputs(count):
    return lambda m, *xs: m(*xs[:count])


@pytest.mark.from_torch_full
def test_every_module_of_the_module_tests_converts():
    """Each torch.nn module of tests/frontend/test_modules_torch.py, called as a submodule (so
    converted to its dlg.nn class with its options and weights), gives torch's output."""
    from tests.frontend.test_modules_torch import MODULES

    failed = []
    for name, make, inputs in MODULES:
        torch.manual_seed(0)
        arrays = [np.asarray(x) for x in inputs()]
        module = Call(_first_inputs(len(arrays)), make(tnn)).eval()
        xs = [torch.from_numpy(x) for x in arrays] + [_f(1)] * (3 - len(arrays))
        with torch.no_grad():
            expected = module(*xs)
        try:
            got = dlg.from_torch(module, tuple(xs))(*[x.numpy() for x in xs])
            np.testing.assert_allclose(got[0] if isinstance(got, tuple) else got,
                                       (expected[0] if isinstance(expected, tuple)
                                        else expected).numpy(), rtol=1e-4, atol=1e-5)
        except (DlgError, AssertionError) as e:
            failed.append(f"{name}: {str(e).splitlines()[0]}")
    assert not failed, "\n".join(failed)
