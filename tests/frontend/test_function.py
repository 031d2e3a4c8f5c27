"""`dlg.autograd.Function` against torch.autograd.Function: the same subclasses, written once for
both libraries (`make(lib)`), give the same values and gradients eagerly (the user's backward
runs at backward time), with create_graph, and traced and compiled (the user's backward is the
node's gradient graph, never the forward's own derivative); misuse is a DlgError naming the
Function."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.compiler.passes.autodiff import grad
from dlg.errors import DlgError
from dlg.ir.ops.custom import CUSTOM_VJP
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph

torch = pytest.importorskip("torch")
R = np.random.default_rng(0)


def make(lib):
    """The test's Functions, on `lib` (dlg or torch): identical code."""
    Function = lib.autograd.Function

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y

    class RoundSTE(Function):  # straight-through: round forward, identity backward
        @staticmethod
        def forward(ctx, x):
            return x.round()

        @staticmethod
        def backward(ctx, g):
            return g

    class LeakyClamp(Function):  # clamp, with a tenth of the gradient outside the range
        @staticmethod
        def forward(ctx, x, lo, hi):
            ctx.save_for_backward(x)
            ctx.lo, ctx.hi = lo, hi
            return x.clamp(lo, hi)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            inside = (x >= ctx.lo) & (x <= ctx.hi)
            return lib.where(inside, g, g * 0.1), None, None

    class MulAdd(Function):  # two inputs, two outputs
        @staticmethod
        def forward(ctx, x, y):
            ctx.save_for_backward(x, y)
            MulAdd.needs.append(tuple(ctx.needs_input_grad))
            return x * y, x + y

        @staticmethod
        def backward(ctx, gp, gs):
            x, y = ctx.saved_tensors
            return (gp * y + gs if ctx.needs_input_grad[0] else None,
                    gp * x + gs if ctx.needs_input_grad[1] else None)

    class Sorted(Function):  # an output marked non-differentiable
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            twice, flag = x * 2, (x > 0).to(x.dtype)
            ctx.mark_non_differentiable(flag)
            return twice, flag

        @staticmethod
        def backward(ctx, g, gflag):
            ctx.gflag = gflag
            return g * 2

    class Cube(Function):  # forward without ctx, torch's setup_context style
        @staticmethod
        def forward(x):
            return x * x * x

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * g * x * x

    class OnceExp(Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        @lib.autograd.function.once_differentiable
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y

    MulAdd.needs = []
    return {c.__name__: c for c in (Exp, RoundSTE, LeakyClamp, MulAdd, Sorted, Cube, OnceExp)}


DLG, TORCH = make(dlg), make(torch)


def leaves(*arrays, requires=None):
    """The same data as dlg and torch leaves requiring grad (all unless `requires` says)."""
    requires = requires or [True] * len(arrays)
    return ([dlg.tensor(a, requires_grad=r) for a, r in zip(arrays, requires)],
            [torch.tensor(a, requires_grad=r) for a, r in zip(arrays, requires)])


def both(loss, *arrays, requires=None):
    """loss(fns, *tensors) and its gradients on dlg and on torch, compared."""
    (ours, theirs) = leaves(*arrays, requires=requires)
    got, want = loss(DLG, *ours), loss(TORCH, *theirs)
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-6)
    got.backward()
    want.backward()
    for a, b in zip(ours, theirs):
        assert (a.grad is None) == (b.grad is None)
        if b.grad is not None:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-7)
    return ours, theirs


def x23():
    return R.uniform(-2, 2, (2, 3)).astype(np.float32)


@pytest.mark.parametrize("loss", [
    lambda F, x: (F["Exp"].apply(x) * F["Exp"].apply(x * 0.5)).sum(),
    lambda F, x: (F["RoundSTE"].apply(x * 3) * x).sum(),
    lambda F, x: (F["LeakyClamp"].apply(x, -0.5, 1.0) ** 2).sum(),
    lambda F, x: F["Cube"].apply(x).mean(),
    lambda F, x: (F["OnceExp"].apply(x) * 3).sum(),
], ids=["exp", "ste", "leaky_clamp", "setup_context", "once_differentiable"])
def test_gradients_are_the_users_backward(loss):
    both(loss, x23())


def test_steps_share_one_gradient_graph_each_with_its_own_saved_tensors_and_options():
    """A loop calling a Function on new data keeps one gradient graph (the node rebound to each
    call), yet every backward sees its own call's saved tensors and ctx attributes, an earlier
    loss's too."""
    calls = [(x23(), -0.5, 1.0), (x23(), -1.0, 0.2), (x23(), 0.0, 0.5)]

    def loss(F, x, lo, hi):
        return (F["LeakyClamp"].apply(F["Exp"].apply(x), lo, hi) ** 2).sum()
    (first,), (first_t,) = leaves(calls[0][0])
    kept_loss = loss(DLG, first, *calls[0][1:])
    kept_loss.backward(retain_graph=True)
    plans = dlg.frontend.autograd._state.plans  # the thread's kept gradient graphs
    kept = len(plans)
    for x, lo, hi in calls[1:]:
        both(lambda F, x, lo=lo, hi=hi: loss(F, x, lo, hi), x)
    assert len(plans) == kept
    first.grad = None
    kept_loss.backward()
    loss(TORCH, first_t, *calls[0][1:]).backward()
    np.testing.assert_allclose(first.grad.numpy(), first_t.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_round_is_not_differentiated_through_its_forward():
    """The STE's gradient is its backward's (1), where round's own derivative is 0."""
    (x,), _ = both(lambda F, x: F["RoundSTE"].apply(x).sum(), x23())
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((2, 3), np.float32))


def test_two_inputs_two_outputs_and_needs_input_grad():
    x, y = x23(), x23()
    for requires in ([True, True], [True, False], [False, True]):
        def loss(F, x, y):
            p, s = F["MulAdd"].apply(x, y)
            return (p * 2 + s * s).sum()
        both(loss, x, y, requires=requires)
    assert DLG["MulAdd"].needs == TORCH["MulAdd"].needs == [(True, True), (True, False),
                                                            (False, True)]


def test_a_non_differentiable_output_gets_zeros_in_backward():
    (x,), (tx,) = leaves(x23())
    ours = DLG["Sorted"].apply(x)
    theirs = TORCH["Sorted"].apply(tx)
    assert not ours[1].requires_grad and not theirs[1].requires_grad
    (ours[0].sum() + ours[1].sum()).backward()
    (theirs[0].sum() + theirs[1].sum()).backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


def test_no_recording_without_inputs_requiring_grad_or_under_no_grad():
    x = dlg.tensor(x23())
    assert DLG["Exp"].apply(x).grad_fn is None
    with dlg.no_grad():
        assert not DLG["Exp"].apply(dlg.tensor(x23(), requires_grad=True)).requires_grad


def test_second_derivatives_with_create_graph():
    """create_graph runs backward recorded: d2/dx2 sum(exp(x)^2) and of x^3, as torch."""
    for name, f in (("Exp", lambda y: (y * y).sum()), ("Cube", lambda y: y.sum())):
        (x,), (tx,) = leaves(x23())
        (g,) = dlg.autograd.grad(f(DLG[name].apply(x)), x, create_graph=True)
        (tg,) = torch.autograd.grad(f(TORCH[name].apply(tx)), tx, create_graph=True)
        np.testing.assert_allclose(g.detach().numpy(), tg.detach().numpy(), rtol=1e-5)
        (g * g).sum().backward()
        (tg * tg).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-4)


def test_once_differentiable_refuses_a_second_derivative():
    (x,), (tx,) = leaves(x23())
    y = DLG["OnceExp"].apply(x)
    (g,) = dlg.autograd.grad((y * y).sum(), x, create_graph=True)
    ty = TORCH["OnceExp"].apply(tx)
    (tg,) = torch.autograd.grad((ty * ty).sum(), tx, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), tg.detach().numpy(), rtol=1e-5)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        tg.sum().backward()
    with pytest.raises(DlgError, match="OnceExp.backward is once_differentiable"):
        g.sum().backward()


# ---- traced and compiled: the user's backward is the node's gradient --------------------------
def ste_loss(F, x, w):
    return (F["RoundSTE"].apply(x * 3) * w).sum() + F["LeakyClamp"].apply(x, -0.5, 1.0).sum()


def two_outputs_loss(F, x, w):
    p, s = F["MulAdd"].apply(x, w)
    return (F["Exp"].apply(p) + s * s).sum()


def uniform(*shape):
    return R.uniform(-1, 1, shape).astype(np.float32)


@pytest.mark.parametrize("loss", [ste_loss, two_outputs_loss], ids=["ste_clamp", "mul_add_exp"])
def test_traced_gradient_is_the_users_backward_and_compiles(loss):
    traced = dlg.trace(lambda x, w: loss(DLG, x, w), uniform(2, 3), uniform(2, 3))
    assert any(n.op is CUSTOM_VJP for n in traced.graph)
    gg = grad(traced.graph, "output", wrt=["x", "w"])
    xs, ws = uniform(5, 3), uniform(5, 3)  # another batch size: N stays symbolic
    tx, tw = torch.tensor(xs, requires_grad=True), torch.tensor(ws, requires_grad=True)
    want = loss(make(torch), tx, tw)
    want.backward()
    interpreted, _ = Interpreter().run(gg, {"x": xs, "w": ws}, {})
    compiled = NativeGraph(gg)({"x": xs, "w": ws}, {})
    for got in (interpreted, compiled):
        np.testing.assert_allclose(got["output"], want.item(), rtol=1e-5)
        np.testing.assert_allclose(got["grad.x"], tx.grad.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["grad.w"], tw.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dlg.compile(traced)(x=xs, w=ws), want.item(), rtol=1e-5)


def test_traced_module_trains_with_the_users_gradient():
    """A quantised linear layer (STE on its weight) traced for training: one compiled SGD step
    moves the weight as torch's does (round's own gradient would leave it where it was)."""
    w0, xs, ys = uniform(2, 3), uniform(4, 3), uniform(4, 2)

    def module(lib, fns):
        class Quantised(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = lib.nn.Parameter(lib.tensor(w0))

            def forward(self, x):
                return x @ fns["RoundSTE"].apply(self.weight * 4).t() / 4
        return Quantised()
    ours, theirs = module(dlg, DLG), module(torch, TORCH)
    model = dlg.trace_train(ours, dlg.nn.MSELoss(), dlg.optim.SGD(ours.parameters(), lr=0.5),
                            xs, ys)
    model.fit(xs, ys, epochs=1, batch_size=4, shuffle=False, verbose=0, compiled=True)
    opt = torch.optim.SGD(theirs.parameters(), lr=0.5)
    torch.nn.functional.mse_loss(theirs(torch.tensor(xs)), torch.tensor(ys)).backward()
    opt.step()
    np.testing.assert_allclose(model.params["weight"], theirs.weight.detach().numpy(),
                               rtol=1e-5)
    assert not np.allclose(model.params["weight"], w0)


# ---- misuse ------------------------------------------------------------------------------------
class WrongCount(dlg.autograd.Function):
    @staticmethod
    def forward(ctx, x, k):
        return x * k

    @staticmethod
    def backward(ctx, g):
        return g


class WrongShape(dlg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g[:1, :1].reshape(1) * 0 + g.sum()


class GradForNumber(dlg.autograd.Function):
    @staticmethod
    def forward(ctx, x, k):
        return x * k

    @staticmethod
    def backward(ctx, g):
        return g * 2, g


class Broadcasts(dlg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return (g * 2).expand(4, 2, 3)  # summed back to x's shape, as torch does


@pytest.mark.parametrize("fn, args, message", [
    (WrongCount, (3.0,), r"WrongCount.backward returned an incorrect number of gradients "
                         r"\(expected 2, got 1\)"),
    (WrongShape, (), r"WrongShape.backward returned an invalid gradient: got \[1\] but expected "
                     r"shape compatible with \[2, 3\]"),
    (GradForNumber, (3.0,), "returned a gradient different than None at position 1"),
])
def test_bad_gradients_are_errors_naming_the_function(fn, args, message):
    x = dlg.tensor(x23(), requires_grad=True)
    with pytest.raises(DlgError, match=message):
        fn.apply(x, *args).sum().backward()


def test_a_gradient_of_a_broadcast_shape_is_summed_back():
    x = dlg.tensor(x23(), requires_grad=True)
    Broadcasts.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 8, np.float32))


class Captures(dlg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return x * Captures.other

    @staticmethod
    def backward(ctx, g):
        return g


class ReadsUnsaved(dlg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return x * x

    @staticmethod
    def backward(ctx, g):
        return 2 * g * ctx.x


class NeedsValues(dlg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * float(g.sum())


def captures(x, y):
    Captures.other = y
    return Captures.apply(x)


def test_traced_bodies_see_only_what_they_are_given():
    x = x23()
    with pytest.raises(DlgError, match=r"Captures.forward reads a traced tensor \(f32\[N,3\]\) "
                                       r"that is not one of its arguments: pass it to apply"):
        dlg.trace(captures, x, x)
    with pytest.raises(DlgError, match="ReadsUnsaved.backward reads a traced tensor .* was not "
                                       "saved: save it with ctx.save_for_backward"):
        dlg.trace(lambda x: ReadsUnsaved.apply(x), x)
    with pytest.raises(DlgError, match="tensor's value") as info:
        dlg.trace(lambda x: NeedsValues.apply(x), x)
    assert "while tracing NeedsValues.backward" in str(info.value)
    # eagerly, the same backward runs on concrete tensors
    t = dlg.tensor(x, requires_grad=True)
    NeedsValues.apply(t).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), np.full((2, 3), 6.0), rtol=1e-6)


def test_apply_takes_positional_arguments_only():
    with pytest.raises(DlgError, match="apply takes positional arguments only"):
        DLG["Exp"].apply(x=dlg.tensor(x23()))
