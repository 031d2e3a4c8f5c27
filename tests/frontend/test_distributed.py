"""`dlg.distributed`: no process group, so scripts checking for one run single-process, and
calls that need one are refused as torch refuses them before init_process_group."""

import pytest

import dlg

torch = pytest.importorskip("torch")


def test_scripts_checking_for_a_process_group_take_the_single_process_path():
    dist = dlg.distributed
    assert dist.is_available() is False
    assert dist.is_initialized() is False is torch.distributed.is_initialized()
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    assert rank == 0


@pytest.mark.parametrize("name", ["get_rank", "get_world_size"])
def test_calls_needing_a_group_are_refused_as_torch_s(name):
    with pytest.raises(ValueError, match="not been initialized"):
        getattr(torch.distributed, name)()
    with pytest.raises(dlg.DlgValueError, match="no process group"):
        getattr(dlg.distributed, name)()
    with pytest.raises(dlg.DlgValueError, match="init_process_group"):
        dlg.distributed.init_process_group("gloo")
