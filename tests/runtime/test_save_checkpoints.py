"""`dlg.save` of torch-style checkpoints (a model's and an optimizer's state_dicts, a
scheduler's, the epoch) as .pt/.pth: torch.save's file where torch is installed, dlg's pickle of
NumPy arrays where it is not; `dlg.load` gives them back with dlg tensors. Flat-only formats
refuse a nest with an error naming .pt."""

from __future__ import annotations

import io
import pickle
import sys
from collections import OrderedDict

import numpy as np
import pytest

import dlg
from dlg.errors import DlgValueError


def _trained():
    dlg.manual_seed(0)
    model = dlg.nn.Linear(3, 2)
    opt = dlg.optim.Adam(model.parameters(), lr=0.1)
    sched = dlg.optim.lr_scheduler.StepLR(opt, 2, gamma=0.5)
    for _ in range(3):
        opt.zero_grad()
        model(dlg.ones(4, 3)).pow(2).sum().backward()
        opt.step()
        sched.step()
    return model, opt, sched


def _checkpoint(model, opt, sched):
    return {"model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "epoch": 3, "loss": 0.25, "name": "run",
            "note": None, "shape": (2, 3), "history": [np.float32(1.5), np.arange(3)]}


def _assert_same(saved, loaded):
    if isinstance(saved, dict):
        assert type(loaded) is type(saved) and list(loaded) == list(saved)
        for k in saved:
            _assert_same(saved[k], loaded[k])
    elif isinstance(saved, (list, tuple)):
        assert type(loaded) is type(saved) and len(loaded) == len(saved)
        for a, b in zip(saved, loaded):
            _assert_same(a, b)
    elif isinstance(saved, (dlg.Tensor, np.ndarray)):
        assert isinstance(loaded, dlg.Tensor)  # as torch.load gives torch tensors
        np.testing.assert_array_equal(loaded.numpy(), np.asarray(saved))
        assert loaded.dtype.np == np.asarray(saved).dtype
    else:
        assert loaded == saved and type(loaded) is type(saved.item() if isinstance(
            saved, np.generic) else saved)


def _resumes(path, model, opt, sched):
    """A fresh model, optimizer and scheduler loaded from the file step as the saved ones."""
    ckpt = dlg.load(path)
    m2 = dlg.nn.Linear(3, 2)
    o2 = dlg.optim.Adam(m2.parameters(), lr=0.1)
    s2 = dlg.optim.lr_scheduler.StepLR(o2, 2, gamma=0.5)
    m2.load_state_dict(ckpt["model"])
    o2.load_state_dict(ckpt["optimizer"])
    s2.load_state_dict(ckpt["scheduler"])
    for m, o, s in ((model, opt, sched), (m2, o2, s2)):
        o.zero_grad()
        m(dlg.ones(4, 3)).pow(2).sum().backward()
        o.step()
        s.step()
    np.testing.assert_array_equal(m2.weight.detach().numpy(), model.weight.detach().numpy())
    assert s2.get_last_lr() == sched.get_last_lr()


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".tar", ".ckpt", ""])
def test_a_checkpoint_round_trips(tmp_path, suffix):
    model, opt, sched = _trained()
    state = _checkpoint(model, opt, sched)
    dlg.save(state, tmp_path / f"ckpt{suffix}")
    _assert_same(state, dlg.load(tmp_path / f"ckpt{suffix}"))
    _resumes(tmp_path / f"ckpt{suffix}", model, opt, sched)


def test_a_flat_pt_state_dict_loads_as_before(tmp_path):
    model = dlg.nn.Linear(3, 2)
    dlg.save(model.state_dict(), tmp_path / "w.pt")
    loaded = dlg.load(tmp_path / "w.pt")
    assert list(loaded) == ["weight", "bias"] and isinstance(loaded["weight"], dlg.Tensor)
    assert isinstance(dlg.load(tmp_path / "w.pt"), dict)


def test_torch_reads_dlg_checkpoints_and_dlg_reads_torch_checkpoints(tmp_path):
    torch = pytest.importorskip("torch")
    model, opt, sched = _trained()
    dlg.save(_checkpoint(model, opt, sched), tmp_path / "dlg.pt")
    theirs = torch.load(tmp_path / "dlg.pt", weights_only=True)
    np.testing.assert_array_equal(theirs["model"]["weight"].numpy(),
                                  model.weight.detach().numpy())
    assert theirs["epoch"] == 3 and theirs["optimizer"]["param_groups"][0]["lr"] == 0.05
    net = torch.nn.Linear(3, 2)
    topt = torch.optim.Adam(net.parameters(), lr=0.1)
    net(torch.ones(4, 3)).pow(2).sum().backward()
    topt.step()
    torch.save({"model": net.state_dict(), "optimizer": topt.state_dict(), "epoch": 1},
               tmp_path / "torch.pt")
    ours = dlg.load(tmp_path / "torch.pt")
    np.testing.assert_array_equal(ours["model"]["weight"].numpy(), net.weight.detach().numpy())
    assert isinstance(ours["model"], OrderedDict) and ours["epoch"] == 1
    np.testing.assert_array_equal(ours["optimizer"]["state"][0]["exp_avg"].numpy(),
                                  topt.state_dict()["state"][0]["exp_avg"].numpy())


def test_without_torch_pt_files_are_a_pickle_of_arrays(tmp_path, monkeypatch):
    model, opt, sched = _trained()
    state = _checkpoint(model, opt, sched)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails from here on
    dlg.save(state, tmp_path / "ckpt.pt")
    with open(tmp_path / "ckpt.pt", "rb") as f:
        assert isinstance(pickle.load(f)["model"]["weight"], np.ndarray)
    _assert_same(state, dlg.load(tmp_path / "ckpt.pt"))
    _resumes(tmp_path / "ckpt.pt", model, opt, sched)


def test_a_pickle_naming_other_code_is_refused_unread(tmp_path):
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"w": OrderedDict, "f": print}))
    with pytest.raises(DlgValueError, match="evil.pt holds a pickled builtins.print"):
        dlg.load(tmp_path / "evil.pt")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(DlgValueError, match="junk.pth is not a valid .pth file"):
        dlg.load(tmp_path / "junk.pth")
    with pytest.raises(DlgValueError, match="no such file"):
        dlg.load(tmp_path / "missing.pt")


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_flat_formats_refuse_a_checkpoint_naming_pt(tmp_path, suffix):
    model, opt, sched = _trained()
    with pytest.raises(DlgValueError, match=rf"{suffix} files hold a flat state_dict .* "
                                            r"'optimizer' is a dict; save .* as .pt or .pth"):
        dlg.save({"optimizer": opt.state_dict()}, tmp_path / f"ckpt{suffix}")
    assert not (tmp_path / f"ckpt{suffix}").exists()
    dlg.save({"w": model.weight, "step": 3}, tmp_path / f"flat{suffix}")  # still saves flat
    assert dlg.load(tmp_path / f"flat{suffix}")["step"].item() == 3


def test_a_value_no_file_holds_is_an_error_naming_where(tmp_path):
    with pytest.raises(DlgValueError, match=r"the state\['extra'\]\[1\] is a set"):
        dlg.save({"extra": [1, {2}]}, tmp_path / "x.pt")


def test_an_open_file_round_trips_and_torch_load_keywords_are_taken(tmp_path):
    """torch.save(state, buffer) / torch.load(buffer) and torch.load(path, map_location=...,
    weights_only=True), as PyTorch programs write them (a file object was a TypeError, the
    keywords unknown)."""
    model, opt, sched = _trained()
    state = _checkpoint(model, opt, sched)
    buffer = io.BytesIO()
    dlg.save(state, buffer)
    buffer.seek(0)
    _assert_same(state, dlg.load(buffer))
    dlg.save(state, tmp_path / "ckpt.pth.tar")
    loaded = dlg.load(tmp_path / "ckpt.pth.tar", map_location="cpu", weights_only=True)
    _assert_same(state, loaded)


def test_torch_reads_an_open_file_dlg_wrote_and_back():
    torch = pytest.importorskip("torch")
    model, _, _ = _trained()
    buffer = io.BytesIO()
    dlg.save(model.state_dict(), buffer)
    buffer.seek(0)
    theirs = torch.load(buffer, weights_only=True)
    np.testing.assert_array_equal(theirs["weight"].numpy(), model.weight.detach().numpy())
    buffer = io.BytesIO()
    torch.save({"epoch": 2, "model": theirs}, buffer)
    buffer.seek(0)
    ours = dlg.load(buffer, map_location=torch.device("cpu"))
    assert ours["epoch"] == 2
    np.testing.assert_array_equal(ours["model"]["weight"].numpy(), model.weight.detach().numpy())


def test_a_file_of_another_kind_is_refused_naming_what_load_reads(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(dlg.DlgError, match="notes.txt: dlg.load reads .dlg files"):
        dlg.load(tmp_path / "notes.txt")
    with pytest.raises(DlgValueError, match="is not a valid torch.save file"):
        dlg.load(io.BytesIO(b"not a pickle"))


class _Saved(dlg.nn.Module):  # a whole module pickles its class by name: a module-level one
    def __init__(self):
        super().__init__()
        self.flatten = dlg.nn.Flatten()
        self.stack = dlg.nn.Sequential(dlg.nn.Linear(6, 4), dlg.nn.ReLU(), dlg.nn.Linear(4, 2))

    def forward(self, x):
        return self.stack(self.flatten(x))


@pytest.mark.parametrize("with_torch", [True, False], ids=["torch-format", "plain-pickle"])
@pytest.mark.parametrize("to_file", [True, False], ids=["path", "bytesio"])
def test_a_whole_module_saves_and_loads_with_weights_only_false(tmp_path, monkeypatch,
                                                                with_torch, to_file):
    """The Save & Load tutorial's torch.save(model, 'model.pth') then
    torch.load('model.pth', weights_only=False); the default refuses it, as torch's does."""
    if with_torch:
        pytest.importorskip("torch")
    else:
        monkeypatch.setitem(sys.modules, "torch", None)
    model = _Saved()
    x = dlg.randn(3, 2, 3)
    target = tmp_path / "model.pth" if to_file else io.BytesIO()
    dlg.save(model, target)
    if not to_file:
        target.seek(0)
    with pytest.raises(DlgValueError, match="weights_only=False"):
        dlg.load(target)
    if not to_file:
        target.seek(0)
    loaded = dlg.load(target, weights_only=False)
    assert type(loaded) is _Saved and loaded is not model
    assert list(loaded.state_dict()) == list(model.state_dict())
    loaded.eval()
    np.testing.assert_array_equal(loaded(x).detach().numpy(), model(x).detach().numpy())
    loaded(x).sum().backward()  # its parameters still train
    assert loaded.stack[0].weight.grad is not None


def test_functions_and_a_transformer_pickle_whole():
    """A TransformerEncoderLayer holds F.relu as its activation: the whole model saves (the
    word_language_model example's torch.save(model, f)), and every function of dlg and
    dlg.nn.functional pickles as itself."""
    import dlg.nn.functional as F

    for space in (F, dlg):
        for name in space.__all__:
            fn = getattr(space, name)
            if callable(fn) and not isinstance(fn, type):
                assert pickle.loads(pickle.dumps(fn)) is fn, name
    dlg.manual_seed(0)
    model = dlg.nn.TransformerEncoder(dlg.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0), 2,
                                      enable_nested_tensor=False)
    buffer = io.BytesIO()
    dlg.save(model, buffer)
    buffer.seek(0)
    loaded = dlg.load(buffer, weights_only=False)
    assert loaded.layers[0].activation is F.relu
    x = dlg.randn(5, 3, 8)
    np.testing.assert_allclose(loaded(x).detach().numpy(), model(x).detach().numpy())


class _LM(dlg.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = dlg.nn.Embedding(7, 4)
        self.rnn = dlg.nn.LSTM(4, 4, 2)
        self.layer = dlg.nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0)
        self.decoder = dlg.nn.Linear(4, 7)

    def forward(self, x):
        return self.decoder(self.layer(self.rnn(self.encoder(x))[0]))


@pytest.mark.parametrize("with_torch", [True, False], ids=["torch-format", "plain-pickle"])
def test_safe_globals_admit_a_whole_module_by_its_listed_classes(monkeypatch, with_torch):
    """word_language_model/main.py: `with torch.serialization.safe_globals([RNNModel,
    torch.nn.modules.rnn.LSTM, ...]): model = torch.load(f)`, the classes named by torch's
    torch.nn.modules paths; one class left out of the list is refused by name."""
    if with_torch:
        pytest.importorskip("torch")
    else:
        monkeypatch.setitem(sys.modules, "torch", None)
    nn = dlg.nn
    listed = [_LM, nn.modules.sparse.Embedding, nn.modules.rnn.LSTM, nn.modules.linear.Linear,
              nn.modules.transformer.TransformerEncoderLayer,
              nn.modules.activation.MultiheadAttention, nn.modules.dropout.Dropout,
              nn.modules.normalization.LayerNorm, nn.modules.linear.NonDynamicallyQuantizableLinear,
              nn.functional.relu]
    model, buffer = _LM(), io.BytesIO()
    dlg.save(model, buffer)
    buffer.seek(0)
    with dlg.serialization.safe_globals(listed):
        assert dlg.serialization.get_safe_globals() == listed
        loaded = dlg.load(buffer)
    assert dlg.serialization.get_safe_globals() == []
    x = dlg.tensor([[1, 2], [3, 4], [5, 6]])
    np.testing.assert_allclose(loaded(x).detach().numpy(), model(x).detach().numpy())
    buffer.seek(0)
    with dlg.serialization.safe_globals(listed[:1] + listed[2:]), pytest.raises(
            DlgValueError, match="Embedding that is not in the safe globals"):
        dlg.load(buffer)


def test_nn_modules_paths_are_torchs():
    import dlg.nn.modules.conv as conv
    from dlg.nn.modules.batchnorm import _BatchNorm
    from dlg.nn.modules.loss import _Loss

    assert conv.Conv2d is dlg.nn.Conv2d and dlg.nn.modules.rnn.LSTM is dlg.nn.LSTM
    assert isinstance(dlg.nn.BatchNorm2d(3), _BatchNorm) and isinstance(dlg.nn.MSELoss(), _Loss)
    assert isinstance(dlg.nn.Conv1d(1, 1, 1), conv._ConvNd)
