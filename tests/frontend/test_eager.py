"""Eager tensors, modules and optimizers against PyTorch: forward values and `.backward()`
gradients of each op and layer, state_dict names, optimizer steps, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
import dlg.nn as nn
import dlg.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional
R = np.random.default_rng(0)


def arr(*shape: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    return R.uniform(low, high, shape).astype(np.float32)


# (name, function on dlg-or-torch tensors with `lib` the module, input arrays)
CASES = [
    ("add_broadcast", lambda m, a, b: a + b, [arr(3, 1), arr(4)]),
    ("sub_scalar", lambda m, a: 2 - a * 3, [arr(2, 3)]),
    ("div", lambda m, a, b: a / b, [arr(2, 3), arr(3, low=0.5, high=2)]),
    ("pow", lambda m, a: a ** 2, [arr(2, 3)]),
    ("matmul_batched", lambda m, a, b: a @ b, [arr(2, 3, 4), arr(4, 5)]),
    ("relu_sigmoid_tanh", lambda m, a: m.relu(a) + m.sigmoid(a) * m.tanh(a), [arr(3, 4)]),
    ("exp_log", lambda m, a: m.log(m.exp(a) + 1), [arr(3, 4)]),
    ("sum_dim", lambda m, a: a.sum(1, keepdim=True) * a, [arr(3, 4)]),
    ("mean", lambda m, a: a.mean(), [arr(3, 4)]),
    ("max_values", lambda m, a: a.max(1)[0], [arr(3, 4)]),
    ("softmax", lambda m, a: m.softmax(a, dim=1), [arr(3, 5)]),
    ("log_softmax", lambda m, a: m.log_softmax(a, dim=0), [arr(3, 5)]),
    ("view_permute", lambda m, a: a.view(2, 6).t().reshape(3, 4).permute(1, 0), [arr(3, 4)]),
    ("transpose_unsqueeze", lambda m, a: a.transpose(0, 1).unsqueeze(0).squeeze(0), [arr(3, 4)]),
    ("flatten", lambda m, a: m.flatten(a, 1), [arr(2, 3, 4)]),
    ("index_slices", lambda m, a: a[1:, ::2] * a[0, 1] + a[1:, -1:], [arr(3, 4)]),
    ("index_none", lambda m, a: a[None, :, 2], [arr(3, 4)]),
    ("cat_stack", lambda m, a, b: m.cat([a, b], 0) * m.stack([a, b], 0).sum(0).repeat(2, 1)
     if m is torch else m.cat([a, b], 0) * m.cat([m.stack([a, b], 0).sum(0)] * 2, 0),
     [arr(2, 3), arr(2, 3)]),
    ("linear_fn", lambda m, a, w, b: (TF if m is torch else F).linear(a, w, b),
     [arr(4, 3), arr(5, 3), arr(5)]),
    ("conv2d_fn", lambda m, a, w: (TF if m is torch else F).conv2d(a, w, stride=2, padding=1),
     [arr(2, 3, 7, 7), arr(4, 3, 3, 3)]),
    ("pools", lambda m, a: (TF if m is torch else F).max_pool2d(a, 2)
     + (TF if m is torch else F).avg_pool2d(a, 2), [arr(2, 3, 6, 6)]),
]


def to_dlg(a: np.ndarray) -> dlg.Tensor:
    return dlg.tensor(a, requires_grad=True)


def to_torch(a: np.ndarray):
    return torch.tensor(a, requires_grad=True)


@pytest.mark.parametrize("name, fn, arrays", CASES, ids=[c[0] for c in CASES])
def test_ops_and_gradients_match_torch(name, fn, arrays):
    ours, theirs = [to_dlg(a) for a in arrays], [to_torch(a) for a in arrays]
    y, ty = fn(dlg, *ours), fn(torch, *theirs)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    weights = R.standard_normal(ty.shape).astype(np.float32)
    (y * dlg.tensor(weights)).sum().backward()
    (ty * torch.tensor(weights)).sum().backward()
    for a, t in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-5)


LOSSES = [("cross_entropy", arr(4, 5), np.array([0, 3, 1, 4])),
          ("nll_loss", np.log(np.full((4, 5), 0.2, np.float32)) + arr(4, 5) * 0.1,
           np.array([1, 1, 0, 2])),
          ("mse_loss", arr(4, 2), arr(4, 2)), ("l1_loss", arr(4, 2), arr(4, 2)),
          ("binary_cross_entropy_with_logits", arr(6), (arr(6) > 0).astype(np.float32))]


@pytest.mark.parametrize("name, x, target", LOSSES, ids=[c[0] for c in LOSSES])
def test_losses_match_torch(name, x, target):
    ours, theirs = to_dlg(x), to_torch(x)
    loss = getattr(F, name)(ours, dlg.tensor(target))
    tloss = getattr(TF, name)(theirs, torch.tensor(target))
    assert loss.item() == pytest.approx(tloss.item(), rel=1e-5)
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-6)


class Net(nn.Module):
    def __init__(self, lib):
        super().__init__()
        self.conv1 = lib.Conv2d(1, 4, 3, 1)
        self.pool = lib.MaxPool2d(2)
        self.fc1 = lib.Linear(4 * 3 * 3, 8)
        self.drop = lib.Dropout(0.5)
        self.fc2 = lib.Linear(8, 3)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        return self.fc2(self.drop(F.relu(self.fc1(x.view(x.size(0), -1)))))


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, 3, 1)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc1 = torch.nn.Linear(4 * 3 * 3, 8)
        self.drop = torch.nn.Dropout(0.5)
        self.fc2 = torch.nn.Linear(8, 3)

    def forward(self, x):
        x = self.pool(TF.relu(self.conv1(x)))
        return self.fc2(self.drop(TF.relu(self.fc1(x.view(x.size(0), -1)))))


def test_modules_match_torch_with_the_same_weights_and_names():
    ours, theirs = Net(nn).eval(), TorchNet().eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    x = arr(2, 1, 8, 8)
    y, ty = ours(dlg.tensor(x)), theirs(torch.tensor(x))
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    target = np.array([0, 2])
    F.cross_entropy(y, dlg.tensor(target)).backward()
    TF.cross_entropy(ty, torch.tensor(target)).backward()
    for (k, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=k)


def test_default_initialisation_has_torchs_ranges():
    dlg.manual_seed(0)
    layer = nn.Linear(400, 30)
    bound = 1 / np.sqrt(400)
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(b).max() <= bound and layer.weight.requires_grad


@pytest.mark.parametrize("name, hyper", [("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
                                         ("Adam", {"lr": 0.01}),
                                         ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
                                         ("RMSprop", {"lr": 0.01, "momentum": 0.5})])
def test_optimizers_step_like_torch(name, hyper):
    w0 = arr(3, 4)
    ours, theirs = dlg.tensor(w0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    opt, topt = getattr(dlg.optim, name)([ours], **hyper), getattr(torch.optim, name)(
        [theirs], **hyper)
    x = arr(5, 3)
    for _ in range(5):
        opt.zero_grad()
        topt.zero_grad()
        (dlg.tensor(x) @ ours).tanh().sum().backward()
        (torch.tensor(x) @ theirs).tanh().sum().backward()
        opt.step()
        topt.step()
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-5,
                               atol=1e-6)


def test_gradients_accumulate_until_zeroed():
    w = dlg.tensor([1.0, 2.0], requires_grad=True)
    (w * 3).sum().backward()
    (w * 3).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [6, 6])


def test_no_grad_records_nothing():
    w = dlg.tensor([1.0], requires_grad=True)
    with dlg.no_grad():
        y = w * 2
    assert not y.requires_grad and y.grad_fn is None


def test_torch_style_accuracy_idiom():
    out = dlg.tensor([[0.1, 0.9], [0.8, 0.2]])
    _, predicted = dlg.max(out.data, 1)
    assert (predicted == dlg.tensor([1, 0])).sum().item() == 2


# ---- errors -----------------------------------------------------------------------------------
def test_errors_point_at_the_callers_line():
    a, b = dlg.ones(2, 3), dlg.ones(4, 5)
    with pytest.raises(dlg.DlgShapeError) as info:
        a @ b  # noqa: B018
    assert info.value.span is not None and info.value.span.file.endswith("test_eager.py")


@pytest.mark.parametrize("fn, message", [
    (lambda: (dlg.ones(2, requires_grad=True) * 2).backward(), "only for scalar outputs"),
    (lambda: dlg.ones(2, requires_grad=True).numpy(), "detach"),
    (lambda: dlg.ones(2, requires_grad=True).add_(1), "in-place"),
    (lambda: dlg.ones(2).backward(), "does not require grad"),
    (lambda: dlg.ones(2, 3).view(4, -1), "6 elements do not divide by 4"),
    (lambda: dlg.ones(2, 3)[5], "out of range"),
    (lambda: dlg.tensor([[1, 2], [3]]), "cannot make a tensor of this list"),
    (lambda: dlg.nn.BatchNorm1d(4)(dlg.ones(2, 5)), r"BatchNorm1d\(4\) got 5 channels"),
    (lambda: dlg.nn.BatchNorm2d(3)(dlg.ones(2, 4, 5, 5)), r"BatchNorm2d\(3\) got 4 channels"),
    (lambda: dlg.nn.LSTM(4, 5, batch_first=True)(dlg.ones(2, 3, 6)),
     r"LSTM\(input_size=4\) got 6 features"),
    (lambda: dlg.nn.GRU(4, 5)(dlg.ones(3, 6)), r"GRU\(input_size=4\) got 6 features"),
    (lambda: dlg.loads("model M { input x: f32[N, 3]\n output y = x * 2 }")(z=np.ones((2, 3))),
     "unknown input 'z' and missing input 'x'"),
])
def test_clear_errors(fn, message):
    with pytest.raises(dlg.DlgError, match=message):
        fn()


@pytest.mark.parametrize("name", ["cat", "stack"])
def test_joining_promotes_as_torch(name):
    results = []
    for m in (dlg, torch):
        parts = [m.tensor([1, 2]), m.tensor([0.5, 1.5]), m.tensor([True, False])]
        out = getattr(m, name)(parts, dim=0)
        results.append((str(out.dtype).replace("torch.", ""), out.tolist()))
    assert results[0][1] == results[1][1] and results[0][0] in ("f32", "float32")


@pytest.mark.parametrize("fn", [lambda m: m.tensor([1, -2, 3]) ** 2,
                                lambda m: 2 ** m.tensor([1, 2, 3]),
                                lambda m: m.tensor([1, 2], dtype=m.int32) ** m.tensor([3, 2]),
                                lambda m: m.tensor([1.5, 2.0]) ** 2])
def test_integer_powers_stay_integers_as_torch(fn):
    ours, theirs = fn(dlg), fn(torch)
    assert ours.tolist() == theirs.tolist()
    assert str(ours.dtype) == {torch.int64: "i64", torch.int32: "i64", torch.float32: "f32"}[
        theirs.dtype]


@pytest.mark.parametrize("fn", [lambda m, y: m.where(y == 1, -100, y),
                                lambda m, y: y.where(y == 1, 7),
                                lambda m, y: m.where(y == 1, -1, y.int()),
                                lambda m, y: m.where(y == 1, 2.5, y),
                                lambda m, y: m.where(y == 1, True, y == 2)])
def test_where_keeps_integers_as_torch(fn):
    """where(y == 1, -100, y) stays int64 (an ignore_index target); it became f32."""
    ours, theirs = fn(dlg, dlg.tensor([0, 1, 2])), fn(torch, torch.tensor([0, 1, 2]))
    assert ours.tolist() == theirs.tolist()
    assert ours.dtype.torch_name == str(theirs.dtype).removeprefix("torch.")


def test_utils_data_yields_tensor_batches():
    from dlg.utils.data import DataLoader, TensorDataset
    x, y = np.arange(10, dtype=np.float32).reshape(5, 2), np.arange(5)
    batches = list(DataLoader(TensorDataset(dlg.tensor(x), y), batch_size=2))
    assert len(batches) == 3 and isinstance(batches[0][0], dlg.Tensor)
    np.testing.assert_array_equal(batches[2][1].numpy(), [4])


def test_pytorch_program_idioms(tmp_path):
    """device handling, nn.init, saving and loading a state_dict the torch way."""
    device = dlg.device("cuda" if dlg.cuda.is_available() else "cpu")
    net = Net(nn).to(device)
    nn.init.xavier_uniform_(net.fc1.weight)
    nn.init.zeros_(net.fc1.bias)
    assert not net.fc1.bias.detach().numpy().any()
    bound = np.sqrt(6 / (36 + 8))
    assert np.abs(net.fc1.weight.detach().numpy()).max() <= bound
    dlg.save(net.state_dict(), tmp_path / "net.safetensors")
    other = Net(nn)
    other.load_state_dict(dlg.load(tmp_path / "net.safetensors"))
    np.testing.assert_array_equal(other.fc1.weight.detach().numpy(),
                                  net.fc1.weight.detach().numpy())
    with pytest.raises(dlg.DlgValueError, match="cpu"):
        net.to("cuda")


def test_inf_and_nan_come_silently_as_in_torch():
    """log(0), 0/0, sqrt(-1) and overflow give inf and nan without NumPy's RuntimeWarnings (torch
    prints none; NeRF's disparity divides 0 by 0 on a ray that hits nothing), forward and
    backward."""
    import warnings

    def f(m, x):
        return m.log(x) + x / x.detach() + m.sqrt(x) + m.exp(x)

    x = dlg.tensor([0.0, -1.0, 100.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = f(dlg, x)
        y.sum().backward()
    t = torch.tensor([0.0, -1.0, 100.0], requires_grad=True)
    (ty := f(torch, t)).sum().backward()
    np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())


def test_backward_of_a_one_element_tensor_of_any_rank_as_torch():
    """The char-RNN generation tutorial sums its loss into `torch.Tensor([0])` and calls
    backward() on that [1] tensor: torch seeds any one-element root with ones; more elements
    still need the gradient passed."""
    got = []
    for lib in (torch, dlg):
        w = lib.tensor([[1.0, 2.0]], requires_grad=True)
        loss = lib.Tensor([0])
        loss += (w * w).sum()
        loss.backward()
        (w[:, :1] * 3).backward()
        got.append([w.grad.numpy().copy(), lib.autograd.grad(w[:, 1:] ** 2, w)[0].numpy()])
    for g, t in zip(got[1], got[0]):
        np.testing.assert_allclose(g, t)
    with pytest.raises(dlg.DlgValueError, match="only for scalar outputs; this one is f32"):
        (dlg.ones(1, 2, requires_grad=True) * 2).backward()


def test_grad_fn_is_a_node_with_next_functions():
    """The Neural Networks tutorial follows loss.grad_fn.next_functions[0][0] back through
    the graph: each node names its op (a str, as before) and gives its inputs' nodes, down to
    AccumulateGrad of the leaves that require grad; a constant input is None, as in torch."""
    for lib in (torch, dlg):
        x = lib.ones(2, 3, requires_grad=True)
        loss = lib.nn.functional.mse_loss(lib.relu(x * 2), lib.zeros(2, 3))
        node = loss.grad_fn
        assert len(node.next_functions) == 2 and node.next_functions[1][0] is None
        relu = node.next_functions[0][0]
        assert "relu" in relu.name().lower() and len(relu.next_functions) == 1
        mul = relu.next_functions[0][0]
        leaf = mul.next_functions[0][0]
        assert leaf.variable is x and leaf.next_functions == ()
    assert dlg.ones(2, requires_grad=True).grad_fn is None
    assert (dlg.ones(2, requires_grad=True) * 2).grad_fn == "mul"
