"""dlg.autograd.functional (jacobian, hessian, vjp, jvp, hvp, vhp) against
torch.autograd.functional: values, result nesting and shapes, create_graph, strict mode and
the errors for bad calls."""

import numpy as np
import pytest

import dlg
from dlg.autograd import functional as AF

torch = pytest.importorskip("torch")
TF = torch.autograd.functional

R = np.random.default_rng(0)


def _data(*shapes):
    return [R.standard_normal(s).astype(np.float32) for s in shapes]


def _lift(lib, arrays, many):
    ts = tuple(lib.tensor(a) for a in arrays)
    return ts if many else ts[0]


def _same(got, want, tol=1e-4):
    """Equal nesting (tensor / tuple / tuple of tuples), shapes and values."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            _same(g, w, tol)
        return
    assert isinstance(got, dlg.Tensor), type(got)
    assert got.shape == tuple(want.shape)
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=tol, atol=tol)


# (name, function of lib returning f, input shapes, whether inputs are a tuple)
FUNCS = [
    ("one_in_one_out", lambda lib: lambda x: x.sin() * x.sum(), [(3,)], False),
    ("matrix_in", lambda lib: lambda x: (x @ x).tanh(), [(2, 2)], False),
    ("two_in", lambda lib: lambda x, y: x.exp() * y, [(3,), (3,)], True),
    ("two_out", lambda lib: lambda x, y: (x * y, (x ** 2).sum()), [(2,), (2,)], True),
    ("tuple_of_one", lambda lib: lambda x: (x.cos(),), [(4,)], True),
    ("unused_input", lambda lib: lambda x, y: x * 3.0, [(2,), (3,)], True),
]
SCALAR_FUNCS = [
    ("cubic", lambda lib: lambda x: (x ** 3 * x.sin()).sum(), [(3,)], False),
    ("pair", lambda lib: lambda x, y: (x.exp() * y.sum() + (y ** 2).sum()).sum(),
     [(2,), (3,)], True),
    ("linear", lambda lib: lambda x: (x * 2.0).sum(), [(3,)], False),
    ("matrix", lambda lib: lambda x: (x @ x.t()).sum() * x.tanh().sum(), [(2, 3)], False),
]


def _both(make, shapes, many):
    arrays = _data(*shapes)
    return [(lib, make(lib), _lift(lib, arrays, many)) for lib in (dlg, torch)]


@pytest.mark.parametrize("name,make,shapes,many", FUNCS, ids=[f[0] for f in FUNCS])
def test_jacobian_matches_torch(name, make, shapes, many):
    (_, f, x), (_, tf, tx) = _both(make, shapes, many)
    _same(AF.jacobian(f, x), TF.jacobian(tf, tx))
    _same(AF.jacobian(f, x, vectorize=True), TF.jacobian(tf, tx, vectorize=True))


@pytest.mark.parametrize("name,make,shapes,many", FUNCS, ids=[f[0] for f in FUNCS])
def test_vjp_and_jvp_match_torch(name, make, shapes, many):
    (_, f, x), (_, tf, tx) = _both(make, shapes, many)
    tout = tf(*(tx if many else (tx,)))
    out_tuple = isinstance(tout, tuple)
    v_out = _data(*[o.shape for o in (tout if out_tuple else (tout,))])
    v_in = _data(*shapes)
    _same(AF.vjp(f, x, _lift(dlg, v_out, out_tuple)),
          TF.vjp(tf, tx, _lift(torch, v_out, out_tuple)))
    _same(AF.jvp(f, x, _lift(dlg, v_in, many)), TF.jvp(tf, tx, _lift(torch, v_in, many)))


@pytest.mark.parametrize("name,make,shapes,many", SCALAR_FUNCS, ids=[f[0] for f in SCALAR_FUNCS])
def test_hessian_hvp_vhp_match_torch(name, make, shapes, many):
    (_, f, x), (_, tf, tx) = _both(make, shapes, many)
    _same(AF.hessian(f, x), TF.hessian(tf, tx))
    v = _data(*shapes)
    for ours, theirs in ((AF.hvp, TF.hvp), (AF.vhp, TF.vhp)):
        _same(ours(f, x, _lift(dlg, v, many)), theirs(tf, tx, _lift(torch, v, many)))
    _same(AF.vjp(f, x), TF.vjp(tf, tx))  # v may be left out for a one-element output


def test_v_may_be_left_out_for_a_one_element_input():
    for fn, tfn in ((AF.jvp, TF.jvp), (AF.hvp, TF.hvp), (AF.vhp, TF.vhp)):
        g = (lambda lib: lambda x: (x ** 3).sum())
        _same(fn(g(dlg), dlg.tensor([0.5])), tfn(g(torch), torch.tensor([0.5])))


def test_results_are_detached_without_create_graph():
    x = dlg.tensor(_data((3,))[0], requires_grad=True)
    out, vj = AF.vjp(lambda a: a.sin().sum(), x)
    jac = AF.jacobian(lambda a: a.sin(), x)
    assert not out.requires_grad and not vj.requires_grad and not jac.requires_grad
    assert x.grad is None


def test_create_graph_results_differentiate_back_to_the_inputs():
    """A penalty on a jacobian (or hvp) trains the caller's tensors, as in torch."""
    a = _data((3,))[0]
    grads = {}
    for lib, fns in ((dlg, AF), (torch, TF)):
        x = lib.tensor(a, requires_grad=True)
        w = lib.tensor(np.array([0.3, -0.2, 0.5], np.float32), requires_grad=True)
        jac = fns.jacobian(lambda v, w=w: (v * w).tanh(), x, create_graph=True)
        _, hv = fns.hvp(lambda v, w=w: ((v * w) ** 3).sum(), x, lib.ones(3),
                        create_graph=True)
        _, jv = fns.jvp(lambda v, w=w: (v * w).sin(), x, lib.ones(3), create_graph=True)
        assert jac.requires_grad and hv.requires_grad and jv.requires_grad
        ((jac ** 2).sum() + hv.sum() + jv.sum()).backward()
        grads[lib.__name__] = (x.grad.numpy().copy(), w.grad.numpy().copy())
    for got, want in zip(grads["dlg"], grads["torch"]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_create_graph_hessian_matches_torch():
    a = _data((3,))[0]
    hs = {}
    for lib, fns in ((dlg, AF), (torch, TF)):
        x = lib.tensor(a, requires_grad=True)
        h = fns.hessian(lambda v: (v ** 4).sum(), x, create_graph=True)
        h.sum().backward()
        hs[lib.__name__] = (h.detach().numpy(), x.grad.numpy())
    for got, want in zip(hs["dlg"], hs["torch"]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_works_under_no_grad():
    with dlg.no_grad():
        jac = AF.jacobian(lambda a: a ** 2, dlg.tensor([1.0, 2.0]))
        assert not dlg.is_grad_enabled()
    np.testing.assert_allclose(jac.numpy(), np.diag([2.0, 4.0]))


# (call, error class, message fragment): torch raises RuntimeError/TypeError for each
ERRORS = [
    (lambda: AF.vjp(lambda x: x * 2, dlg.ones(3)), dlg.DlgValueError,
     "v can only be None"),
    (lambda: AF.jvp(lambda x: x * 2, dlg.ones(3)), dlg.DlgValueError, "v can only be None"),
    (lambda: AF.vjp(lambda x: x * 2, dlg.ones(3), dlg.ones(2)), dlg.DlgValueError,
     "v has invalid size"),
    (lambda: AF.jvp(lambda x, y: x * y, (dlg.ones(2), dlg.ones(2)), (dlg.ones(2),)),
     dlg.DlgValueError, "v is a tuple of invalid length"),
    (lambda: AF.jacobian(lambda x: x * 2, [dlg.ones(2)]), dlg.DlgTypeError,
     "must be either a Tensor or a tuple of Tensors"),
    (lambda: AF.jacobian(lambda x: [x], dlg.ones(2)), dlg.DlgTypeError,
     "outputs of the user-provided function given to jacobian"),
    (lambda: AF.hessian(lambda x: x * 2, dlg.ones(2)), dlg.DlgValueError,
     "should contain a single element"),
    (lambda: AF.hvp(lambda x: (x.sum(), x.sum()), dlg.ones(2), dlg.ones(2)),
     dlg.DlgValueError, "should return a single Tensor"),
    (lambda: AF.jacobian(lambda x, y: x * 2, (dlg.ones(2), dlg.ones(2)), strict=True),
     dlg.DlgValueError, "Output 0 of the user-provided function is independent of input 1"),
    (lambda: AF.vjp(lambda x: dlg.ones(2), dlg.ones(2), dlg.ones(2), strict=True),
     dlg.DlgValueError, "does not require gradients"),
    (lambda: AF.hessian(lambda x: (x * 2).sum(), dlg.ones(2), strict=True),
     dlg.DlgValueError, "jacobian of the user-provided function with respect to input 0"),
    (lambda: AF.jacobian(lambda x: x, dlg.ones(2), strategy="sideways"), dlg.DlgValueError,
     "strategy"),
    (lambda: AF.jacobian(lambda x: x, dlg.ones(2), create_graph=True,
                         strategy="forward-mode"), dlg.DlgValueError, "forward-mode"),
    (lambda: AF.jacobian(lambda x: x, dlg.ones(2), strict=True, vectorize=True),
     dlg.DlgValueError, "vectorize"),
]


@pytest.mark.parametrize("call,cls,fragment", ERRORS)
def test_bad_calls_raise_like_torch(call, cls, fragment):
    with pytest.raises(cls, match=fragment) as info:
        call()
    assert info.value.span is not None and info.value.span.file.endswith(
        "test_autograd_functional.py")


def test_torch_refuses_the_same_calls():
    """The rows above, spot-checked on torch: each is an error there too."""
    with pytest.raises(RuntimeError, match="v can only be None"):
        TF.vjp(lambda x: x * 2, torch.ones(3))
    with pytest.raises(RuntimeError, match="independent of input 1"):
        TF.jacobian(lambda x, y: x * 2, (torch.ones(2), torch.ones(2)), strict=True)
    with pytest.raises(RuntimeError, match="single element"):
        TF.hessian(lambda x: x * 2, torch.ones(2))
    with pytest.raises(TypeError, match="tuple of Tensors"):
        TF.jacobian(lambda x: x * 2, [torch.ones(2)])


def test_computed_inputs_with_create_graph():
    """Derivatives at a computed tensor stay linked to its leaves, as in torch, first and
    second order (the tape is cut at the computed input, so the gradient is recorded in terms
    of it)."""
    a = _data((3,))[0]
    got = {}
    for lib, fns in ((dlg, AF), (torch, TF)):
        x = lib.tensor(a, requires_grad=True)
        y = x * 2.0
        _, vj = fns.vjp(lambda v: (v ** 2).sum(), y, create_graph=True)
        vj.sum().backward()
        got[lib.__name__] = (vj.detach().numpy(), x.grad.numpy())
    for g, w in zip(got["dlg"], got["torch"]):
        np.testing.assert_allclose(g, w, rtol=1e-5)
    for name in ("hessian", "hvp", "vhp"):  # second derivatives at a computed input, recorded
        got = {}
        for lib, fns in ((dlg, AF), (torch, TF)):
            x = lib.tensor(a, requires_grad=True)
            y = x * 2.0
            args = (y,) if name == "hessian" else (y, lib.ones(3))
            out = getattr(fns, name)(lambda v: (v ** 3).sum(), *args, create_graph=True)
            result = out if name == "hessian" else out[1]
            result.sum().backward()
            got[lib.__name__] = (result.detach().numpy(), x.grad.numpy())
        for g, w in zip(got["dlg"], got["torch"]):
            np.testing.assert_allclose(g, w, rtol=1e-5)
    y = dlg.tensor(a, requires_grad=True) * 2.0
    _same(AF.hessian(lambda v: (v ** 3).sum(), y),  # without create_graph: a fresh leaf
          TF.hessian(lambda v: (v ** 3).sum(), torch.tensor(a) * 2.0))
