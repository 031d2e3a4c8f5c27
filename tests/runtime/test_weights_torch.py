"""PyTorch's .pt/.pth files as dlg weights: a torch state_dict saved by torch.save loads into a
dlg model (and dlg's back into torch) with the same outputs; `torch.load(weights_only=True)`
refuses a whole pickled module, and other wrong contents are DlgValueErrors naming the file."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import dlg
from dlg.errors import DlgImportError, DlgValueError
from dlg.runtime.weights import load_weights

torch = pytest.importorskip("torch")


class Net(torch.nn.Module):  # models/mlp.dlg's twin
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(784, 128), torch.nn.Linear(128, 10)

    def forward(self, x):
        return torch.log_softmax(self.fc2(torch.relu(self.fc1(torch.flatten(x, 1)))), dim=1)


@pytest.fixture(scope="module")
def mlp():
    return dlg.load("models/mlp.dlg", seed=1)


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_torch_state_dict_file_loads_into_a_model(mlp, tmp_path, suffix):
    torch.manual_seed(0)
    net = Net().eval()
    path = tmp_path / f"mlp{suffix}"
    torch.save(net.state_dict(), path)
    mlp.load_weights(path)
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(mlp(x=x), net(torch.from_numpy(x)).numpy(), rtol=1e-5,
                                   atol=1e-6)


def test_dlg_weights_saved_as_pt_load_into_torch(mlp, tmp_path):
    path = tmp_path / "mlp.pt"
    mlp.save_weights(path)
    net = Net()
    net.load_state_dict(torch.load(path, weights_only=True))
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), mlp.params[key])
    assert list(dlg.load(path)) == list(mlp.params)  # dlg.load gives a state_dict, as torch's


@pytest.mark.parametrize("content, message", [
    (lambda: Net(), "holds a pickled .*test_weights_torch.Net, not only tensors"),
    (lambda: {"model": {"w": torch.ones(1)}, "epoch": 3}, "model, epoch are not tensors"),
    (lambda: [torch.ones(1)], "holds a list, not a state_dict"),
    (lambda: {"w": torch.ones(2, dtype=torch.bfloat16)},
     r"bad.pt\['w'\] is torch.bfloat16; dlg has bool"),
], ids=["module", "checkpoint", "list", "bfloat16"])
def test_wrong_pt_contents_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    torch.save(content(), path)
    with pytest.raises(DlgValueError, match=message):
        load_weights(path)


def test_a_corrupt_or_missing_pt_file_is_a_dlg_error(tmp_path):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"not a zip archive")
    with pytest.raises(DlgValueError, match="corrupt.pt is not a valid .pt file"):
        load_weights(path)
    with pytest.raises(DlgValueError, match="no such file"):
        load_weights(tmp_path / "missing.pth")


def test_without_torch_pt_files_and_from_torch_say_how_to_install_it(tmp_path, monkeypatch):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.ones(1)}, path)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails from here on
    for attempt in (lambda: load_weights(path), lambda: dlg.from_torch(object(), None)):
        with pytest.raises(DlgImportError,
                           match="needs the torch Python package: pip install torch"):
            attempt()
