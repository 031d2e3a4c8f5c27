"""Other libraries' arrays where dlg takes NumPy's (`dlg/foreign.py`): a program ported piece by
piece keeps torchvision's datasets and torch's DataLoader, whose torch.Tensors go into a dlg
model, loss and optimizer. Training from a torch DataLoader matches the same training in torch;
memory is shared (np.shares_memory) where torch allows it, both ways (`dlg.from_dlpack`,
`torch.from_dlpack(dlg_tensor)`); a tensor requiring grad or on another device is a DlgTypeError
saying what to do; a wrong type is named with its module."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
import dlg.nn as nn
import dlg.nn.functional as F
from dlg.errors import DlgTypeError, DlgValueError

torch = pytest.importorskip("torch")


def shares(x: dlg.Tensor, t: object) -> bool:
    return np.shares_memory(x.numpy_view(), t.numpy())  # type: ignore[attr-defined]


# ---- the calls of a ported program -----------------------------------------------------------
def test_a_module_takes_a_torch_tensor():
    lin = nn.Linear(4, 2)
    x = torch.randn(3, 4)
    out = lin(x)
    assert isinstance(out, dlg.Tensor) and out.requires_grad
    want = x.numpy() @ lin.weight.detach().numpy().T + lin.bias.detach().numpy()
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-5, atol=1e-6)


def test_a_forward_computes_in_dlg_from_its_first_line():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(12, 3)

        def forward(self, x):
            assert isinstance(x, dlg.Tensor)  # torch's x.view would compute in torch
            return self.fc(x.view(x.size(0), -1))

    assert Net()(torch.randn(2, 3, 4)).shape == (2, 3)


def test_an_lstm_state_tuple_of_torch_tensors():
    lstm = nn.LSTM(3, 5, batch_first=True)
    out, (h, c) = lstm(torch.randn(2, 4, 3), (torch.zeros(1, 2, 5), torch.zeros(1, 2, 5)))
    assert out.shape == (2, 4, 5) and isinstance(h, dlg.Tensor) and isinstance(c, dlg.Tensor)


def test_losses_functions_and_operators_take_torch_tensors():
    logits = dlg.randn(4, 3, requires_grad=True)
    target = torch.tensor([0, 2, 1, 0])
    loss = F.cross_entropy(logits, target)
    want = torch.nn.functional.cross_entropy(torch.from_numpy(logits.detach().numpy()), target)
    np.testing.assert_allclose(loss.item(), want.item(), rtol=1e-6)
    loss.backward()
    assert logits.grad is not None
    a, t = dlg.ones(3), torch.arange(3.0)
    for got in (a + t, t + a, a * t, dlg.maximum(a, t), dlg.cat([a, t]), dlg.stack((t, t)),
                F.mse_loss(a, t)):
        assert isinstance(got, dlg.Tensor)
    np.testing.assert_array_equal((t - a).numpy(), [-1.0, 0.0, 1.0])


def test_fft_and_complex_take_torch_tensors_out_must_be_dlgs():
    t = torch.arange(4.0)
    np.testing.assert_allclose(dlg.fft.fft(t).numpy(), torch.fft.fft(t).numpy(), atol=1e-6)
    np.testing.assert_array_equal(dlg.fft.fftshift(t).numpy(), torch.fft.fftshift(t).numpy())
    assert dlg.complex(t, t).dtype == dlg.complex64
    with pytest.raises(DlgTypeError, match=r"out= must be a dlg tensor, got torch\.Tensor"):
        dlg.add(dlg.ones(4), dlg.ones(4), out=t)


def test_hand_written_functions_take_torch_tensors():
    x, t = dlg.arange(12.0).reshape(3, 4), torch.arange(12.0).reshape(3, 4)
    assert [p.shape for p in dlg.split(t, 2)] == [(2, 4), (1, 4)]
    assert dlg.repeat_interleave(x, torch.tensor([1, 2, 1]), dim=0).shape == (4, 4)
    assert dlg.multinomial(torch.ones(3), 2).shape == (2,)
    assert x.index_put((torch.tensor([0]),), torch.tensor(-1.0))[0].sum().item() == -4
    np.testing.assert_array_equal(dlg.take(x, torch.tensor([0, 5])).numpy(), [0.0, 5.0])
    np.testing.assert_array_equal(dlg.nonzero(torch.tensor([1, 0, 2])).numpy(), [[0], [2]])
    m = nn.Module()
    m.register_buffer("mask", torch.tril(torch.ones(3, 3)))  # a forward's torch.tril mask
    assert isinstance(m.mask, dlg.Tensor) and "mask" in m.state_dict()


def test_gradient_seeds_may_be_torch_tensors():
    x = dlg.ones(3, requires_grad=True)
    (x * 2).backward(torch.full((3,), 0.5))
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0, 1.0])
    (g,) = dlg.autograd.grad(x * 3, x, grad_outputs=torch.ones(3))
    np.testing.assert_array_equal(g.numpy(), [3.0, 3.0, 3.0])


def test_func_transforms_take_torch_tensors():
    np.testing.assert_array_equal(dlg.func.grad(lambda x: (x ** 2).sum())(torch.ones(3)).numpy(),
                                  [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(dlg.func.jacrev(lambda x: x * 2)(torch.ones(2)).numpy(),
                                  [[2.0, 0.0], [0.0, 2.0]])
    np.testing.assert_array_equal(dlg.vmap(lambda r: r.sum())(torch.ones(2, 3)).numpy(),
                                  [3.0, 3.0])
    with pytest.raises(DlgTypeError, match=r"got torch\.nn\.modules\.activation\.ReLU"):
        dlg.func.grad(lambda x: x.sum())(torch.nn.ReLU())


def test_indexing_with_torch_indices_and_masks():
    x = dlg.arange(15.0).reshape(5, 3)
    np.testing.assert_array_equal(x[torch.tensor([0, 2])].numpy(), x.numpy()[[0, 2]])
    mask = torch.tensor([True, False, True, False, True])
    np.testing.assert_array_equal(x[mask].numpy(), x.numpy()[mask.numpy()])
    x[torch.tensor([1, 3])] = torch.zeros(3)
    assert x[1].sum().item() == 0 and x[3].sum().item() == 0


# ---- training from torch's data pipeline ------------------------------------------------------
class Digits(torch.utils.data.Dataset):
    """torchvision-style samples: a uint8 image through ToTensor and Normalize, an int label."""

    def __init__(self, n: int = 96):
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, (n, 8, 8), dtype=np.uint8)
        self.labels = (self.images.reshape(n, -1).mean(1) > 127).astype(np.int64) + \
            (self.images[:, 0, 0] > 127)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = torch.from_numpy(self.images[i]).float().div(255).unsqueeze(0)  # ToTensor
        return (x - 0.5) / 0.25, int(self.labels[i])  # Normalize


def _nets(kind: str):
    """The torch net and a dlg net with its weights (conv then linear, or an MLP)."""
    torch.manual_seed(0)
    tnn = torch.nn
    if kind == "cnn":
        tnet = tnn.Sequential(tnn.Conv2d(1, 4, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                              tnn.Flatten(), tnn.Linear(64, 3))
        dnet = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(64, 3))
    else:
        tnet = tnn.Sequential(tnn.Flatten(), tnn.Linear(64, 32), tnn.ReLU(), tnn.Linear(32, 3))
        dnet = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 3))
    dnet.load_state_dict({k: v.detach().numpy().copy() for k, v in tnet.state_dict().items()})
    return tnet, dnet


@pytest.mark.parametrize("kind,optimizer,compiled", [
    ("mlp", "SGD", False), ("mlp", "SGD", True), ("cnn", "Adam", False)],
    ids=["mlp-sgd-eager", "mlp-sgd-dlg.compile", "cnn-adam-eager"])
def test_training_from_a_torch_dataloader_matches_torch(kind, optimizer, compiled):
    loader = torch.utils.data.DataLoader(Digits(), batch_size=16, shuffle=False)
    tnet, dnet = _nets(kind)
    model = dlg.compile(dnet) if compiled else dnet
    options = {"lr": 0.1, "momentum": 0.9} if optimizer == "SGD" else {"lr": 0.01}
    topt = getattr(torch.optim, optimizer)(tnet.parameters(), **options)
    dopt = getattr(dlg.optim, optimizer)(dnet.parameters(), **options)
    for _epoch in range(2):
        for x, y in loader:
            assert isinstance(x, torch.Tensor) and x.dtype == torch.float32
            topt.zero_grad()
            tloss = torch.nn.functional.cross_entropy(tnet(x), y)
            tloss.backward()
            topt.step()
            dopt.zero_grad()
            dloss = F.cross_entropy(model(x), y)
            dloss.backward()
            dopt.step()
            np.testing.assert_allclose(dloss.item(), tloss.item(), rtol=1e-4, atol=1e-5)
    for name, p in tnet.state_dict().items():
        np.testing.assert_allclose(dnet.state_dict()[name].numpy(), p.numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=name)


def test_dlg_dataloader_collates_torch_samples():
    loader = dlg.utils.data.DataLoader(Digits(20), batch_size=8)
    x, y = next(iter(loader))
    assert isinstance(x, dlg.Tensor) and x.shape == (8, 1, 8, 8) and x.dtype == dlg.float32
    assert y.dtype == dlg.int64 and y.shape == (8,)
    ds = Digits(20)
    np.testing.assert_allclose(x[3].numpy(), ds[3][0].numpy())

    class ZeroDim(torch.utils.data.Dataset):  # labels as 0-d torch tensors, in a dict
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return {"x": torch.full((2,), float(i)), "y": torch.tensor(i)}

    batch = next(iter(dlg.utils.data.DataLoader(ZeroDim(), batch_size=4)))
    np.testing.assert_array_equal(batch["y"].numpy(), [0, 1, 2, 3])
    assert batch["x"].shape == (4, 2)
    unbatched = next(iter(dlg.utils.data.DataLoader(ZeroDim(), batch_size=None)))
    assert isinstance(unbatched["x"], dlg.Tensor)


def test_tensor_dataset_of_torch_tensors():
    xs, ys = torch.randn(10, 3), torch.arange(10)
    ds = dlg.utils.data.TensorDataset(xs, ys)
    x, y = ds[4]
    np.testing.assert_array_equal(x.numpy(), xs[4].numpy())
    assert y.item() == 4


def test_compiled_executable_and_trace_take_torch_tensors():
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    x = torch.randn(5, 4)
    want = net(x).detach().numpy()
    exe = dlg.compile(net, x)
    np.testing.assert_allclose(exe(x), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dlg.compile(net)(x).detach().numpy(), want, rtol=1e-5,
                               atol=1e-6)

    class ByName(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, batch):
            return self.net(batch["x"])

    np.testing.assert_allclose(dlg.compile(ByName())({"x": x}).detach().numpy(), want,
                               rtol=1e-5, atol=1e-6)
    assert dlg.trace(net, x).graph is not None
    with pytest.raises(DlgValueError, match="expected dtype f32, got f64"):
        exe(x.double())  # no silent cast of a torch tensor's dtype, as of an array's
    double = dlg.compile(lambda a: a * 2)
    np.testing.assert_array_equal(double(torch.ones(2)), [2.0, 2.0])


def test_a_dlg_model_fits_torch_tensors():
    m = dlg.load("models/mlp.dlg")
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert m(x=x).shape == (32, 10)
    with pytest.raises(DlgTypeError, match="detach"):
        m.fit(x.requires_grad_(), y, epochs=1, batch_size=16, verbose=0)


def test_a_compiled_train_step_takes_torch_tensors():
    step = dlg.compile(dlg.load("models/mlp.dlg")).train_step()
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    assert set(step(x=x, y=y)) == {"loss", "accuracy"}
    assert set(step.run(2, x=x, y=y)) == {"loss", "accuracy"}
    with pytest.raises(DlgTypeError, match="detach"):
        step(x=x.requires_grad_(), y=y)


# ---- memory and dtypes -----------------------------------------------------------------------
def test_as_tensor_and_from_dlpack_share_torch_memory():
    t = torch.arange(6.0).reshape(2, 3)
    for x in (dlg.as_tensor(t), dlg.asarray(t), dlg.from_dlpack(t), dlg.Tensor.of(t)):
        assert shares(x, t)
    x = dlg.as_tensor(t)
    x.add_(1)  # written through, as torch.from_numpy's
    assert t[0, 0].item() == 1.0
    assert not shares(dlg.tensor(t), t)  # torch.tensor copies too
    assert not shares(dlg.asarray(t, copy=True), t)
    strided = dlg.as_tensor(t.T)  # a transposed view: NumPy's strides, the same memory
    assert shares(strided, t)
    np.testing.assert_array_equal(strided.numpy(), t.T.numpy())


def test_torch_from_dlpack_of_a_dlg_tensor_shares_memory():
    x = dlg.ones(4)
    t = torch.from_dlpack(x)
    assert np.shares_memory(t.numpy(), x.numpy())
    t[0] = 5.0
    assert x[0].item() == 5.0
    assert x.__dlpack_device__() == (1, 0)
    np.testing.assert_array_equal(np.from_dlpack(x), x.numpy())
    with pytest.raises(DlgValueError, match="detach"):
        torch.from_dlpack(dlg.ones(2, requires_grad=True))
    y = dlg.arange(3)
    assert dlg.from_dlpack(y).numpy_view() is y.numpy_view()


DTYPES = [("float32", dlg.float32), ("float64", dlg.float64), ("float16", dlg.float16),
          ("int64", dlg.int64), ("int32", dlg.int32), ("int16", dlg.int16), ("int8", dlg.int8),
          ("uint8", dlg.uint8), ("bool", dlg.bool), ("complex64", dlg.complex64),
          ("complex128", dlg.complex128)]


@pytest.mark.parametrize("name,dtype", DTYPES, ids=[n for n, _ in DTYPES])
def test_dtypes_map_one_to_one(name, dtype):
    t = torch.ones(2, 3).to(getattr(torch, name))
    for make in (dlg.tensor, dlg.as_tensor, dlg.from_dlpack):
        assert make(t).dtype == dtype
    assert shares(dlg.as_tensor(t), t)


def test_conjugate_and_negative_views_are_materialised():
    z = torch.tensor([1 + 2j, 3 - 1j])
    np.testing.assert_array_equal(dlg.as_tensor(z.conj()).numpy(), [1 - 2j, 3 + 1j])


# ---- what cannot enter ------------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda t: nn.Linear(4, 2)(t), lambda t: dlg.relu(t), lambda t: dlg.tensor(t),
    lambda t: dlg.as_tensor(t), lambda t: dlg.ones(3, 4) + t, lambda t: dlg.from_dlpack(t),
    lambda t: dlg.utils.data.default_collate([t, t]),
], ids=["module", "function", "tensor", "as_tensor", "operator", "from_dlpack", "collate"])
def test_a_torch_tensor_requiring_grad_says_detach(call):
    t = torch.randn(3, 4, requires_grad=True)
    with pytest.raises(DlgTypeError, match=r"torch\.Tensor that requires grad.*x\.detach\(\)"):
        call(t)
    with pytest.raises(DlgTypeError, match=r"torch\.nn\.parameter\.Parameter that requires"):
        call(torch.nn.Parameter(torch.randn(3, 4)))


def test_an_executable_refuses_a_torch_tensor_requiring_grad():
    exe = dlg.compile(nn.Linear(4, 2), torch.randn(3, 4))
    with pytest.raises(DlgTypeError, match="detach"):
        exe(torch.randn(3, 4, requires_grad=True))


def test_a_tensor_on_another_device_says_cpu():
    t = torch.empty(3, 4, device="meta")  # no GPU needed: any device but the CPU
    with pytest.raises(DlgTypeError, match=r"torch\.Tensor on meta .*x\.cpu\(\)"):
        nn.Linear(4, 2)(t)
    with pytest.raises(DlgTypeError, match=r"x\.detach\(\)\.cpu\(\)"):
        dlg.tensor(torch.empty(3, device="meta", requires_grad=True))


def test_a_dlpack_array_on_a_gpu_says_copy_to_the_cpu():
    class GpuArray:  # what a CuPy or CUDA JAX array reports
        def __dlpack__(self, **kwargs):
            raise AssertionError("not to be read")

        def __dlpack_device__(self):
            return (2, 1)

    with pytest.raises(DlgTypeError, match=r"on cuda:1 .*copy it to the CPU"):
        dlg.relu(GpuArray())


def test_bfloat16_says_float():
    with pytest.raises(DlgTypeError, match=r"bfloat16.*x\.float\(\)"):
        dlg.tensor(torch.ones(2, dtype=torch.bfloat16))


def test_a_torch_parameter_in_a_dlg_module_is_refused():
    class Half(nn.Module):  # half ported: dlg would silently not train w
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))

    with pytest.raises(DlgTypeError, match=r"Half\.w = a torch\.nn\.parameter\.Parameter.*"
                                           r"dlg\.nn\.Parameter"):
        Half()
    m = nn.Module()
    m.scale = torch.tensor(2.0)  # a constant: kept, and read as data where it is used
    assert (dlg.ones(2) * m.scale).sum().item() == 4.0


def test_a_dlg_optimizer_over_torch_parameters_says_which_optimizes_what():
    with pytest.raises(DlgTypeError, match=r"got torch\.nn\.parameter\.Parameter; a torch "
                                           r"module's parameters are trained by torch\.optim"):
        dlg.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)


def test_wrong_types_are_named_with_their_module():
    with pytest.raises(DlgTypeError, match=r"got torch\.nn\.modules\.activation\.ReLU"):
        F.linear(torch.nn.ReLU(), dlg.ones(2, 2))
    with pytest.raises(DlgTypeError, match=r"found torch\.nn\.modules\.activation\.ReLU"):
        dlg.utils.data.default_collate([torch.nn.ReLU()])
    with pytest.raises(DlgTypeError, match=r"from_dlpack takes .* got list"):
        dlg.from_dlpack([1, 2])


# ---- other libraries ---------------------------------------------------------------------------
def test_jax_arrays():
    jnp = pytest.importorskip("jax.numpy")
    a = jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3)
    x = dlg.as_tensor(a)
    assert x.dtype == dlg.float32 and x.numpy().flags.writeable  # JAX's are read-only: a copy
    x.add_(1)
    np.testing.assert_array_equal(np.asarray(a), np.arange(6.0).reshape(2, 3))
    np.testing.assert_allclose(nn.Linear(3, 1)(a).shape, (2, 1))
    np.testing.assert_array_equal(jnp.from_dlpack(dlg.ones(2)), [1.0, 1.0])
