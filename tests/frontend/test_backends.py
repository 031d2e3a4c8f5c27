"""dlg.backends' switches and the float32 matmul precision against torch's: the same defaults, a
set value reads back, torch's bad values refused as DlgErrors, and no number changes."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
import dlg.backends.cudnn as cudnn

torch = pytest.importorskip("torch")

FLAGS = [("cudnn", "enabled"), ("cudnn", "benchmark"), ("cudnn", "deterministic"),
         ("cudnn", "allow_tf32"), ("cuda.matmul", "allow_tf32"),
         ("cuda.matmul", "allow_fp16_reduced_precision_reduction"), ("mkldnn", "enabled")]


def _owner(module, path: str):
    for part in path.split("."):
        module = getattr(module, part)
    return module


@pytest.fixture(autouse=True)
def restore():
    saved = {(path, name): getattr(_owner(dlg.backends, path), name) for path, name in FLAGS}
    precision = dlg.get_float32_matmul_precision()
    yield
    dlg.set_float32_matmul_precision(precision)
    for (path, name), value in saved.items():
        setattr(_owner(dlg.backends, path), name, value)


@pytest.mark.parametrize("path, name", FLAGS)
def test_flag_defaults_are_torchs_and_read_back(path, name):
    ours = _owner(dlg.backends, path)
    assert getattr(ours, name) is getattr(_owner(torch.backends, path), name)
    for value in (True, False):
        setattr(ours, name, value)
        assert getattr(ours, name) is value


@pytest.mark.parametrize("value", [1, "yes", None])
def test_flags_take_bools_only(value):
    with pytest.raises(dlg.DlgTypeError, match="expects a bool"):
        dlg.backends.cudnn.benchmark = value
    if value is not None:  # torch's refusal (through flags(): torch's own test helpers, which
        # the OpInfo tests import, freeze plain assignment; there None means "unchanged")
        with pytest.raises(RuntimeError, match="expects a bool"):
            with torch.backends.cudnn.flags(benchmark=value):
                pass
    assert dlg.backends.cudnn.benchmark is False


def test_imported_submodule_is_the_attribute():
    cudnn.deterministic = True
    assert dlg.backends.cudnn.deterministic is True


def test_availability_as_torch_on_a_cpu_build():
    assert dlg.backends.mps.is_available() is False and dlg.backends.mps.is_built() is False
    assert dlg.backends.cudnn.is_available() is False and dlg.backends.cudnn.version() is None
    assert dlg.backends.cuda.is_built() is False


@pytest.mark.parametrize("precision, tf32", [("high", True), ("medium", True),
                                             ("highest", False)])
def test_matmul_precision_reads_back_and_drives_allow_tf32(precision, tf32):
    assert dlg.get_float32_matmul_precision() == torch.get_float32_matmul_precision() == "highest"
    dlg.set_float32_matmul_precision(precision)
    assert dlg.get_float32_matmul_precision() == precision
    assert dlg.backends.cuda.matmul.allow_tf32 is tf32
    dlg.backends.cuda.matmul.allow_tf32 = not tf32
    assert dlg.get_float32_matmul_precision() == ("high" if not tf32 else "highest")


@pytest.mark.parametrize("value, error", [("low", dlg.DlgValueError), ("HIGH", dlg.DlgValueError),
                                          (3, dlg.DlgTypeError)])
def test_bad_matmul_precision(value, error):
    with pytest.raises(error, match="highest|str"):
        dlg.set_float32_matmul_precision(value)
    assert dlg.get_float32_matmul_precision() == "highest"


def test_switches_change_no_number():
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((16, 16)).astype(np.float32) for _ in range(2))
    before = (dlg.tensor(a) @ dlg.tensor(b)).numpy()
    dlg.set_float32_matmul_precision("medium")
    dlg.backends.cudnn.benchmark = True
    np.testing.assert_array_equal((dlg.tensor(a) @ dlg.tensor(b)).numpy(), before)


def test_a_set_seed_helper_runs_as_written():
    """The helper torch programs open with: CUDA seeding is silently nothing without CUDA (as
    in torch), the determinism switch reads back, empty_cache does nothing."""
    def set_seed(lib, seed, assign_flags=True):
        lib.manual_seed(seed)
        lib.cuda.manual_seed(seed)
        lib.cuda.manual_seed_all(seed)
        if assign_flags:
            lib.backends.cudnn.deterministic = True
            lib.backends.cudnn.benchmark = False
        lib.use_deterministic_algorithms(True, warn_only=True)
        lib.cuda.empty_cache()
        return lib.are_deterministic_algorithms_enabled()

    # torch's own test helpers (imported by the OpInfo corpus) freeze its global flags: then
    # torch refuses the assignments, so only dlg runs them
    frozen = torch.backends.flags_frozen()
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    try:
        assert set_seed(dlg, 3) == set_seed(torch, 3, assign_flags=not frozen) is True
        assert dlg.is_deterministic_algorithms_warn_only_enabled()
        with pytest.raises(dlg.DlgTypeError, match="mode must be a bool"):
            dlg.use_deterministic_algorithms("yes")
    finally:
        dlg.use_deterministic_algorithms(False)
        torch.use_deterministic_algorithms(False)
        if not frozen:
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def test_legacy_variable_and_dtype_class():
    """torch.autograd.Variable (0.3-era code) gives a tensor sharing the data; torch.dtype is
    the class of the dtypes."""
    data = dlg.ones(3)
    v = dlg.autograd.Variable(data, requires_grad=True)
    assert v.requires_grad and not data.requires_grad and v.is_leaf
    with dlg.no_grad():
        data.mul_(2)
    np.testing.assert_array_equal(v.detach().numpy(), [2, 2, 2])
    assert isinstance(dlg.float32, dlg.dtype) and isinstance(v.dtype, dlg.dtype)
    assert not dlg.autograd.Variable(dlg.ones(1)).requires_grad
