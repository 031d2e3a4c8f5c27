"""Complex tensors and dlg.fft against torch: dtype promotion, creation, each complex op and
transform's values and gradients (torch's convention for real losses through complex values) in
complex64 and complex128, finite differences through view_as_real, LLaMA's rotary-embedding
attention block, a Fourier Neural Operator's spectral layer trained a few steps, printing,
save/load, and the compiler's refusal (complex values run eagerly and interpreted)."""

from __future__ import annotations

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")

TOL = {np.float32: (1e-4, 2e-5), np.float64: (1e-10, 1e-12)}
CDTYPE = {np.float32: np.complex64, np.float64: np.complex128}


def _leaves(lib, arrays):
    out = []
    for a in arrays:
        t = lib.tensor(a)
        if a.dtype.kind in "fc":
            t.requires_grad_(True)
        out.append(t)
    return out


def _numpy(t):
    return np.asarray(t.detach().resolve_conj().numpy())


def _run(lib, fn, arrays, weights_seed=0):
    """fn's output and the gradients of a fixed real weighting of it (its view_as_real for a
    complex output), per input."""
    xs = _leaves(lib, arrays)
    out = fn(lib, *xs)
    flat = lib.view_as_real(out.resolve_conj()) if out.dtype.is_complex else out
    w = np.random.default_rng(weights_seed).standard_normal(tuple(flat.shape))
    loss = (flat * lib.tensor(w.astype(_numpy(flat).dtype))).sum()
    loss.backward()
    return _numpy(out), [None if x.grad is None else _numpy(x.grad) for x in xs]


def check(fn, arrays, part=np.float32, scale=1.0):
    """dlg against torch: the output's values and dtype, and every input's gradient, within
    the tolerance of `part`'s precision."""
    rtol, atol = TOL[part]
    want, want_grads = _run(torch, fn, arrays)
    have, have_grads = _run(dlg, fn, arrays)
    assert have.dtype == want.dtype, (have.dtype, want.dtype)
    assert have.shape == want.shape
    np.testing.assert_allclose(have, want, rtol=rtol, atol=atol * scale)
    for i, (h, w) in enumerate(zip(have_grads, want_grads)):
        assert (h is None) == (w is None), f"input {i}: gradient presence differs"
        if w is not None:
            assert h.dtype == w.dtype, (i, h.dtype, w.dtype)
            np.testing.assert_allclose(h, w, rtol=rtol, atol=atol * scale,
                                       err_msg=f"gradient of input {i}")


def _real(rng, part, *shape):
    return rng.standard_normal(shape).astype(part)


def _complex(rng, part, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(CDTYPE[part])


PARTS = [np.float32, np.float64]


# ---- dtypes and creation ------------------------------------------------------------------------
@pytest.mark.parametrize("a, b", [("float32", "complex64"), ("float64", "complex64"),
                                  ("float32", "complex128"), ("int64", "complex64"),
                                  ("complex64", "complex128"), ("bool", "complex64")])
def test_promotion_matches_torch(a, b):
    ta, tb = getattr(torch, a), getattr(torch, b)
    da, db = getattr(dlg, a), getattr(dlg, b)
    assert repr(dlg.promote_types(da, db)) == f"dlg.{str(torch.promote_types(ta, tb))[6:]}"
    x, y = dlg.ones(2, dtype=da), dlg.ones(2, dtype=db)
    assert (x + y).dtype == dlg.promote_types(da, db)
    for scalar in (1j, 2.5 + 0.5j):  # Python complexes: weak, the tensor's float width
        want = torch.ones(2, dtype=ta) * scalar
        assert repr((dlg.ones(2, dtype=da) * scalar).dtype) == f"dlg.{str(want.dtype)[6:]}"


def test_dtype_names_and_queries():
    assert dlg.cfloat is dlg.complex64 and dlg.cdouble is dlg.complex128
    assert repr(dlg.complex64) == "dlg.complex64" and str(dlg.complex128) == "c128"
    assert dlg.complex64.is_complex and not dlg.complex64.is_floating_point
    assert not dlg.float32.is_complex
    z = dlg.tensor([1 + 2j, 3j])
    assert z.dtype == dlg.complex64 and z.is_complex() and dlg.is_complex(z)
    assert not dlg.is_complex(dlg.ones(2))
    assert dlg.tensor(np.array([1j])).dtype == dlg.complex128  # NumPy arrays keep theirs
    x = dlg.ones(2)
    assert x.cfloat().dtype == dlg.complex64 and x.cdouble().dtype == dlg.complex128
    assert not z.conj().is_conj() and not dlg.is_conj(z)


@pytest.mark.parametrize("make", ["zeros", "ones", "rand", "randn", "empty"])
@pytest.mark.parametrize("dtype", ["cfloat", "cdouble"])
def test_creation_with_a_complex_dtype(make, dtype):
    t = getattr(dlg, make)(3, 4, dtype=getattr(dlg, dtype))
    want = getattr(torch, make)(3, 4, dtype=getattr(torch, dtype))
    assert repr(t.dtype) == f"dlg.{str(want.dtype)[6:]}" and tuple(t.shape) == (3, 4)
    if make in ("zeros", "ones"):
        np.testing.assert_array_equal(_numpy(t), want.numpy())


def test_random_complex_parts_are_torchs():
    dlg.manual_seed(0)
    z = _numpy(dlg.randn(200_000, dtype=dlg.cfloat))
    assert abs(np.mean(np.abs(z) ** 2) - 1) < 0.02  # each part variance 1/2
    assert abs(z.real.std() - np.sqrt(0.5)) < 0.01 and abs(z.imag.std() - np.sqrt(0.5)) < 0.01
    u = _numpy(dlg.rand(100_000, dtype=dlg.cfloat))
    assert 0 <= u.real.min() and u.real.max() < 1 and 0 <= u.imag.min() and u.imag.max() < 1
    p = dlg.nn.Parameter(0.5 * dlg.rand(2, 3, dtype=dlg.cfloat))
    assert p.requires_grad and p.dtype == dlg.complex64


def test_full_and_like():
    np.testing.assert_array_equal(_numpy(dlg.full((2,), 1 + 2j)),
                                  torch.full((2,), 1 + 2j).numpy())
    assert dlg.full((2,), 1 + 2j).dtype == dlg.complex64
    z = dlg.tensor([1j, 2.0])
    for like in ("zeros_like", "ones_like"):
        assert getattr(dlg, like)(z).dtype == dlg.complex64
    np.testing.assert_array_equal(_numpy(dlg.full_like(z, 3j)), [3j, 3j])


# ---- elementwise ops, reductions and products: values and gradients ------------------------------
Z, X = "z", "x"  # a complex input, a real one
ELEMENTWISE = {
    "add": ((Z, Z), lambda L, a, b: a + b),
    "sub": ((Z, X), lambda L, a, b: a - b),
    "mul": ((Z, Z), lambda L, a, b: a * b),
    "mul_real": ((X, Z), lambda L, a, b: a * b),
    "div": ((Z, Z), lambda L, a, b: a / b),
    "div_real": ((Z, X), lambda L, a, b: a / (b.abs() + 1)),
    "neg": ((Z,), lambda L, a: -a),
    "exp": ((Z,), lambda L, a: (a * 0.5).exp()),
    "abs": ((Z,), lambda L, a: a.abs()),
    "angle": ((Z,), lambda L, a: a.angle()),
    "conj": ((Z,), lambda L, a: a.conj() * a),
    "real": ((Z,), lambda L, a: a.real * 2),
    "imag": ((Z,), lambda L, a: a.imag * 2),
    "fn_real_imag": ((Z,), lambda L, a: L.real(a) - L.imag(a)),
    "polar": ((X, X), lambda L, r, t: L.polar(r.abs(), t)),
    "complex": ((X, X), lambda L, a, b: L.complex(a, b)),
    "view_as_real": ((Z,), lambda L, a: L.view_as_real(a * a)),
    "view_as_complex": ((X,), lambda L, a: L.view_as_complex(a.reshape(3, 2, 2))),
    "scalar_ops": ((Z,), lambda L, a: (2 * a + 1j) * 0.5 - 1),
    "pow_int": ((Z,), lambda L, a: a ** 2),
    "pow_complex": ((Z, Z), lambda L, a, b: a ** (b * 0.5)),
    "pow_real_exponent": ((Z, X), lambda L, a, b: a.pow(b.to(a.dtype))),
    "log": ((Z,), lambda L, a: L.log(a)),
    "sgn": ((Z,), lambda L, a: a.sgn() * L.sgn(a)),
    "cumsum": ((Z,), lambda L, a: a.cumsum(1)),
    "vdot": ((Z, Z), lambda L, a, b: L.vdot(a.flatten(), b.flatten())),
    "norm": ((Z,), lambda L, a: a.norm() + L.linalg.vector_norm(a, 1, dim=1).sum()),
    "sqrt": ((Z,), lambda L, a: a.sqrt()),
    "sum": ((Z,), lambda L, a: (a * a).sum(1)),
    "mean": ((Z,), lambda L, a: a.mean()),
    "matmul": ((Z, Z), lambda L, a, b: a @ b.transpose(0, 1)),
    "einsum": ((Z, Z), lambda L, a, b: L.einsum("ij,kj->ik", a, b)),
    "abs_loss": ((Z, Z), lambda L, a, b: (a * b).abs().sum()),
    "cast": ((X,), lambda L, a: a.to(L.complex64 if a.dtype == L.float32 else L.complex128)
             * (1 + 1j)),
    "to_real": ((Z,), lambda L, a: (a * a).float() if a.dtype == L.complex64
                else (a * a).double()),
    "cat_index": ((Z, Z), lambda L, a, b: L.cat([a, b])[1:, ::2].flatten()),
    "where": ((Z, X), lambda L, a, b: L.where(b > 0, a, a * 2)),
}


@pytest.mark.parametrize("part", PARTS, ids=["c64", "c128"])
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_complex_ops_match_torch(name, part):
    kinds, fn = ELEMENTWISE[name]
    rng = np.random.default_rng(1)
    shape = (3, 4)
    arrays = [_complex(rng, part, *shape) if k == Z else _real(rng, part, *shape)
              for k in kinds]
    check(fn, arrays, part)


def test_ops_without_complex_support_refuse_it_clearly():
    for fn, name in ((lambda z: z.sin(), "sin"), (lambda z: z.tanh(), "tanh"),
                     (lambda z: dlg.maximum(z, z), "maximum"), (lambda z: z < z, "lt"),
                     (lambda z: dlg.atan2(z, z), "atan2"), (lambda z: z.logsumexp(0), "logsumexp"),
                     (lambda z: z.prod(), "reduce_prod"), (lambda z: z.cumprod(0), "cumprod"),
                     (lambda z: dlg.div(z, 2, rounding_mode="trunc"), "div"),
                     (lambda z: z // 2, "floor_divide")):
        with pytest.raises(dlg.DlgTypeError, match=f"{name}: .*(c64|complex)"):
            fn(dlg.tensor([1j]))


def test_complex_queries_match_torch():
    a = np.array([1 + 2j, 3j, 2, 1 + 1e-3j], np.complex64)
    b = np.array([1 + 2.00001j, 3.1j, 2, 1], np.complex64)
    for fn in (lambda L, a, b: L.isclose(a, b), lambda L, a, b: L.isreal(a),
               lambda L, a, b: L.sgn(b * 0)):
        np.testing.assert_array_equal(_numpy(fn(dlg, dlg.tensor(a), dlg.tensor(b))),
                                      fn(torch, torch.tensor(a), torch.tensor(b)).numpy())
    assert dlg.allclose(dlg.tensor(a), dlg.tensor(a)) and not dlg.allclose(dlg.tensor(a),
                                                                             dlg.tensor(b))


def test_real_tensors_keep_torchs_meaning():
    x = dlg.tensor([-1.0, 0.0, 2.0, float("nan")])
    assert dlg.real(x) is x and dlg.conj(x) is x and x.real is x
    np.testing.assert_array_equal(_numpy(dlg.angle(x)), torch.angle(torch.tensor(
        [-1.0, 0.0, 2.0, float("nan")])).numpy())
    with pytest.raises(dlg.DlgTypeError, match="imag is not implemented"):
        _ = x.imag
    with pytest.raises(dlg.DlgTypeError, match="view_as_real"):
        dlg.view_as_real(x)
    with pytest.raises(dlg.DlgShapeError, match="size 2"):
        dlg.view_as_complex(dlg.ones(3))
    with pytest.raises(dlg.DlgTypeError, match="complex"):
        dlg.complex(dlg.ones(2), dlg.ones(2, dtype=dlg.float64))


# ---- dlg.fft -----------------------------------------------------------------------------------
FFTS = {
    "fft": (Z, lambda L, x: L.fft.fft(x)),
    "fft_real_input": (X, lambda L, x: L.fft.fft(x, dim=0)),
    "fft_n_pad": (Z, lambda L, x: L.fft.fft(x, n=7, norm="ortho")),
    "fft_n_crop": (Z, lambda L, x: L.fft.fft(x, n=3, dim=1, norm="forward")),
    "ifft": (Z, lambda L, x: L.fft.ifft(x, dim=0)),
    "ifft_ortho": (Z, lambda L, x: L.fft.ifft(x, n=6, norm="ortho")),
    "rfft": (X, lambda L, x: L.fft.rfft(x)),
    "rfft_n_odd": (X, lambda L, x: L.fft.rfft(x, n=5, norm="forward")),
    "rfft_dim0": (X, lambda L, x: L.fft.rfft(x, dim=1, norm="ortho")),
    "irfft": (Z, lambda L, x: L.fft.irfft(x)),
    "irfft_n_odd": (Z, lambda L, x: L.fft.irfft(x, n=7)),
    "irfft_n_short": (Z, lambda L, x: L.fft.irfft(x, n=4, norm="ortho")),
    "irfft_forward": (Z, lambda L, x: L.fft.irfft(x, n=8, dim=1, norm="forward")),
    "irfft_real_input": (X, lambda L, x: L.fft.irfft(x)),
    "fft2": (Z, lambda L, x: L.fft.fft2(x)),
    "fft2_s": (X, lambda L, x: L.fft.fft2(x, s=(4, 5), norm="ortho")),
    "ifft2": (Z, lambda L, x: L.fft.ifft2(x, dim=(0, 2))),
    "rfft2": (X, lambda L, x: L.fft.rfft2(x)),
    "rfft2_s": (X, lambda L, x: L.fft.rfft2(x, s=(2, 7), norm="forward")),
    "irfft2": (Z, lambda L, x: L.fft.irfft2(x)),
    "irfft2_s": (Z, lambda L, x: L.fft.irfft2(x, s=(4, 6))),
    "irfft2_s_odd": (Z, lambda L, x: L.fft.irfft2(x, s=(5, 5), norm="ortho")),
    "fftn": (Z, lambda L, x: L.fft.fftn(x)),
    "fftn_s": (Z, lambda L, x: L.fft.fftn(x, s=(2, 3))),
    "ifftn": (Z, lambda L, x: L.fft.ifftn(x, dim=(2, 0), norm="forward")),
    "rfftn": (X, lambda L, x: L.fft.rfftn(x)),
    "rfftn_dims": (X, lambda L, x: L.fft.rfftn(x, dim=(2, 0))),
    "irfftn": (Z, lambda L, x: L.fft.irfftn(x)),
    "irfftn_s": (Z, lambda L, x: L.fft.irfftn(x, s=(3, 4, 6), norm="ortho")),
    "round_trip": (X, lambda L, x: L.fft.irfft2(L.fft.rfft2(x) * 2, s=x.shape[-2:])),
    "spectral_loss": (X, lambda L, x: L.fft.fft(x).abs()),
    "fftshift": (Z, lambda L, x: L.fft.fftshift(L.fft.fft(x), dim=-1)),
    "hfft": (Z, lambda L, x: L.fft.hfft(x)),
    "hfft_n_ortho": (Z, lambda L, x: L.fft.hfft(x, n=5, dim=1, norm="ortho")),
    "ihfft": (X, lambda L, x: L.fft.ihfft(x)),
    "ihfft_n_forward": (X, lambda L, x: L.fft.ihfft(x, n=7, norm="forward")),
    "hfft2": (Z, lambda L, x: L.fft.hfft2(x, s=(4, 6))),
    "ihfft2": (X, lambda L, x: L.fft.ihfft2(x)),
    "hfftn": (Z, lambda L, x: L.fft.hfftn(x, norm="forward")),
    "ihfftn": (X, lambda L, x: L.fft.ihfftn(x, s=(2, 3, 5))),
    "ifftshift": (X, lambda L, x: L.fft.ifftshift(x)),
}


@pytest.mark.parametrize("part", PARTS, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(FFTS))
def test_fft_matches_torch(name, part):
    kind, fn = FFTS[name]
    rng = np.random.default_rng(2)
    shape = (3, 4, 6)
    x = _complex(rng, part, *shape) if kind == Z else _real(rng, part, *shape)
    check(fn, [x], part, scale=10.0)


def test_fft_frequencies_and_shifts():
    for n, d in ((8, 1.0), (7, 0.1)):
        np.testing.assert_allclose(_numpy(dlg.fft.fftfreq(n, d)), torch.fft.fftfreq(n, d).numpy(),
                                   rtol=1e-6)
        np.testing.assert_allclose(_numpy(dlg.fft.rfftfreq(n, d)),
                                   torch.fft.rfftfreq(n, d).numpy(), rtol=1e-6)
    assert dlg.fft.fftfreq(4, dtype=dlg.float64).dtype == dlg.float64
    x = np.arange(30.0).reshape(5, 6)
    for f in ("fftshift", "ifftshift"):
        for dim in (None, 0, (1,)):
            np.testing.assert_array_equal(_numpy(getattr(dlg.fft, f)(dlg.tensor(x), dim=dim)),
                                          getattr(torch.fft, f)(torch.tensor(x), dim=dim))


def test_fft_argument_errors():
    x = dlg.ones(4)
    with pytest.raises(dlg.DlgValueError, match="normalization"):
        dlg.fft.fft(x, norm="half")
    with pytest.raises(dlg.DlgTypeError, match="real input"):
        dlg.fft.rfft(x * 1j)
    with pytest.raises(dlg.DlgValueError, match="same length"):
        dlg.fft.fftn(dlg.ones(2, 3), s=(2,), dim=(0, 1))
    with pytest.raises(dlg.DlgValueError, match="out of range"):
        dlg.fft.fft(x, dim=3)


STFT_CASES = [{"n_fft": 64, "hop_length": 16, "window": "hann"},
              {"n_fft": 32, "hop_length": 8, "win_length": 20, "window": "hann"},
              {"n_fft": 32, "hop_length": 10, "center": False, "window": "ones"},
              {"n_fft": 32, "pad_mode": "constant", "normalized": True, "window": "hann"},
              {"n_fft": 16, "onesided": False, "window": "hann"},
              {"n_fft": 32, "win_length": 24}]


@pytest.mark.filterwarnings("ignore:A window was not provided")
@pytest.mark.parametrize("case", STFT_CASES, ids=[str(c) for c in STFT_CASES])
@pytest.mark.parametrize("shape, dtype", [((2, 300), "float32"), ((300,), "float64")])
def test_stft_matches_torch(case, shape, dtype):
    """torch.stft (Whisper's log-mel spectrogram): batched and 1-d signals, centred with
    reflect or constant padding or not, windows shorter than n_fft, normalized, two-sided;
    values and the gradient of a power spectrum's sum."""
    x = np.random.default_rng(5).standard_normal(shape).astype(dtype)
    results = []
    for lib in (dlg, torch):
        options = {k: v for k, v in case.items() if k != "window"}
        width = case.get("win_length", case["n_fft"])
        make = {"hann": lib.hann_window, "ones": lib.ones}.get(case.get("window"))
        if make is not None:
            options["window"] = make(width, dtype=getattr(lib, dtype))
        signal = lib.tensor(x, requires_grad=True)
        spec = lib.stft(signal, return_complex=True, **options)
        (spec.abs() ** 2).sum().backward()
        results.append((spec.detach().numpy(), signal.grad.numpy(), repr(spec.dtype)))
    (ours, our_grad, our_dtype), (theirs, their_grad, their_dtype) = results
    assert ours.shape == theirs.shape and our_dtype.split(".")[-1] in their_dtype
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(our_grad, their_grad, rtol=1e-4, atol=1e-3)


def test_stft_refusals_and_spellings_are_torchs():
    x = dlg.ones(100)
    with pytest.warns(UserWarning, match="A window was not provided"):
        dlg.stft(x, 16, return_complex=True)
    with pytest.raises(dlg.DlgValueError, match="requires the return_complex parameter"):
        x.stft(16, window=dlg.hann_window(16))
    with pytest.raises(dlg.DlgValueError, match="win_length=20"):
        dlg.stft(x, 16, win_length=20, window=dlg.ones(20), return_complex=True)
    window = dlg.hann_window(16)
    assert x.stft(16, window=window, return_complex=False).shape == (9, 26, 2)
    assert dlg.stft(x, 16, window=window, return_complex=True).dtype == dlg.complex64


@pytest.mark.parametrize("program", ["rope", "spectral", "fno_mix"])
def test_gradients_agree_with_finite_differences_through_view_as_real(program):
    """float64: d loss / d params by dlg's backward against central differences, where the
    complex values enter as view_as_complex of real parameters."""
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal((4, 6, 2))
    other = rng.standard_normal((4, 6))

    def loss_of(params):
        z = dlg.view_as_complex(params)
        o = dlg.tensor(other)
        if program == "rope":
            rot = dlg.polar(dlg.ones_like(o), o)
            out = dlg.view_as_real(z * rot).flatten(1)
            return (out * out.roll(1, 0)).sum()
        if program == "spectral":
            return (dlg.fft.fft(z.real * o, dim=0).abs() ** 1.5).sum()
        spec = dlg.fft.rfft2(o)
        mixed = dlg.fft.irfft2(spec * z[:, :4], s=(4, 6))
        return (mixed * mixed * o).sum() + (z.abs() * z.angle()).sum()

    p = dlg.tensor(p0, requires_grad=True)
    loss_of(p).backward()
    have = _numpy(p.grad)
    want = np.zeros_like(p0)
    eps = 1e-6
    for i in np.ndindex(p0.shape):
        up, down = p0.copy(), p0.copy()
        up[i] += eps
        down[i] -= eps
        want[i] = (float(loss_of(dlg.tensor(up))) - float(loss_of(dlg.tensor(down)))) / (2 * eps)
    np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6)


# ---- LLaMA's rotary embeddings in an attention block --------------------------------------------
def _precompute_freqs_cis(L, dim, end, theta=10000.0):
    freqs = 1.0 / (theta ** (L.arange(0, dim, 2)[: (dim // 2)].float() / dim))
    t = L.arange(end, device=freqs.device)
    freqs = L.outer(t, freqs).float()
    return L.polar(L.ones_like(freqs), freqs)


def _reshape_for_broadcast(freqs_cis, x):
    ndim = x.ndim
    assert freqs_cis.shape == (x.shape[1], x.shape[-1])
    shape = [d if i == 1 or i == ndim - 1 else 1 for i, d in enumerate(x.shape)]
    return freqs_cis.view(*shape)


def _apply_rotary_emb(L, xq, xk, freqs_cis):
    xq_ = L.view_as_complex(xq.float().reshape(*xq.shape[:-1], -1, 2))
    xk_ = L.view_as_complex(xk.float().reshape(*xk.shape[:-1], -1, 2))
    freqs_cis = _reshape_for_broadcast(freqs_cis, xq_)
    xq_out = L.view_as_real(xq_ * freqs_cis).flatten(3)
    xk_out = L.view_as_real(xk_ * freqs_cis).flatten(3)
    return xq_out.type_as(xq), xk_out.type_as(xk)


def _attention(L, x, wq, wk, wv, wo, heads, start_pos=2):
    import math
    F = L.nn.functional
    bsz, seqlen, dim = x.shape
    hd = dim // heads
    freqs_cis = _precompute_freqs_cis(L, hd, 16)[start_pos:start_pos + seqlen]
    xq = F.linear(x, wq).view(bsz, seqlen, heads, hd)
    xk = F.linear(x, wk).view(bsz, seqlen, heads, hd)
    xv = F.linear(x, wv).view(bsz, seqlen, heads, hd)
    xq, xk = _apply_rotary_emb(L, xq, xk, freqs_cis=freqs_cis)
    xq, xk, xv = (t.transpose(1, 2) for t in (xq, xk, xv))
    scores = L.matmul(xq, xk.transpose(2, 3)) / math.sqrt(hd)
    mask = L.full((seqlen, seqlen), float("-inf")).triu(1)
    scores = F.softmax((scores + mask).float(), dim=-1).type_as(xq)
    out = L.matmul(scores, xv).transpose(1, 2).contiguous().view(bsz, seqlen, -1)
    return F.linear(out, wo)


@pytest.mark.parametrize("part", PARTS, ids=["f32", "f64"])
def test_llama_rotary_attention_block_matches_torch(part):
    rng = np.random.default_rng(4)
    dim, heads = 16, 2
    arrays = [_real(rng, part, 2, 5, dim)] + [
        (_real(rng, part, dim, dim) / np.sqrt(dim)).astype(part) for _ in range(4)]
    # LLaMA's rotation runs in float32 (xq.float()) whatever x is: float32's tolerance
    check(lambda L, x, *w: _attention(L, x, *w, heads=heads), arrays, np.float32, scale=5.0)


# ---- a Fourier Neural Operator layer, trained ----------------------------------------------------
def _fno(L, modes=(3, 2)):
    nn = L.nn

    class SpectralConv2d(nn.Module):
        def __init__(self, in_channels, out_channels, modes1, modes2):
            super().__init__()
            self.in_channels, self.out_channels = in_channels, out_channels
            self.modes1, self.modes2 = modes1, modes2
            self.scale = 1 / (in_channels * out_channels)
            self.weights1 = nn.Parameter(self.scale * L.rand(
                in_channels, out_channels, self.modes1, self.modes2, dtype=L.cfloat))
            self.weights2 = nn.Parameter(self.scale * L.rand(
                in_channels, out_channels, self.modes1, self.modes2, dtype=L.cfloat))

        def compl_mul2d(self, input, weights):
            return L.einsum("bixy,ioxy->boxy", input, weights)

        def forward(self, x):
            batchsize = x.shape[0]
            x_ft = L.fft.rfft2(x)
            out_ft = L.zeros(batchsize, self.out_channels, x.size(-2), x.size(-1) // 2 + 1,
                             dtype=L.cfloat, device=x.device)
            out_ft[:, :, :self.modes1, :self.modes2] = self.compl_mul2d(
                x_ft[:, :, :self.modes1, :self.modes2], self.weights1)
            out_ft[:, :, -self.modes1:, :self.modes2] = self.compl_mul2d(
                x_ft[:, :, -self.modes1:, :self.modes2], self.weights2)
            return L.fft.irfft2(out_ft, s=(x.size(-2), x.size(-1)))

    class FNOBlock(nn.Module):
        def __init__(self, width=4):
            super().__init__()
            self.lift = nn.Linear(1, width)
            self.conv = SpectralConv2d(width, width, *modes)
            self.w = nn.Conv2d(width, width, 1)
            self.proj = nn.Linear(width, 1)

        def forward(self, x):  # x: [b, h, w, 1]
            x = self.lift(x).permute(0, 3, 1, 2)
            x = nn.functional.gelu(self.conv(x) + self.w(x))
            return self.proj(x.permute(0, 2, 3, 1))

    return FNOBlock()


def test_fno_spectral_layer_trains_as_in_torch():
    rng = np.random.default_rng(5)
    nets = {lib: _fno(lib) for lib in (torch, dlg)}
    state = {k: v.detach().numpy().copy() for k, v in nets[torch].state_dict().items()}
    for k in ("conv.weights1", "conv.weights2"):
        state[k] = (0.1 * (rng.random(state[k].shape) + 1j * rng.random(state[k].shape))
                    ).astype(np.complex64)
    nets[torch].load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    nets[dlg].load_state_dict({k: dlg.tensor(v) for k, v in state.items()})
    x = rng.standard_normal((3, 8, 6, 1)).astype(np.float32)
    y = np.sin(x).astype(np.float32)
    losses = {}
    for lib, net in nets.items():
        opt = lib.optim.Adam(net.parameters(), lr=1e-2)
        losses[lib] = []
        for _ in range(5):
            opt.zero_grad()
            loss = lib.nn.functional.mse_loss(net(lib.tensor(x)), lib.tensor(y))
            loss.backward()
            opt.step()
            losses[lib].append(float(loss))
    np.testing.assert_allclose(losses[dlg], losses[torch], rtol=1e-4)
    assert losses[dlg][-1] < losses[dlg][0]
    got = nets[dlg].state_dict()
    for k, v in nets[torch].state_dict().items():
        np.testing.assert_allclose(_numpy(got[k]), v.numpy(), rtol=1e-3, atol=1e-5, err_msg=k)


# ---- printing, saving, running interpreted, and the compiler's refusal --------------------------
def test_printing_and_save_load(tmp_path):
    z = dlg.tensor([1 + 2j, -0.5j])
    assert repr(z) == repr(torch.tensor([1 + 2j, -0.5j]))  # complex64 is a default dtype
    w = dlg.tensor([1 + 2j], dtype=dlg.cdouble)
    assert repr(w) == repr(torch.tensor([1 + 2j], dtype=torch.cdouble)).replace("torch", "dlg")
    assert z[0].item() == 1 + 2j and z.tolist() == [1 + 2j, -0.5j]
    path = tmp_path / "z.pt"
    dlg.save({"z": z, "w": dlg.ones(2, dtype=dlg.cdouble)}, path)
    back = dlg.load(path)
    assert back["z"].dtype == dlg.complex64 and back["w"].dtype == dlg.complex128
    np.testing.assert_array_equal(_numpy(back["z"]), _numpy(z))
    theirs = torch.load(path)  # torch's file format both ways
    assert theirs["z"].dtype == torch.complex64 and theirs["w"].dtype == torch.complex128
    np.testing.assert_array_equal(theirs["z"].numpy(), _numpy(z))
    torch.save({"z": torch.tensor([1 + 2j]), "w": torch.ones(1, dtype=torch.cdouble)}, path)
    back = dlg.load(path)
    assert back["z"].dtype == dlg.complex64 and back["w"].dtype == dlg.complex128


class _Spectral(dlg.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = dlg.nn.Parameter(dlg.rand(4, 3, dtype=dlg.cfloat))

    def forward(self, x):
        return dlg.fft.irfft(dlg.fft.rfft(x) * self.w, n=4)


def test_compile_refuses_complex_values_naming_the_op():
    net, x = _Spectral(), dlg.randn(2, 4, 4)
    for compile_it in (lambda: dlg.compile(net)(x), lambda: dlg.compile(net, x)):
        with pytest.raises(dlg.DlgTypeError, match=r"fft_r2c\(.*complex values.*eagerly"):
            compile_it()


def test_traced_complex_graph_runs_interpreted():
    net, x = _Spectral(), dlg.randn(2, 4, 4)
    model = dlg.trace(net, x)
    np.testing.assert_allclose(model(x), _numpy(net(x)), rtol=1e-6, atol=1e-6)


def test_eager_gradient_loop_stays_interpreted():
    """A training loop over complex parameters never hands its gradient graph to the compiler
    (the eager tiers keep graphs with complex values interpreted)."""
    net, x = _Spectral(), dlg.randn(2, 4, 4)
    opt = dlg.optim.SGD(net.parameters(), lr=0.1)
    from dlg.frontend import tiering
    saved, tiering.COMPILE_AFTER_S = tiering.COMPILE_AFTER_S, 0.0
    try:
        for _ in range(3):
            opt.zero_grad()
            loss = (net(x) ** 2).mean()
            loss.backward()
            opt.step()
    finally:
        tiering.COMPILE_AFTER_S = saved
    assert net.w.grad is not None and net.w.grad.dtype == dlg.complex64


def test_backward_of_a_complex_output_takes_torchs_cotangent():
    rng = np.random.default_rng(6)
    z0, w0, v0 = (_complex(rng, np.float32, 3) for _ in range(3))
    grads = {}
    for lib in (torch, dlg):
        z = lib.tensor(z0, requires_grad=True)
        out = lib.fft.fft(z * lib.tensor(w0))
        out.backward(lib.tensor(v0))
        (again,) = lib.autograd.grad(lib.fft.fft(z * lib.tensor(w0)), [z], lib.tensor(v0))
        grads[lib] = _numpy(z.grad), _numpy(again)
    for have, want in zip(grads[dlg], grads[torch]):
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(dlg.DlgValueError, match="real scalar"):
        (dlg.tensor(z0, requires_grad=True) * 2).sum().backward()


# ---- spectral windows, audio features and a spectral loss, trained ------------------------------
@pytest.mark.parametrize("name", ["hann_window", "hamming_window", "blackman_window",
                                  "bartlett_window"])
def test_windows_match_torch(name):
    for n in (0, 1, 2, 5, 8):
        for periodic in (True, False):
            have = _numpy(getattr(dlg, name)(n, periodic))
            want = getattr(torch, name)(n, periodic).numpy()
            assert have.dtype == want.dtype
            np.testing.assert_allclose(have, want, atol=1e-6)
    assert getattr(dlg, name)(4, dtype=dlg.float64).dtype == dlg.float64


def _audio_features(L, y):
    """Log power spectra of hann-windowed frames (no stft): [batch, frames, bins]."""
    frames = y.unfold(-1, 32, 16) * L.hann_window(32)
    power = L.fft.rfft(frames, norm="ortho").abs() ** 2
    return L.log(power + 1e-5)


def _audio_loss(L, y, target):
    F = L.nn.functional
    spectral = F.l1_loss(L.fft.fft(y).abs(), L.fft.fft(target).abs())
    return F.mse_loss(_audio_features(L, y), _audio_features(L, target)) + 0.01 * spectral


def test_spectral_loss_training_matches_torch():
    rng = np.random.default_rng(7)
    nets = {lib: lib.nn.Sequential(lib.nn.Conv1d(1, 4, 5, padding=2), lib.nn.Tanh(),
                                   lib.nn.Conv1d(4, 1, 5, padding=2)) for lib in (torch, dlg)}
    state = {k: v.detach().numpy().copy() for k, v in nets[torch].state_dict().items()}
    nets[dlg].load_state_dict({k: dlg.tensor(v) for k, v in state.items()})
    x = rng.standard_normal((2, 1, 160)).astype(np.float32)
    target = np.sin(np.linspace(0, 40, 160) * (1 + np.arange(2)[:, None])).astype(np.float32)
    losses = {}
    for lib, net in nets.items():
        opt = lib.optim.Adam(net.parameters(), lr=3e-3)
        losses[lib] = []
        for _ in range(4):
            opt.zero_grad()
            loss = _audio_loss(lib, net(lib.tensor(x))[:, 0], lib.tensor(target))
            loss.backward()
            opt.step()
            losses[lib].append(float(loss))
    np.testing.assert_allclose(losses[dlg], losses[torch], rtol=1e-4)
    got = nets[dlg].state_dict()
    for k, v in nets[torch].state_dict().items():
        np.testing.assert_allclose(_numpy(got[k]), v.numpy(), rtol=1e-3, atol=1e-5, err_msg=k)


def test_dlg_source_with_complex_values_runs_interpreted_and_compiling_points_at_it(tmp_path):
    path = tmp_path / "c.dlg"
    path.write_text("model C {\n    input x: f32[N, 4]\n    input y: f32[N, 4]\n"
                    "    output r = abs(complex(x, y) * complex(y, x))\n}\n")
    m = dlg.load(str(path))
    x, y = np.ones((2, 4), np.float32), np.full((2, 4), 2, np.float32)
    np.testing.assert_allclose(m(x=x, y=y), np.abs((x + 1j * y) * (y + 1j * x)))
    with pytest.raises(dlg.DlgTypeError, match=r"c\.dlg:4:20: .*complex\(f32\[N,4\]"):
        dlg.compile(m)


def test_complex_graph_prints_parses_and_serialises_back():
    """A complex constant prints as its parts (`c64[1]{1.0, 2.0}` is 1+2j) and reads back;
    JSON keeps its bytes."""
    from dlg.ir.compare import graph_diff
    from dlg.ir.parse_ir import parse_ir
    from dlg.ir.printer import format_graph
    from dlg.ir.serialize import dumps, loads

    class M(dlg.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = dlg.nn.Parameter(dlg.rand(3, dtype=dlg.cfloat))

        def forward(self, x):
            spectrum = dlg.fft.fft(x * (1 + 2j)) * self.w + dlg.tensor([1j, 2, float("nan")])
            return dlg.view_as_real(dlg.fft.irfft(spectrum, n=4).cfloat())

    g = dlg.trace(M(), dlg.randn(2, 3)).graph
    text = format_graph(g)
    assert "c64[]{1.0, 2.0}" in text and "c64[3]{0.0, 1.0, 2.0, 0.0, nan, 0.0}" in text
    assert format_graph(parse_ir(text)) == text
    assert not graph_diff(g, loads(dumps(g)))


def test_gradcheck_takes_complex_inputs_and_outputs():
    """dlg.autograd.gradcheck checks a complex element as its real and imaginary parts, as
    torch's does; a wrong complex gradient (no conjugate) is caught."""
    rng = np.random.default_rng(8)
    z = dlg.tensor(_complex(rng, np.float64, 4), requires_grad=True)
    x = dlg.tensor(_real(rng, np.float64, 6), requires_grad=True)
    gradcheck = dlg.autograd.gradcheck
    assert gradcheck(lambda z: dlg.fft.fft(z * z.conj() + z), (z,))
    assert gradcheck(lambda z, x: dlg.fft.irfft(z * x[:4], n=6, norm="ortho"), (z, x))
    assert gradcheck(lambda x: dlg.fft.rfft2(x.reshape(2, 3)), (x,))
    assert gradcheck(lambda z: z.abs() * z.angle() + dlg.view_as_real(z.exp()).sum(-1), (z,))

    class NoConjugate(dlg.autograd.Function):
        @staticmethod
        def forward(ctx, z):
            ctx.save_for_backward(z)
            return z * z

        @staticmethod
        def backward(ctx, g):
            (z,) = ctx.saved_tensors
            return g * 2 * z  # torch's convention needs conj(2 z)

    with pytest.raises(dlg.DlgValueError, match="Jacobian mismatch"):  # a GradcheckError
        gradcheck(NoConjugate.apply, (z,))
