"""Mixed precision spellings against torch on a CPU without CUDA: a CUDA autocast or
GradScaler warns and is disabled (the training loop runs unchanged, same numbers as torch), a
CPU GradScaler scales for real, a CPU autocast to a lower precision is refused (dlg computes in
float32)."""

import warnings

import numpy as np
import pytest

import dlg
import dlg.nn as nn

torch = pytest.importorskip("torch")
if torch.cuda.is_available():  # the comparison is with torch *without* CUDA
    pytest.skip("torch sees CUDA here", allow_module_level=True)


def _models():
    torch.manual_seed(0)
    tnet = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    net.load_state_dict({k: v.detach().numpy() for k, v in tnet.state_dict().items()})
    return net, tnet


def _train(lib, model, make_scaler, make_autocast, steps=3):
    """The torch AMP recipe: autocast around the forward, the scaler around backward/step."""
    rng = np.random.default_rng(0)
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    scaler = make_scaler(lib)
    losses = []
    for _ in range(steps):
        x = lib.tensor(rng.standard_normal((5, 4)).astype(np.float32))
        y = lib.tensor(rng.standard_normal((5, 1)).astype(np.float32))
        opt.zero_grad()
        with make_autocast(lib):
            loss = ((model(x) - y) ** 2).mean()
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()
        losses.append(float(loss.detach()))
    return losses, scaler


RECIPES = {
    "disabled by flag": (lambda lib: lib.amp.GradScaler(enabled=False),
                         lambda lib: lib.autocast("cpu", enabled=False)),
    "cuda forms": (lambda lib: lib.cuda.amp.GradScaler(),
                   lambda lib: lib.cuda.amp.autocast()),
    "amp cuda": (lambda lib: lib.amp.GradScaler("cuda"),
                 lambda lib: lib.amp.autocast("cuda", dtype=lib.float16)),
    "cpu scaler": (lambda lib: lib.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=2),
                   lambda lib: lib.autocast("cuda")),
}


@pytest.mark.parametrize("name", list(RECIPES))
def test_amp_training_loops_match_torch(name):
    make_scaler, make_autocast = RECIPES[name]
    results = {}
    for lib, model in zip((dlg, torch), _models()):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            losses, scaler = _train(lib, model, make_scaler, make_autocast)
        results[lib.__name__] = (losses, [p.detach().numpy().copy() for p in model.parameters()],
                                 scaler.is_enabled(), scaler.get_scale(), scaler.state_dict(),
                                 sorted({w.category.__name__ for w in caught}))
    ours, theirs = results["dlg"], results["torch"]
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5)
    for p, tp in zip(ours[1], theirs[1]):
        np.testing.assert_allclose(p, tp, rtol=1e-5, atol=1e-6)
    assert ours[2:5] == theirs[2:5]
    assert ours[5] == theirs[5]  # the same kinds of warnings (deprecation, disabling)


def test_warnings_point_at_the_user_line():
    with pytest.warns(UserWarning, match="Disabling") as caught:
        dlg.amp.GradScaler()
    assert caught[0].filename == __file__
    with pytest.warns(UserWarning, match="Disabling autocast") as caught:
        dlg.autocast("cuda")
    assert caught[0].filename == __file__


def test_disabled_scaler_is_torchs_no_op():
    for lib in (dlg, torch):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = lib.cuda.amp.GradScaler()
        loss = lib.tensor(2.0)
        assert s.scale(loss) is loss and s.get_scale() == 1.0 and s.state_dict() == {}
        s.load_state_dict({})  # ignored while disabled
        s.update()
        assert not s.is_enabled() and s._get_growth_tracker() == 0
        class Opt:
            param_groups = []
            calls = []

            def step(self, closure=None):
                self.calls.append(closure)
                return "stepped"

        opt = Opt()
        assert s.step(opt, closure="c") == "stepped" and opt.calls == ["c"]
        s.unscale_(Opt())


def test_cpu_scaler_skips_inf_steps_and_backs_off_like_torch():
    out = {}
    for lib in (dlg, torch):
        s = lib.amp.GradScaler("cpu", init_scale=8.0, growth_interval=1)
        w = lib.tensor(np.ones(2, np.float32), requires_grad=True)
        opt = lib.optim.SGD([w], lr=0.5)
        history = []
        for bad in (False, True, False):
            opt.zero_grad()
            s.scale((w * 3.0).sum()).backward()
            if bad:
                w.grad = lib.tensor(np.array([np.inf, 1.0], np.float32))
            s.step(opt)
            s.update()
            history.append((w.detach().numpy().copy(), s.get_scale(), s._get_growth_tracker()))
        s.update(2.0)
        history.append(s.state_dict())
        out[lib.__name__] = history
    for ours, theirs in zip(out["dlg"], out["torch"]):
        if isinstance(ours, dict):
            assert ours == theirs
            continue
        np.testing.assert_allclose(ours[0], theirs[0])
        assert ours[1:] == theirs[1:]


def test_cpu_scaler_state_round_trips():
    a = dlg.amp.GradScaler("cpu", init_scale=4.0)
    b = dlg.amp.GradScaler("cpu")
    b.load_state_dict(a.state_dict())
    assert b.get_scale() == 4.0 and b.state_dict() == a.state_dict()
    assert a.scale([dlg.tensor(1.0), (dlg.tensor(2.0),)])[1][0].item() == 8.0


# (call, message fragment): torch's CPU scaler refuses each (RuntimeError or AssertionError)
SCALER_ERRORS = [
    ("s.update()", "scale"),
    ("s.scale(l); s.update()", "no inf checks"),
    ("s.scale(l); s.unscale_(o); s.unscale_(o)", "already been called"),
    ("s.scale(l); s.step(o); s.step(o)", r"step\(\) has already been called"),
    ("s.scale(l); s.step(o); s.unscale_(o)", "after step"),
    ("s.scale(l); s.step(o, closure=lambda: 0)", "Closure"),
    ("s.load_state_dict({})", "state dict is empty"),
    ("lib.amp.GradScaler('cpu', growth_factor=0.5)", "growth factor"),
    ("lib.amp.GradScaler('cpu', backoff_factor=2.0)", "backoff factor"),
]


@pytest.mark.parametrize("code,fragment", SCALER_ERRORS)
def test_cpu_scaler_errors_like_torch(code, fragment):
    for lib in (torch, dlg):
        w = lib.tensor(np.ones(2, np.float32), requires_grad=True)
        scope = {"lib": lib, "s": lib.amp.GradScaler("cpu"), "l": (w * 2).sum(),
                 "o": lib.optim.SGD([w], lr=0.1)}
        (w * 2).sum().backward()
        errors = (RuntimeError, AssertionError) if lib is torch else dlg.DlgError
        with pytest.raises(errors, match=None if lib is torch else fragment):
            exec(code, scope)


AUTOCAST_ROWS = [  # (device_type, dtype of lib, enabled, torch: enabled afterwards / warns)
    ("cuda", None, True),
    ("cuda", "bfloat16", True),
    ("cpu", None, False),
    ("cpu", "bfloat16", False),
    ("cpu", "float32", True),
    ("cpu", "float64", True),
    ("mps", None, True),
]


@pytest.mark.parametrize("device,dtype,enabled", AUTOCAST_ROWS)
def test_autocasts_that_run_disabled_like_torch(device, dtype, enabled):
    states = {}
    for lib in (dlg, torch):
        kwargs = {} if dtype is None else {"dtype": getattr(lib, dtype)}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a = lib.autocast(device, enabled=enabled, **kwargs)
            with a:
                inside = lib.is_autocast_enabled()
        states[lib.__name__] = (a._enabled, inside, bool(caught))
    if device == "mps":  # torch on a CPU machine enables an MPS autocast that does nothing
        assert states["dlg"] == (False, False, True)
        return
    assert states["dlg"] == states["torch"]


@pytest.mark.parametrize("dtype", [None, "float16", "bfloat16"])
def test_enabled_cpu_autocast_to_lower_precision_is_refused(dtype):
    kwargs = {} if dtype is None else {"dtype": getattr(dlg, dtype)}
    with pytest.raises(dlg.DlgValueError, match="enabled=False") as info:
        with dlg.autocast("cpu", **kwargs):
            pass
    assert info.value.span.file == __file__
    with pytest.raises(dlg.DlgValueError, match="float32"):
        dlg.amp.autocast(device_type="cpu", dtype=dlg.float16)
    with torch.autocast("cpu", **({} if dtype is None else {"dtype": torch.float16})):
        assert torch.is_autocast_enabled("cpu")  # torch computes in lower precision here


def test_autocast_decorator_and_bad_device():
    @dlg.autocast("cuda", enabled=False)
    def double(x):
        return x * 2

    assert double(dlg.tensor(2.0)).item() == 4.0
    with pytest.raises(dlg.DlgValueError, match="unknown device_type"):
        dlg.autocast("gpu")
    with pytest.raises(RuntimeError):
        torch.autocast("gpu")
    assert not dlg.amp.is_autocast_available("cpu")
    assert not dlg.cuda.is_available() and dlg.cuda.device_count() == torch.cuda.device_count()


def test_bfloat16_is_a_name_for_autocast_and_refused_as_a_dtype():
    """`dtype=torch.bfloat16` in a disabled autocast runs; an enabled one and a tensor or module
    of it are refused by name (dlg has no bfloat16 tensors)."""
    assert repr(dlg.bfloat16) == "dlg.bfloat16"
    with dlg.autocast(device_type="cpu", dtype=dlg.bfloat16, enabled=False):
        assert not dlg.is_autocast_enabled("cpu")
    with pytest.raises(dlg.DlgValueError, match="autocast.*bfloat16.*enabled=False"):
        dlg.autocast(device_type="cpu", dtype=dlg.bfloat16)
    for make in (lambda: dlg.zeros(2, dtype=dlg.bfloat16), lambda: dlg.ones(2).to(dlg.bfloat16),
                 lambda: nn.Linear(2, 2).to(dlg.bfloat16),
                 lambda: nn.Linear(2, 2).to(dtype=dlg.bfloat16)):
        with pytest.raises(dlg.DlgTypeError, match="no bfloat16 tensors"):
            make()


def _scaled_square(lib, fwd, bwd):
    """A custom Function decorated as AMP-aware code decorates it (torch's docs example)."""

    class ScaledSquare(lib.autograd.Function):
        @staticmethod
        @fwd
        def forward(ctx, x, scale):
            ctx.save_for_backward(x)
            ctx.scale = scale
            return x * x * scale

        @staticmethod
        @bwd
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 2 * x * ctx.scale * grad, None

    return ScaledSquare.apply


@pytest.mark.parametrize("spelling", ["amp", "amp cast_inputs", "cuda.amp"])
def test_custom_fwd_and_bwd_decorate_a_function_as_torchs(spelling):
    results = []
    for lib in (torch, dlg):
        fwd, bwd = {
            "amp": (lib.amp.custom_fwd(device_type="cpu"), lib.amp.custom_bwd(device_type="cpu")),
            "amp cast_inputs": (lib.amp.custom_fwd(device_type="cuda", cast_inputs=lib.float32),
                                lib.amp.custom_bwd(device_type="cuda")),
            "cuda.amp": (lambda f, lib=lib: lib.cuda.amp.custom_fwd(f),
                         lambda f, lib=lib: lib.cuda.amp.custom_bwd(f)),
        }[spelling]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            square = _scaled_square(lib, fwd, bwd)
            x = lib.tensor(np.array([1.0, -2.0, 3.0], np.float32), requires_grad=True)
            with lib.autocast("cpu", enabled=False):
                y = square(x, 0.5)
            y.sum().backward()
        results.append((y.detach().numpy(), x.grad.numpy(),
                        sorted({w.category.__name__ for w in caught})))
    np.testing.assert_allclose(results[1][0], results[0][0])
    np.testing.assert_allclose(results[1][1], results[0][1])
    assert results[1][2] == results[0][2]  # FutureWarning for the cuda.amp spelling only
    with pytest.raises(dlg.DlgTypeError, match="device_type"):
        dlg.amp.custom_fwd(lambda ctx: None, device_type=0)
