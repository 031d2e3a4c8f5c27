"""dlg.device is torch.device: `.type` and `.index` (the Tensors tutorial's
`torch.device('cuda').index is not None`), its repr, and x.device on eager tensors."""

from __future__ import annotations

import pickle

import pytest

import dlg

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("args", [("cpu",), ("cuda",), ("cuda:1",), ("cuda", 0), ("mps",)])
def test_device_type_index_and_repr_as_torch(args):
    ours, theirs = dlg.device(*args), torch.device(*args)
    assert (ours.type, ours.index) == (theirs.type, theirs.index)
    assert (str(ours), repr(ours)) == (str(theirs), repr(theirs))
    assert dlg.device(ours) is ours
    assert pickle.loads(pickle.dumps(ours)) == ours


def test_tensor_device_is_the_cpu_device():
    x = dlg.ones(2)
    assert repr(x.device) == repr(torch.ones(2).device) == "device(type='cpu')"
    assert x.device.type == "cpu" and x.device.index is None and x.device == "cpu"
    assert dlg.zeros(2, device=x.device).device == x.device
    assert dlg.nn.Linear(2, 2).to(x.device).weight.device.type == "cpu"


def test_a_bad_device_is_refused():
    with pytest.raises(dlg.DlgValueError, match="device 'gpu': expected one of cpu, cuda"):
        dlg.device("gpu")
    with pytest.raises(dlg.DlgValueError, match="device 'cuda:x'"):
        dlg.device("cuda:x")
