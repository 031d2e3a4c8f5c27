"""Optimizer updates written into the parameters and state by the kernels computing them: every
optimizer's compiled step against the interpreter, a non-finite step changing nothing, and the
kernels that must keep the copy (an old value read later, a value read elsewhere)."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.compiler.kernel_ir import I64, Const, Copy, IfFinite, Kernel, Load, Loop, Op, Store, Var
from dlg.compiler.lower import Buffer, Program
from dlg.compiler.update_in_place import update_in_place
from dlg.errors import DlgValueError
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import ADD

MODEL = """model M { input x: f32[N, 3] layer fc = Linear(3, 5) layer out = Linear(5, 2)
                  output y = out(tanh(fc(x))) }
train M { input t: f32[N, 2] loss = mse_loss(y, t) optimizer = %s }"""


def spelled(value) -> str:
    """A hyperparameter as a .dlg train section writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "(" + ", ".join(map(spelled, value)) + ")"
    return "none" if value is None else repr(value)


def optimizer_text(name: str, hyper: dict) -> str:
    return f"{name}({', '.join(f'{k}={spelled(v)}' for k, v in hyper.items())})"


def stepped(source: str, compiled: bool, steps: int = 6) -> tuple[dict, dict]:
    m = dlg.loads(source, seed=0)
    step = m.train_step(compiled=compiled)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        step(x=rng.standard_normal((4, 3)).astype(np.float32),
             t=rng.standard_normal((4, 2)).astype(np.float32))
    return ({k: v.copy() for k, v in m.params.items()},
            {k: np.array(v, copy=True) for k, v in step.state.items()})


# each optimizer once (a compile each), with the options that change its update's shape:
# momentum (SGD's new momentum read back by the weight's update), amsgrad's running maximum,
# RMSprop's centring
IN_PLACE = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "betas": (0.8, 0.9)}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.05}),
    ("RMSprop", {"lr": 0.01, "weight_decay": 0.1, "momentum": 0.5, "centered": True}),
    ("Adadelta", {}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.2}),
    ("Adamax", {}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1}),
    ("RAdam", {}),
    ("Rprop", {}),
    ("ASGD", {}),
    ("Adafactor", {}),
]


@pytest.mark.parametrize("name, hyper", IN_PLACE,
                         ids=[f"{n}-{'-'.join(h)}" for n, h in IN_PLACE])
def test_every_optimizer_compiled_in_place_matches_the_interpreter(name, hyper):
    source = MODEL % optimizer_text(name, hyper)
    (params, state), (want_params, want_state) = stepped(source, True), stepped(source, False)
    for k, v in {**want_params, **want_state}.items():
        np.testing.assert_allclose({**params, **state}[k], v, rtol=2e-5, atol=1e-6, err_msg=k)


def test_the_weights_are_written_by_the_kernels_that_compute_them():
    """SGD with momentum: no copy of a weight or a momentum is left; the step counter, which
    every update reads, is still copied last."""
    p = dlg.compile(dlg.loads(MODEL % "SGD(lr=0.1, momentum=0.9)")).train_step().native.program
    last = p.kernels[-1]
    assert last.name.endswith("update_state")
    (guard,) = last.body
    assert isinstance(guard, IfFinite) and [c.dst for c in guard.body] == ["p.optimizer.step"]
    writers = {b for k in p.kernels[:-1] for b in k.writes}
    assert {"p.fc.weight", "p.out.bias", "p.optimizer.fc.weight.momentum_buffer"} <= writers


def test_a_step_with_a_non_finite_loss_changes_nothing():
    m = dlg.loads(MODEL % "Adam(lr=0.1)", seed=0)
    step = m.train_step(compiled=True)
    x, t = np.ones((4, 3), np.float32), np.ones((4, 2), np.float32)
    step(x=x, t=t)
    before = ({k: v.copy() for k, v in m.params.items()},
              {k: np.array(v, copy=True) for k, v in step.state.items()})
    with pytest.raises(DlgValueError, match="the loss is nan"):
        step(x=np.full((4, 3), np.nan, np.float32), t=t)
    for k, v in {**before[0], **before[1]}.items():
        np.testing.assert_array_equal({**m.params, **step.state}[k], v, err_msg=k)


# ---- which kernels may write in place ------------------------------------------------------------
F32 = DType.f32
AT = Var(I64, "i")


def load(buffer: str, index=AT) -> Load:
    return Load(F32, buffer, index)


def program(update: Store, *later: Kernel) -> Program:
    """`p.w` updated to `t.new` by `update` (inside a loop over i), the copy under the loss."""
    p = Program("p", {name: Buffer(name, F32, (8,), kind) for name, kind in [
        ("p.w", "param"), ("in.g", "input"), ("t.new", "temp"), ("out.loss", "output")]})
    p.kernels = [Kernel.over("k0_loss", (Store("out.loss", Const(I64, 0), load("in.g")),)),
                 Kernel.over("k1_update", (Loop("i", Const(I64, 8), (update,), True),)),
                 *later,
                 Kernel.over("k9_update_state", (IfFinite("out.loss", (
                     Copy("p.w", "t.new", Const(I64, 8)),)),))]
    return p


def test_an_elementwise_update_moves_under_the_guard():
    p = update_in_place(program(Store("t.new", AT, Op(F32, ADD, (load("p.w"), load("in.g"))))))
    assert [k.name for k in p.kernels] == ["k0_loss", "k1_update"] and "t.new" not in p.buffers
    (guard,) = p.kernels[1].body
    assert isinstance(guard, IfFinite) and guard.body[0].body[0].buffer == "p.w"


@pytest.mark.parametrize("update, later", [
    (Store("t.new", AT, Op(F32, ADD, (load("p.w", Op(I64, ADD, (AT, Const(I64, 1)))),
                                     load("in.g")))), ()),  # reads a neighbour's old value
    (Store("t.new", AT, load("in.g")),
     (Kernel.over("k2_reads_old", (Store("out.loss", AT, load("p.w")),)),)),  # read after
    (Store("t.new", AT, load("in.g")),
     (Kernel.over("k2_reads_new", (Store("out.loss", AT, load("t.new")),)),)),  # read elsewhere
], ids=["neighbour", "old-value-read-later", "new-value-read-elsewhere"])
def test_an_update_that_cannot_move_keeps_its_copy(update, later):
    p = update_in_place(program(update, *later))
    assert p.kernels[-1].name == "k9_update_state" and "t.new" in p.buffers


def test_a_new_value_read_by_another_moving_update_moves_with_it():
    """Adam's moments of a large weight, computed by one kernel and read by the one updating the
    weight: both write the state, the second reading the moments from it."""
    p = Program("p", {name: Buffer(name, F32, (8,), kind) for name, kind in [
        ("p.w", "param"), ("p.m", "param"), ("in.g", "input"), ("t.m", "temp"),
        ("t.w", "temp"), ("out.loss", "output")]})
    loop = lambda store: Loop("i", Const(I64, 8), (store,), True)  # noqa: E731
    p.kernels = [
        Kernel.over("k0_loss", (Store("out.loss", Const(I64, 0), load("in.g")),)),
        Kernel.over("k1_moment", (loop(Store("t.m", AT, Op(F32, ADD, (load("p.m"),
                                                                      load("in.g"))))),)),
        Kernel.over("k2_weight", (loop(Store("t.w", AT, Op(F32, ADD, (load("p.w"),
                                                                      load("t.m"))))),)),
        Kernel.over("k9_update_state", (IfFinite("out.loss", (
            Copy("p.m", "t.m", Const(I64, 8)), Copy("p.w", "t.w", Const(I64, 8)))),))]
    p = update_in_place(p)
    assert [k.name for k in p.kernels] == ["k0_loss", "k1_moment", "k2_weight"]
    assert "t.m" not in p.buffers and "t.w" not in p.buffers
    assert p.kernels[1].writes == ("p.m",) and p.kernels[2].writes == ("p.w",)
    assert "p.m" in p.kernels[2].reads


@pytest.mark.parametrize("name, hyper", [("Adam", {"lr": 0.01}),
                                         ("SGD", {"lr": 0.1, "momentum": 0.9})])
def test_eager_updates_of_a_large_weight_match_torch(name, hyper):
    """A weight large enough that the optimizer graph computes its moments in a kernel of their
    own, read by the weight's: dlg's eager optimizer against torch's."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    w0 = rng.standard_normal((300, 700)).astype(np.float32)
    grads = [rng.standard_normal(w0.shape).astype(np.float32) for _ in range(3)]
    results = []
    for lib in (torch, dlg):
        w = lib.nn.Parameter(lib.tensor(w0.copy()))
        opt = getattr(lib.optim, name)([w], **hyper)
        for g in grads:
            opt.zero_grad()
            w.grad = lib.tensor(g)
            opt.step()
        results.append(w.detach().numpy().copy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-6)
