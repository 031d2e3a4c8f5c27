"""torch's dense linear algebra (frontend/dense_linalg.py, frontend/decompositions.py) against
torch.linalg: values in float32 and float64 with a batch dim, gradients of a random weighting
of the outputs, create_graph, LAPACK failures as DlgValueErrors, and the refusal to trace."""

from __future__ import annotations

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
SQ = RNG.standard_normal((2, 3, 3))
SPD = SQ @ SQ.transpose(0, 2, 1) + 3 * np.eye(3)
SYM = SQ + SQ.transpose(0, 2, 1)
TRI = SQ + 3 * np.eye(3)
TALL = RNG.standard_normal((2, 4, 3))
WIDE = RNG.standard_normal((2, 3, 4))
RHS = RNG.standard_normal((2, 3, 2))


def _svd_product(lib, x, full):  # the gauge-invariant U Vh of an svd (full: narrowed first)
    U, _, Vh = lib.linalg.svd(x, full)
    k = min(x.shape[-2:])
    return U[..., :k] @ Vh[..., :k, :]


# (name, ours, torch's, inputs): each fn takes the module (dlg or torch) and returns one tensor;
# eigenvector and singular-vector cases use sign-invariant readings
CASES = [
    ("inv", lambda m, a: m.linalg.inv(a), [SQ]),
    ("inverse", lambda m, a: m.inverse(a), [SQ]),
    ("det", lambda m, a: m.linalg.det(a), [SQ]),
    ("det_method", lambda m, a: a.det(), [SQ]),
    ("slogdet_sign", lambda m, a: m.linalg.slogdet(a).sign, [SQ]),
    ("slogdet", lambda m, a: m.linalg.slogdet(a).logabsdet, [SQ]),
    ("logdet", lambda m, a: m.logdet(a), [SPD]),
    ("logdet_method", lambda m, a: a.logdet(), [SPD]),
    ("solve", lambda m, a, b: m.linalg.solve(a, b), [SQ, RHS]),
    ("solve_broadcast", lambda m, a, b: m.linalg.solve(a, b), [SQ, RHS[0]]),
    ("solve_vector", lambda m, a, b: m.linalg.solve(a, b), [SQ, RHS[..., 0]]),
    ("solve_right", lambda m, a, b: m.linalg.solve(a, b, left=False), [SQ, RHS.transpose(0, 2, 1)]),
    ("cholesky", lambda m, a: m.linalg.cholesky(a), [SPD]),
    ("cholesky_upper", lambda m, a: m.linalg.cholesky(a, upper=True), [SPD]),
    ("cholesky_torch", lambda m, a: dlg.cholesky(a) if m is dlg else m.linalg.cholesky(a),
     [SPD]),  # torch.cholesky warns it is deprecated
    ("gp", lambda m, a, b: m.linalg.solve_triangular(m.linalg.cholesky(a), b, upper=False),
     [SPD, RHS]),
    *[(f"solve_triangular_{up}_{left}_{unit}",
       lambda m, a, b, up=up, left=left, unit=unit: m.linalg.solve_triangular(
           a, b, upper=up, left=left, unitriangular=unit),
       [TRI, RHS if left else RHS.transpose(0, 2, 1)])
      for up in (True, False) for left in (True, False) for unit in (True, False)],
    ("qr_q", lambda m, a: m.linalg.qr(a).Q, [TALL]),
    ("qr_r", lambda m, a: m.linalg.qr(a).R, [TALL]),
    ("qr_square_complete", lambda m, a: m.linalg.qr(a, "complete").Q, [SQ]),
    ("eigh_values", lambda m, a: m.linalg.eigh(a).eigenvalues, [SYM]),
    ("eigh_vectors", lambda m, a: m.linalg.eigh(a).eigenvectors ** 2, [SYM]),
    ("eigh_upper", lambda m, a: m.linalg.eigh(a, "U").eigenvectors ** 2, [SQ]),
    ("eigvalsh", lambda m, a: m.linalg.eigvalsh(a), [SYM]),
    *[(f"svd_{n}_{k}", lambda m, a: m.linalg.svd(a, False).S, [x])
      for n, x in (("sq", SQ), ("tall", TALL), ("wide", WIDE)) for k in ("S",)],
    *[(f"svd_vectors_{n}_{full}", lambda m, a, full=full: _svd_product(m, a, full), [x])
      for n, x in (("sq", SQ), ("tall", TALL), ("wide", WIDE)) for full in (True, False)],
    ("svd_u2", lambda m, a: m.linalg.svd(a, False).U ** 2, [TALL]),
    ("svdvals", lambda m, a: m.linalg.svdvals(a), [WIDE]),
    *[(f"matrix_norm_{o}", lambda m, a, o=o: m.linalg.matrix_norm(a, o), [TALL])
      for o in ("fro", "nuc", 2, -2, 1, -1, float("inf"), float("-inf"))],
    ("matrix_norm_dims", lambda m, a: m.linalg.matrix_norm(a, 1, (0, 2), True), [TALL]),
]


@pytest.mark.parametrize("name,fn,inputs", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_linalg_matches_torch(name, fn, inputs, dtype):
    arrays = [x.astype(dtype) for x in inputs]
    ours = [dlg.tensor(x, requires_grad=True) for x in arrays]
    theirs = [torch.tensor(x, requires_grad=True) for x in arrays]
    y, want = fn(dlg, *ours), fn(torch, *theirs)
    tol = 1e-9 if dtype == "float64" else 2e-4
    assert y.dtype == getattr(dlg, dtype) and tuple(y.shape) == tuple(want.shape)
    np.testing.assert_allclose(y.detach().numpy(), want.detach().numpy(), rtol=tol, atol=tol)
    assert y.requires_grad == want.requires_grad  # slogdet's sign too, as torch's
    if name == "slogdet_sign":  # its gradient is zero
        return
    w = RNG.standard_normal(tuple(want.shape)).astype(dtype)
    (y * dlg.tensor(w)).sum().backward()
    (want * torch.tensor(w)).sum().backward()
    for a, t in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=tol * 10, atol=tol * 10)


SECOND = [
    ("inv", lambda m, a: m.linalg.inv(a), SQ),
    ("slogdet", lambda m, a: m.linalg.slogdet(a).logabsdet, SQ),
    ("cholesky", lambda m, a: m.linalg.cholesky(a), SPD),
    ("eigh", lambda m, a: m.linalg.eigh(a).eigenvalues, SYM),
    ("qr", lambda m, a: m.linalg.qr(a).R, TALL),
]


@pytest.mark.parametrize("name,fn,x", SECOND, ids=[c[0] for c in SECOND])
def test_linalg_create_graph(name, fn, x):
    """The backward is dlg ops on recorded outputs: its gradient differentiates again."""
    w = RNG.standard_normal(tuple(fn(torch, torch.tensor(x)).shape))
    grads = []
    for m, a in ((dlg, dlg.tensor(x, requires_grad=True)),
                 (torch, torch.tensor(x, requires_grad=True))):
        (g,) = m.autograd.grad((fn(m, a) * m.tensor(w)).sum(), [a], create_graph=True)
        (g * g).sum().backward()
        grads.append(np.asarray(a.grad.detach().numpy()))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-7, atol=1e-9)


def test_svdvals_second_derivative_refused():
    a = dlg.tensor(WIDE, requires_grad=True)
    s = dlg.linalg.svdvals(a)
    (g,) = dlg.autograd.grad((s * s.detach() * a.sum()).sum(), [a], create_graph=True)
    with pytest.raises(dlg.DlgValueError, match="once_differentiable"):
        (g * g).sum().backward()


SINGULAR = np.array([[1.0, 2.0], [2.0, 4.0]])
NOT_PD = np.array([[1.0, 2.0], [2.0, 1.0]])
ERRORS = [
    (lambda: dlg.linalg.inv(dlg.tensor(np.zeros((2, 2)))), dlg.DlgValueError, "singular"),
    (lambda: dlg.inverse(dlg.tensor(SINGULAR)), dlg.DlgValueError, "singular"),
    (lambda: dlg.linalg.solve(dlg.tensor(SINGULAR), dlg.tensor(np.ones(2))),
     dlg.DlgValueError, "singular"),
    (lambda: dlg.linalg.cholesky(dlg.tensor(NOT_PD)), dlg.DlgValueError,
     "not positive-definite.*order 2"),
    (lambda: dlg.linalg.inv(dlg.tensor(TALL)), dlg.DlgShapeError, "4 by 3"),
    (lambda: dlg.linalg.det(dlg.tensor(np.ones(3))), dlg.DlgShapeError, "at least 2"),
    (lambda: dlg.linalg.cholesky(dlg.tensor(WIDE)), dlg.DlgShapeError, "square"),
    (lambda: dlg.linalg.inv(dlg.tensor(np.eye(2, dtype=np.int64))), dlg.DlgTypeError,
     "floating point"),
    (lambda: dlg.linalg.solve(dlg.tensor(SQ), dlg.tensor(np.ones((2, 4, 1)))),
     dlg.DlgShapeError, "Incompatible shapes"),
    (lambda: dlg.linalg.matrix_norm(dlg.tensor(SQ), 3), dlg.DlgValueError, "Order 3"),
    (lambda: dlg.linalg.qr(dlg.tensor(SQ), "thin"), dlg.DlgValueError, "unrecognized mode"),
]


@pytest.mark.parametrize("k", range(len(ERRORS)))
def test_linalg_errors(k):
    run, cls, pattern = ERRORS[k]
    with pytest.raises(cls, match=pattern):
        run()


def test_torch_raises_too_on_the_same_inputs():
    """The inputs above are ones torch refuses (its LinAlgError), so the rows test the same."""
    with pytest.raises(torch.linalg.LinAlgError):
        torch.linalg.inv(torch.tensor(SINGULAR))
    with pytest.raises(torch.linalg.LinAlgError, match="order 2"):
        torch.linalg.cholesky(torch.tensor(NOT_PD))


def test_qr_gradient_refused_for_wide_inputs():
    a = dlg.tensor(WIDE, requires_grad=True)
    with pytest.raises(dlg.DlgValueError, match="linalg.qr: the derivative is not implemented"):
        dlg.linalg.qr(a).Q.sum().backward()


REFUSED = [
    ("linalg.inv", lambda x: dlg.linalg.inv(x)),
    ("linalg.slogdet", lambda x: dlg.linalg.slogdet(x).logabsdet),
    ("logdet", lambda x: x.logdet()),
    ("linalg.solve", lambda x: dlg.linalg.solve(dlg.tensor(np.eye(3)), x)),
    ("linalg.cholesky", lambda x: dlg.cholesky(x)),
    ("linalg.qr", lambda x: dlg.linalg.qr(x).R),
    ("linalg.svdvals", lambda x: dlg.linalg.svdvals(x)),
    ("linalg.matrix_norm", lambda x: dlg.linalg.matrix_norm(x, 2)),
]


@pytest.mark.parametrize("name,fn", REFUSED, ids=[r[0] for r in REFUSED])
def test_linalg_refuses_tracing(name, fn):
    with pytest.raises(dlg.DlgValueError, match=f"{name} runs eagerly only"):
        dlg.trace(fn, dlg.tensor(SPD[0]))


def test_linalg_refuses_compiling_a_module():
    class Flow(dlg.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = dlg.nn.Parameter(dlg.tensor(SPD[0]))

        def forward(self, x):
            return x @ self.w + dlg.linalg.slogdet(self.w).logabsdet

    model = Flow()
    assert model(dlg.tensor(np.ones((1, 3)))).shape == (1, 3)  # eagerly it runs
    with pytest.raises(dlg.DlgValueError, match="linalg.slogdet runs eagerly only"):
        dlg.compile(model)(dlg.tensor(np.ones((1, 3))))


# ---- composed of the above (frontend/linalg_more.py); OpInfo covers their float32 samples --------
def test_linalg_more_against_torch_in_float64():
    a = RNG.standard_normal((2, 4, 4))
    tall = RNG.standard_normal((5, 3))
    A, T = dlg.tensor(a), torch.tensor(a)
    np.testing.assert_allclose(dlg.linalg.matrix_exp(A).numpy(),
                               torch.linalg.matrix_exp(T).numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dlg.matrix_exp(A * 20).numpy(),
                               torch.matrix_exp(T * 20).numpy(), rtol=1e-8)
    for n in (-3, 0, 1, 5):
        np.testing.assert_allclose(dlg.linalg.matrix_power(A, n).numpy(),
                                   torch.linalg.matrix_power(T, n).numpy(), rtol=1e-9)
    np.testing.assert_allclose(dlg.pinverse(dlg.tensor(tall)).numpy(),
                               torch.pinverse(torch.tensor(tall)).numpy(), rtol=1e-10)
    lu, piv = dlg.linalg.lu_factor(A)
    tlu, tpiv = torch.linalg.lu_factor(T)
    np.testing.assert_allclose(lu.numpy(), tlu.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(piv.numpy(), tpiv.numpy())
    b = RNG.standard_normal((2, 4, 2))
    for left, adjoint in ((True, False), (True, True), (False, False), (False, True)):
        rhs = b if left else np.swapaxes(b, -1, -2)
        np.testing.assert_allclose(
            dlg.linalg.lu_solve(lu, piv, dlg.tensor(rhs), left=left, adjoint=adjoint).numpy(),
            torch.linalg.lu_solve(tlu, tpiv, torch.tensor(rhs), left=left,
                                  adjoint=adjoint).numpy(), rtol=1e-9)
    U, S, V = dlg.svd(dlg.tensor(tall), compute_uv=False)
    assert not U.numpy().any() and U.shape == (5, 5) and V.shape == (3, 3)
    np.testing.assert_allclose(S.numpy(), torch.svd(torch.tensor(tall)).S.numpy(), rtol=1e-10)
    out, info = dlg.linalg.cholesky_ex(A @ A.mT + dlg.tensor(np.eye(4)))
    assert info.dtype == dlg.int32 and not info.numpy().any()
    got = dlg.linalg.lstsq(dlg.tensor(tall), dlg.tensor(tall[:, :2]), driver="gelsd")
    want = torch.linalg.lstsq(torch.tensor(tall), torch.tensor(tall[:, :2]), driver="gelsd")
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.detach().numpy(), w.numpy(), rtol=1e-9, atol=1e-12)


def test_linalg_more_gradients_and_traces():
    a = RNG.standard_normal((3, 3)) + 3 * np.eye(3)
    for fn in (lambda m, x: m.linalg.pinv(x[:, :2]), lambda m, x: m.linalg.matrix_exp(x * 0.3),
               lambda m, x: m.linalg.lu_factor(x).LU, lambda m, x: m.linalg.lu_factor(x[:2]).LU,
               lambda m, x: m.linalg.lu_factor(x[:, :2]).LU,
               lambda m, x: m.cholesky_inverse(m.linalg.cholesky(x @ x.mT))):
        ours, theirs = dlg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        w = RNG.standard_normal(fn(torch, theirs).shape)
        (fn(dlg, ours) * dlg.tensor(w)).sum().backward()
        (fn(torch, theirs) * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-7, atol=1e-9)
    x = RNG.standard_normal((4, 3)).astype(np.float32)

    def chain(v):
        return (dlg.linalg.multi_dot([v, v.mT, v]) + dlg.linalg.matrix_power(v.mT @ v, 2)[0],
                dlg.linalg.vecdot(v, v), dlg.linalg.vander(v[0], N=4))
    model = dlg.trace(chain, dlg.tensor(x), dynamic={"x0": {}})
    for got, want in zip(dlg.compile(model)(x), chain(dlg.tensor(x))):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5)
