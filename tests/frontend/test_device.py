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


def test_device_context_default_device_and_meta():
    """module_load_state_dict_tips: `with torch.device('meta'): m = SomeModule()` then
    load_state_dict(assign=True); reasoning_about_shapes: tensors made on "meta". dlg has no
    meta tensors: they are made on the CPU, so shapes and loaded values are torch's."""
    with dlg.device("meta") as d:
        assert d == "meta"
        m = dlg.nn.Linear(3, 2)
    state = {"weight": dlg.ones(2, 3), "bias": dlg.zeros(2)}
    m.load_state_dict(state, assign=True)
    assert m.weight.tolist() == [[1.0] * 3] * 2 and m.weight.requires_grad
    conv = dlg.nn.Conv2d(3, 5, 2, device="meta")
    assert tuple(conv(dlg.rand(2, 3, 10, 10, device="meta")).shape) == (2, 5, 9, 9)
    dlg.set_default_device("cpu")
    assert repr(dlg.get_default_device()) == "device(type='cpu')"
    dlg.set_default_device(None)
    with pytest.raises(dlg.DlgValueError, match="device 'cuda'.*live on the CPU"):
        dlg.set_default_device("cuda")
    with pytest.raises(dlg.DlgValueError, match="device 'cuda:0'"):
        with dlg.device("cuda:0"):
            pass


def test_swap_tensors_as_torch():
    """torch.utils.swap_tensors: contents and classes swap, identities stay."""
    for lib in (torch, dlg):
        a, b = lib.nn.Parameter(lib.ones(2)), lib.arange(3)
        ida, idb = id(a), id(b)
        lib.utils.swap_tensors(a, b)
        assert (id(a), id(b)) == (ida, idb)
        assert a.tolist() == [0, 1, 2] and not a.requires_grad
        assert type(b) is lib.nn.Parameter and b.requires_grad and b.tolist() == [1.0, 1.0]
    mod = dlg.nn.Linear(2, 1)
    opt = dlg.optim.SGD(mod.parameters(), lr=1.0)
    dlg.utils.swap_tensors(mod.weight, dlg.nn.Parameter(dlg.zeros(1, 2)))
    mod(dlg.ones(1, 2)).sum().backward()
    opt.step()  # the optimizer's reference is the module's weight still
    assert mod.weight.tolist() == [[-1.0, -1.0]]
