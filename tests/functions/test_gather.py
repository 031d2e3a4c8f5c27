"""gather, scatter_add, scatter, index_select, index_add and take_along_dim against torch: values
and gradients of the same Python expression run with `lib` = dlg and `lib` = torch (functions and
methods, negative dims, int32 and int64 indices, 0-d and empty operands, broadcasting); their
errors; the .dlg door; traced + compiled against eager, and compiled gradients against the
interpreter."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import dlg
from dlg.compiler.passes.autodiff import grad
from dlg.errors import DlgError, DlgShapeError, DlgTypeError, DlgValueError
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph
from tests.compiler.gradcheck import check_gradients, scalar_loss, to_f64

R = np.random.default_rng(0)
f = lambda *s: R.standard_normal(s).astype(np.float32)  # noqa: E731
i64 = lambda v: np.array(v, np.int64)  # noqa: E731

FLOATS = {"x": f(3, 4), "s": f(), "t": f(), "src": f(3, 2), "big": f(3, 5), "src23": f(2, 3),
          "src34": f(3, 4), "src33": f(3, 3)}
INDICES = {
    "i0": i64([[0, 2, 1, 2], [1, 0, 0, 2]]),   # dim 0, repeats
    "i1": i64([[3, 0], [1, 1], [2, 3]]),       # dim 1, repeats
    "ismall": i64([[3, 1, 0], [0, 0, 2]]),     # smaller than x on both axes
    "iwide": i64([[0, 1, 2, 3, 3, 1]]),        # longer than x along the dim
    "u0": i64([[2, 0, 1, 1], [0, 1, 2, 0]]),   # dim 0, distinct per column
    "u1": i64([[3, 0], [1, 2], [0, 3]]),       # dim 1, distinct per row
    "v": i64([2, 0, 2]), "z": i64(0), "z1": i64([0]), "e": np.zeros((2, 0), np.int64),
    "e1": np.zeros(0, np.int64), "b": i64([[1, 3]]), "flat": i64([11, 0, 5, 5, 7]),
    "ineg": i64([[-1, 0, -4, 3], [2, -2, -3, -1], [0, 0, -1, 1]]),  # counts from the end
}
INDICES.update({f"{k}_32": a.astype(np.int32) for k, a in list(INDICES.items())[:2]})

# (torch's backward refuses a src larger than the index and scatter's reduce=: rows detach them)
CASES = [
    "lib.gather(x, 0, i0)", "x.gather(1, i1)", "lib.gather(x, -1, ismall)",
    "lib.gather(x, dim=1, index=iwide)", "lib.gather(x, 0, i0_32)", "lib.gather(s, 0, z)",
    "lib.gather(s, -1, z1)", "lib.gather(x, 0, e)",
    "lib.scatter_add(x, 1, i1, src)", "x.scatter_add(0, i0, big.detach())",
    "lib.scatter_add(x, -1, ismall, src23)", "lib.scatter_add(x, 1, i1_32, src)",
    "lib.scatter_add(s, 0, z, t)", "lib.scatter_add(x, 0, e, big.detach())",
    "lib.scatter(x, 1, u1, src)", "x.scatter(0, u0, big.detach())", "lib.scatter(x, 1, i1, 2.5)",
    "lib.scatter(x, 1, i1, src)", "x.scatter(0, i0, src34[:2])",  # repeats: the last write stays
    "x.scatter(-1, u1, value=-1.0)", "lib.scatter(x.detach(), 1, i1, src.detach(), reduce='add')",
    "lib.scatter(s, 0, z, t)", "lib.scatter(s, 0, z, 3.0)",
    "lib.index_select(x, 0, v)", "x.index_select(-1, v)", "lib.index_select(x, 1, i0_32[0])",
    "lib.index_select(x, 0, z)", "lib.index_select(s, 0, z)", "lib.index_select(x, 0, e1)",
    "lib.index_add(x, 0, v, src34)", "x.index_add(1, v, src33, alpha=2)",
    "lib.index_add(x, -1, v, src33, alpha=-0.5)", "lib.index_add(s, 0, z, t)",
    "lib.take_along_dim(x, i1, 1)", "lib.take_along_dim(x, b, 1)", "x.take_along_dim(flat)",
    "lib.take_along_dim(x, i0, dim=-2)", "lib.take_along_dim(x, ineg, 1)",
]


def run(lib, expr: str):
    """`expr` with `lib`'s tensors; its value and the gradients of a weighted sum of it."""
    names = set(re.findall(r"[A-Za-z_]\w*", expr))
    leaves = {k: lib.tensor(a, requires_grad=True) for k, a in FLOATS.items() if k in names}
    env = {"lib": lib, **leaves, **{k: lib.tensor(a) for k, a in INDICES.items() if k in names}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates scatter's reduce= for tensors
        out = eval(expr, env)
    w = np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(np.float32)
    if out.requires_grad:
        (out * lib.tensor(w)).sum().backward()
    return out.detach().numpy(), {k: t.grad.numpy() for k, t in leaves.items()
                                  if t.grad is not None}


@pytest.mark.parametrize("expr", CASES)
def test_values_and_gradients_match_torch(expr):
    torch = pytest.importorskip("torch")
    got, got_grads = run(dlg, expr)
    want, want_grads = run(torch, expr)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert got_grads.keys() == want_grads.keys()
    for k, g in want_grads.items():
        np.testing.assert_allclose(got_grads[k], g, rtol=1e-6, atol=1e-6, err_msg=k)


def scatter_loss(x, i, src, w):
    return (x.scatter(1, i, src) * w).sum()


def test_repeated_scatter_positions_keep_the_last_write_compiled_too():
    """Where an index repeats, torch's CPU kernel keeps the last value in index order, and its
    gradient reaches every src element (the overwritten ones too): eager, and traced and
    compiled (value and gradients) at another batch size."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    make = lambda n: (f(n, 4), rng.integers(0, 2, (n, 5)), f(n, 5), f(n, 4))  # noqa: E731
    traced = dlg.trace(scatter_loss, *make(2))
    feeds = make(6)
    t = [torch.tensor(a, requires_grad=a.dtype == np.float32) for a in feeds]
    want = scatter_loss(*t)
    want.backward()
    x, i, src, w = (dlg.tensor(a, requires_grad=a.dtype == np.float32) for a in feeds)
    np.testing.assert_array_equal(x.scatter(1, i, src).detach().numpy(),
                                  t[0].detach().scatter(1, t[1], t[2].detach()).numpy())
    scatter_loss(x, i, src, w).backward()
    gg = grad(traced.graph, "output", wrt=["x", "src"])
    got = NativeGraph(gg)(dict(zip(("x", "i", "src", "w"), feeds)), {})
    np.testing.assert_allclose(got["output"], want.item(), rtol=1e-5)
    for k, mine, theirs in (("x", x, t[0]), ("src", src, t[2])):
        np.testing.assert_allclose(got[f"grad.{k}"], theirs.grad.numpy(), rtol=1e-6, err_msg=k)
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-6, err_msg=k)


def test_integer_and_bool_tensors_scatter():
    torch = pytest.importorskip("torch")
    for lib in (dlg, torch):
        x = lib.tensor([[1, 2, 3], [4, 5, 6]])
        idx = lib.tensor([[2], [0]])
        ints = x.scatter(1, idx, lib.tensor([[7], [8]]))
        bools = lib.zeros(2, 3, dtype=lib.bool).scatter(1, idx, lib.tensor([[True], [False]]))
        adds = x.scatter_add(0, lib.tensor([[1, 1, 0]]), lib.tensor([[1, 2, 3]]))
        got = [np.asarray(t.numpy()) for t in (ints, bools, adds, x.gather(1, idx))]
        if lib is dlg:
            ours = got
    for a, b in zip(ours, got):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


# ---- errors: DlgErrors naming the argument, located at the caller's line -----------------------
BAD = {"i5": i64([[5, 0, 0, 0]]), "neg": i64([[-1]]), "tall": i64([[0], [1], [2], [0]]),
       "v7": i64([7]), "small": f(1, 4), "i4": i64([[4, 0], [0, 0], [0, 0]])}
ERRORS = [
    ("dlg.gather(x, 0, i5)", DlgValueError, r"^gather: index 5 is out of range 0\.\.2 for axis 0"),
    ("dlg.gather(x, 1, neg)", DlgValueError, r"^gather: index -1 is out of range 0\.\.3"),
    ("dlg.gather(x, 0, x)", DlgTypeError,
     r"^gather: index must be an int64 \(or int32\) tensor, got a tensor f32\[3,4\]$"),
    ("dlg.gather(x, 0, v)", DlgShapeError,
     r"^gather: index i64\[3\] must have the rank of x f32\[3,4\]"),
    ("x.gather(1, tall)", DlgShapeError,
     r"^gather: index i64\[4,1\] is larger than x f32\[3,4\] on axis 0$"),
    ("x.gather(2, i0)", DlgShapeError, r"^gather: axis 2 is out of range for rank 2$"),
    ("dlg.scatter_add(x, 0, i0, small)", DlgShapeError,
     r"^scatter_add: src f32\[1,4\] is smaller than index i64\[2,4\] on axis 0$"),
    ("x.scatter_add(1, i1, 1.0)", DlgTypeError, r"^scatter_add's src must be a tensor"),
    ("x.scatter_add(1, i4, src)", DlgValueError, r"index 4 is out of range 0\.\.3 for axis 1"),
    ("x.scatter(1, u1)", DlgTypeError, r"^scatter takes one of src \(a tensor or a number\)"),
    ("x.scatter(1, u1, src, reduce='multiply')", DlgTypeError,
     r"^scatter: reduce must be 'add', got str 'multiply'$"),
    ("x.scatter(1, u1, src.double())", DlgTypeError, r"^scatter: dtypes differ"),
    ("dlg.index_select(x, 0, i0)", DlgShapeError,
     r"^index_select: index must be 0-d or 1-d, got i64\[2,4\]$"),
    ("dlg.index_select(x, v, 0)", DlgTypeError, r"^index_select takes dim before index"),
    ("x.index_select(0, v7)", DlgValueError, r"index 7 is out of range 0\.\.2 for axis 0"),
    ("x.index_add(0, v, src33)", DlgShapeError,
     r"^index_add: source f32\[3,3\] must be x f32\[3,4\] with axis 0 as long as index i64\[3\]"),
    ("x.index_add(0, v7, src34[:1])", DlgValueError, r"index 7 is out of range 0\.\.2"),
    ("dlg.take_along_dim(x, v, 1)", DlgShapeError,
     r"^take_along_dim: indices i64\[3\] must have the rank of x f32\[3,4\]$"),
]


@pytest.mark.parametrize("expr, cls, pattern", ERRORS, ids=[e for e, _, _ in ERRORS])
def test_bad_calls_raise_dlg_errors_naming_the_argument(expr, cls, pattern):
    env = {k: dlg.tensor(a) for k, a in {**FLOATS, **INDICES, **BAD}.items()}
    with pytest.raises(DlgError) as info:
        eval(compile(expr, __file__, "eval"), {"dlg": dlg, **env})
    assert type(info.value) is cls and re.search(pattern, info.value.message), info.value
    assert Path(info.value.span.file).name == "test_gather.py"


def test_a_bad_call_reads_the_same_from_dlg_source():
    with pytest.raises(DlgShapeError) as from_dlg:
        dlg.loads("model M { input x: f32[3, 4] input i: i64[4, 1]\n"
                  "    output y = gather(x, 1, i) }", file="t.dlg")
    with pytest.raises(DlgShapeError) as from_python:
        dlg.tensor(FLOATS["x"]).gather(1, dlg.tensor(BAD["tall"]))
    assert from_dlg.value.message == from_python.value.message
    assert (from_dlg.value.span.file, from_dlg.value.span.line) == ("t.dlg", 2)


# ---- the .dlg door, traced and compiled --------------------------------------------------------
DLG_MODEL = """model M {
    input x: f32[N, 4]  input i: i64[N, 2]  input src: f32[N, 2]  input v: i64[3]
    output g = gather(x, 1, i)
    output a = scatter_add(x, -1, i, src)
    output s = scatter(x, 1, i, 0.5)
    output k = index_select(x, 1, v)
    output d = index_add(x, 1, v, k, alpha=3.0)
    output t = take_along_dim(x, i, axis=1)
}"""


def dlg_inputs(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    return {"x": rng.standard_normal((n, 4)).astype(np.float32),
            "i": rng.integers(0, 4, (n, 2)), "src": rng.standard_normal((n, 2)).astype(np.float32),
            "v": i64([3, 0, 3])}


def test_dlg_source_matches_torch_and_compiles():
    torch = pytest.importorskip("torch")
    m = dlg.loads(DLG_MODEL)
    exe = dlg.compile(m)
    for n in (2, 5):
        feeds = dlg_inputs(n)
        t = {k: torch.tensor(a) for k, a in feeds.items()}
        k = t["x"].index_select(1, t["v"])
        want = [t["x"].gather(1, t["i"]), t["x"].scatter_add(-1, t["i"], t["src"]),
                t["x"].scatter(1, t["i"], 0.5), k, t["x"].index_add(1, t["v"], k, alpha=3.0),
                torch.take_along_dim(t["x"], t["i"], 1)]
        for got in (m(**feeds), exe(**feeds)):
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b.numpy(), rtol=1e-6, atol=1e-6)


def test_gradients_match_finite_differences():
    m = dlg.loads(DLG_MODEL.replace("[N,", "[3,"))
    g, weights = scalar_loss(to_f64(m.graph))
    feeds = {k: a.astype(np.float64) if a.dtype == np.float32 else a
             for k, a in dlg_inputs(3).items()}
    check_gradients(g, {**feeds, **weights}, {}, wrt=["x", "src"])


def test_compiled_gradients_match_the_interpreter():
    m = dlg.loads(DLG_MODEL.replace("[N,", "[4,"))
    g, weights = scalar_loss(m.graph)
    gg = grad(g, "check_loss", wrt=["x", "src"])
    feeds = {**dlg_inputs(4), **weights}
    want, _ = Interpreter().run(gg, feeds, {})
    got = NativeGraph(gg)(feeds, {})
    for k in ("grad.x", "grad.src"):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)


def traced_fn(x, i, src):
    return (x.gather(1, i).exp() + dlg.scatter_add(x, 1, i, src)[:, :2]
            + x.scatter(-1, i, src).take_along_dim(i, 1))


def test_traced_and_compiled_match_eager_at_another_batch_size():
    rng = np.random.default_rng(5)
    make = lambda n: (rng.standard_normal((n, 4)).astype(np.float32),  # noqa: E731
                      np.stack([rng.permutation(4)[:2] for _ in range(n)]),
                      rng.standard_normal((n, 2)).astype(np.float32))
    traced = dlg.trace(traced_fn, *(dlg.tensor(a) for a in make(3)))
    assert [n.op.name for n in traced.graph if n.op.name == "gather"]
    exe = dlg.compile(traced)
    x, i, src = make(6)
    want = traced_fn(dlg.tensor(x), dlg.tensor(i), dlg.tensor(src)).numpy()
    np.testing.assert_allclose(traced(x, i, src), want, rtol=1e-6)
    np.testing.assert_allclose(exe(x, i, src), want, rtol=1e-5, atol=1e-6)
