"""dlg.autograd.gradcheck / gradgradcheck against torch's verdicts on the same functions, and
grad(create_graph=True) differentiating through output gradients that require grad."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

import dlg
from dlg.autograd.gradcheck import GradcheckError

torch = pytest.importorskip("torch")


def cube_function(lib, factor):
    """x**3 with a backward `factor` * x**2 (3 is right)."""

    class Cube(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * factor * x ** 2

    return Cube.apply


FUNCTIONS = {  # name: (function of lib, number of inputs)
    "cube": (lambda lib: cube_function(lib, 3.0), 1),
    "wrong cube": (lambda lib: cube_function(lib, 2.0), 1),
    "linear tanh": (lambda lib: lambda x, w: lib.nn.functional.linear(x, w).tanh(), 2),
    "two outputs": (lambda lib: lambda x, w: (x @ w.t(), (x * x).sum(0)), 2),
    "detached path": (lambda lib: lambda x: x.detach() * 2 + x, 1),
    "softmax": (lambda lib: lambda x: lib.softmax(x, dim=1) * x, 1),
}


def inputs(lib, n):
    rng = np.random.default_rng(3)
    shapes = [(3, 2), (4, 2)][:n]
    return tuple(lib.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_gradcheck_gives_torchs_verdict(name):
    make, n = FUNCTIONS[name]
    verdicts = [lib.autograd.gradcheck(make(lib), inputs(lib, n), raise_exception=False)
                for lib in (torch, dlg)]
    assert verdicts[0] == verdicts[1]
    if name in ("wrong cube", "detached path"):
        assert verdicts[1] is False
        with pytest.raises(GradcheckError, match="Jacobian mismatch for output 0 with respect "
                           "to input 0") as caught:
            dlg.autograd.gradcheck(make(dlg), inputs(dlg, n))
        assert isinstance(caught.value, dlg.DlgError)
        assert caught.value.span.file == __file__


@pytest.mark.parametrize("name", ["cube", "linear tanh", "two outputs", "softmax"])
def test_gradgradcheck_gives_torchs_verdict(name):
    make, n = FUNCTIONS[name]
    verdicts = [lib.autograd.gradgradcheck(make(lib), inputs(lib, n), raise_exception=False)
                for lib in (torch, dlg)]
    assert verdicts == [True, True]


def test_gradgradcheck_catches_a_wrong_double_backward():
    """A backward that reads x detached is right once (gradcheck passes) and wrong twice."""
    for lib in (torch, dlg):

        class Cube(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x ** 3

            @staticmethod
            def backward(ctx, grad_output):
                (x,) = ctx.saved_tensors
                return grad_output * 3 * x.detach() ** 2

        assert lib.autograd.gradcheck(Cube.apply, inputs(lib, 1))
        assert not lib.autograd.gradgradcheck(Cube.apply, inputs(lib, 1), raise_exception=False)


def test_float32_inputs_warn_and_no_grad_input_is_an_error():
    x = dlg.tensor(np.ones((2, 2), np.float32), requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dlg.autograd.gradcheck(lambda a: a * 2, (x,), eps=1e-3, atol=1e-2)
    assert any("not a double precision" in str(w.message) for w in caught)
    assert caught[0].filename == __file__
    with pytest.raises(dlg.DlgValueError, match="at least one input tensor to require grad"):
        dlg.autograd.gradcheck(lambda a: a * 2, (x.detach(),))
    with pytest.raises(dlg.DlgValueError, match="check_forward_ad=True is not supported"):
        dlg.autograd.gradcheck(lambda a: a * 2, (x,), check_forward_ad=True)


def test_gradcheck_module_keeps_torchs_error_name():
    assert sys.modules["dlg.autograd.gradcheck"].GradcheckError is GradcheckError
    assert dlg.autograd.gradcheck.__name__ == "gradcheck"


def test_grad_differentiates_through_output_gradients_that_require_grad():
    results = []
    for lib in (torch, dlg):
        x = lib.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
        v = lib.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
        (g,) = lib.autograd.grad(x ** 3, x, v, create_graph=True)
        results.append([t.detach().numpy() for t in (g, *lib.autograd.grad((g * g).sum(), [v, x]))])
    for ours, theirs in zip(results[1], results[0]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
