"""uint8, int8 and int16 tensors against PyTorch: dtypes, promotion (torch.result_type's
lattice), wrap-around arithmetic, casts, conversions, saving, and the refusals torch makes."""

from __future__ import annotations

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")

SMALL = ("uint8", "int8", "int16")
ALL = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64")


def data(name: str, shape: tuple[int, ...] = (3, 5), seed: int = 0, nonzero: bool = False
         ) -> np.ndarray:
    """Values over the dtype's whole range (so that arithmetic wraps)."""
    info = np.iinfo(np.dtype(name))
    values = np.random.default_rng(seed).integers(info.min, info.max + 1, shape)
    if nonzero:
        values[values == 0] = 3
    return values.astype(name)


def same(got, want) -> None:
    """dlg's result is torch's: structure, dtype, shape and values (floats to 1e-6)."""
    if isinstance(want, (tuple, list)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            same(g, w)
        return
    if not isinstance(want, torch.Tensor):
        assert got == want
        return
    assert got.dtype.torch_name == str(want.dtype).removeprefix("torch."), (got.dtype, want.dtype)
    have, expected = np.asarray(got.numpy()), want.numpy()
    assert have.shape == expected.shape
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(have, expected, rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(have, expected)


def both(fn, *arrays):
    """fn run on torch tensors and on dlg tensors of the same arrays."""
    with torch.no_grad():
        want = fn(torch, *(torch.from_numpy(a.copy()) for a in arrays))
    got = fn(dlg, *(dlg.from_numpy(a.copy()) for a in arrays))
    return got, want


BINARY = {
    "add": lambda L, a, b: a + b, "sub": lambda L, a, b: a - b, "mul": lambda L, a, b: a * b,
    "true_div": lambda L, a, b: a / b, "floor_divide": lambda L, a, b: L.floor_divide(a, b),
    "remainder": lambda L, a, b: a % b, "fmod": lambda L, a, b: L.fmod(a, b),
    "maximum": lambda L, a, b: L.maximum(a, b), "minimum": lambda L, a, b: L.minimum(a, b),
    "lt": lambda L, a, b: a < b, "ge": lambda L, a, b: a >= b, "eq": lambda L, a, b: a == b,
    "and": lambda L, a, b: a & b, "or": lambda L, a, b: a | b, "xor": lambda L, a, b: a ^ b,
    "where": lambda L, a, b: L.where(a > b, a, b), "matmul": lambda L, a, b: a @ b.T,
    "cat": lambda L, a, b: L.cat([a, b]), "stack": lambda L, a, b: L.stack([a, b], 1),
    "masked_fill": lambda L, a, b: a.masked_fill(a > b, 5),
    "masked_select": lambda L, a, b: a[a > b], "add_": lambda L, a, b: a.clone().add_(b),
    "clamp_tensor": lambda L, a, b: L.clamp(a, b, None),
    "linear": lambda L, a, b: L.nn.functional.linear(a, b, b[:, 0]),
    "pairwise_distance": lambda L, a, b: L.nn.functional.pairwise_distance(a, b),
    "triplet_margin_loss": lambda L, a, b: L.nn.functional.triplet_margin_loss(a, b, b.flip(0)),
}

UNARY = {
    "neg": lambda L, a: -a, "abs": lambda L, a: a.abs(), "sign": lambda L, a: a.sign(),
    "bitwise_not": lambda L, a: ~a, "square": lambda L, a: L.square(a),
    "relu": lambda L, a: L.relu(a), "pow2": lambda L, a: a ** 2,
    "add_int": lambda L, a: a + 7, "radd_wraps": lambda L, a: 300 + a,
    "mul_negative": lambda L, a: a * -3, "lt_int": lambda L, a: a < 100,
    "eq_negative": lambda L, a: a == -6, "add_float": lambda L, a: a + 0.5,
    "div_255": lambda L, a: a / 255, "shift_left": lambda L, a: a << 2,
    "shift_right": lambda L, a: a >> 2, "shift_past_width": lambda L, a: a >> 20,
    "sum": lambda L, a: a.sum(), "sum_dim": lambda L, a: a.sum(1),
    "prod": lambda L, a: a.prod(0), "cumsum": lambda L, a: a.cumsum(1),
    "amax": lambda L, a: a.amax(1), "max_dim": lambda L, a: tuple(a.max(1)),
    "min": lambda L, a: a.min(), "argmax": lambda L, a: a.argmax(),
    "sort": lambda L, a: tuple(a.sort(1)), "topk": lambda L, a: tuple(a.topk(2)),
    "any": lambda L, a: a.any(), "all": lambda L, a: a.all(1),
    "count_nonzero": lambda L, a: L.count_nonzero(a), "nonzero": lambda L, a: a.nonzero(),
    "unique": lambda L, a: L.unique(a), "flip": lambda L, a: a.flip(0),
    "index": lambda L, a: a[1:, ::2], "transpose": lambda L, a: a.t(),
    "gather": lambda L, a: a.gather(1, L.zeros(3, 2, dtype=L.int64)),
    "gather_empty_index": lambda L, a: a.gather(1, L.zeros(3, 0, dtype=L.uint8)),
    "float": lambda L, a: a.float(), "long": lambda L, a: a.long(), "bool": lambda L, a: a.bool(),
    "byte": lambda L, a: a.byte(), "char": lambda L, a: a.char(), "short": lambda L, a: a.short(),
    "zeros_like": lambda L, a: L.zeros_like(a), "full": lambda L, a: L.full((2,), 7, dtype=a.dtype),
    "arange": lambda L, a: L.arange(5, dtype=a.dtype), "fill_minus_one": lambda L, a:
    a.clone().fill_(-1) if a.dtype == L.uint8 else a.clone().fill_(-2),
    "float_mean": lambda L, a: a.float().mean(), "item": lambda L, a: a[0, 0].item(),
    "tolist": lambda L, a: a.tolist(),
    "einsum_sum": lambda L, a: L.einsum("ij->", a),
    "einsum_rows": lambda L, a: L.einsum("ij->i", a),
    "einsum_lonely": lambda L, a: L.einsum("ik,j->ij", a, a[0]),
    "einsum_contract": lambda L, a: L.einsum("ij,kj->ik", a, a),
    "sum_to_size": lambda L, a: a.sum_to_size(1, 5),
    "sum_to_size_0d": lambda L, a: a[0, 0].sum_to_size(()),
    "trapezoid": lambda L, a: L.trapezoid(a, a.flip(1)), "trapz_dx": lambda L, a: L.trapz(a, dx=2),
    "cumulative_trapezoid": lambda L, a: L.cumulative_trapezoid(a, a),
    "trapezoid_float_x": lambda L, a: L.trapezoid(a, a.float()),
    "scalar_tensor": lambda L, a: L.scalar_tensor(-5, dtype=a.dtype),
    "sqrt": lambda L, a: a.sqrt(), "exp": lambda L, a: L.exp(a), "sigmoid": lambda L, a:
    L.sigmoid(a), "log1p_abs": lambda L, a: L.log1p(a.abs().float()), "sin": lambda L, a: a.sin(),
    "softsign": lambda L, a: L.nn.functional.softsign(a), "floor": lambda L, a: L.floor(a),
    "ceil": lambda L, a: a.ceil(),
    "max_pool2d": lambda L, a: L.nn.functional.max_pool2d(a[None], 2, padding=1),
    "max_pool2d_indices": lambda L, a: tuple(L.nn.functional.max_pool2d(
        a[None], (2, 3), stride=1, dilation=(1, 2), return_indices=True)),
    "where_number": lambda L, a: (L.where(a > 0, a, -1), L.where(a > 0, 7, a)),
    "relu6": lambda L, a: L.nn.functional.relu6(a),
    "hardtanh": lambda L, a: L.nn.functional.hardtanh(a, 2.5, 90.7),
    "unravel_index": lambda L, a: L.unravel_index(a.flatten()[:4].abs() if a.dtype != L.uint8
                                                  else a.flatten()[:4], (4, 64)),
    "gcd_self": lambda L, a: L.gcd(a, a.flip(0)),
    "interpolate_nearest": lambda L, a: L.nn.functional.interpolate(a[None, None].byte(), (2, 7)),
}


@pytest.mark.parametrize("dtype", SMALL)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops_agree_with_torch(name, dtype):
    same(*both(BINARY[name], data(dtype), data(dtype, seed=1, nonzero=True)))


@pytest.mark.parametrize("dtype", SMALL)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops_and_reductions_agree_with_torch(name, dtype):
    same(*both(UNARY[name], data(dtype)))


@pytest.mark.parametrize("left", ALL)
@pytest.mark.parametrize("right", ALL)
def test_promotion_is_torchs_result_type(left, right):
    """Every pair of dtypes: tensor + tensor, tensor + 0-d tensor, and promote_types."""
    a, b = np.ones((2,), left), np.ones((), right)
    for fn in (lambda L, x, y: x + y.reshape(1), lambda L, x, y: x * y):
        if left == right == "bool":
            continue  # bool + bool is logical_or in both, tested elsewhere
        same(*both(fn, a, b))
    want = torch.promote_types(getattr(torch, left), getattr(torch, right))
    assert dlg.promote_types(getattr(dlg, left), getattr(dlg, right)).torch_name == (
        str(want).removeprefix("torch."))


@pytest.mark.parametrize("dtype", SMALL)
def test_python_numbers_stay_weak(dtype):
    """A Python int keeps the small int's dtype (wrapping into it), a float makes float32."""
    for number in (1, -1, 1000, 2.5):
        same(*both(lambda L, x, n=number: (x + n, x * n, x - n), data(dtype)))
    assert dlg.result_type(dlg.ones(2, dtype=getattr(dlg, dtype)), 1).torch_name == dtype


@pytest.mark.parametrize("dtype", SMALL)
def test_float_casts_truncate_and_wrap_as_torch(dtype):
    """-1.5 to uint8 is 255 (through int64), 300.7 is 44; NaN and infinities are 0."""
    values = np.array([-1.7, -0.5, 0.5, 127.9, 128.2, 255.9, 300.2, -300.5, -129.5, 40000.0,
                       np.nan, np.inf, -np.inf, 3e9], np.float32)
    same(*both(lambda L, x: x.to(getattr(L, dtype)), values))
    same(*both(lambda L, x: x.double().to(getattr(L, dtype)), values))


def test_numpy_arrays_keep_their_dtype():
    for name in SMALL:
        array = data(name)
        for make in (dlg.from_numpy, dlg.tensor, dlg.as_tensor, dlg.asarray):
            t = make(array)
            assert t.dtype == getattr(dlg, name) and t.dtype.torch_name == name
            np.testing.assert_array_equal(t.numpy(), array)
    assert dlg.as_tensor(data("uint8")).numpy().dtype == np.uint8


def test_names_repr_and_dtype_queries():
    assert (dlg.uint8, dlg.int8, dlg.int16, dlg.short) == (dlg.DType.u8, dlg.DType.i8,
                                                           dlg.DType.i16, dlg.DType.i16)
    assert [repr(d) for d in (dlg.uint8, dlg.int8, dlg.int16)] == ["dlg.uint8", "dlg.int8",
                                                                  "dlg.int16"]
    assert [str(d) for d in (dlg.uint8, dlg.int8, dlg.int16)] == ["u8", "i8", "i16"]
    assert repr(dlg.tensor([1, 2], dtype=dlg.uint8)) == "tensor([1, 2], dtype=dlg.uint8)"
    for name in SMALL:
        d, t = getattr(dlg, name), getattr(torch, name)
        assert (d.is_signed, d.is_floating_point, d.itemsize) == (t.is_signed,
                                                                  t.is_floating_point, t.itemsize)
        mine, theirs = dlg.iinfo(d), torch.iinfo(t)
        assert (mine.bits, mine.min, mine.max) == (theirs.bits, theirs.min, theirs.max)
        assert dlg.is_signed(dlg.ones(1, dtype=d)) == torch.is_signed(torch.ones(1, dtype=t))
        for other in ALL:
            assert dlg.can_cast(d, getattr(dlg, other)) == torch.can_cast(t, getattr(torch, other))


def test_save_and_load_round_trip_with_torch(tmp_path):
    state = {name: dlg.from_numpy(data(name)) for name in SMALL}
    dlg.save(state, tmp_path / "dlg.pt")
    for name, t in torch.load(tmp_path / "dlg.pt").items():
        assert str(t.dtype) == f"torch.{name}"
        np.testing.assert_array_equal(t.numpy(), data(name))
    torch.save({name: torch.from_numpy(data(name)) for name in SMALL}, tmp_path / "torch.pt")
    for name, t in dlg.load(tmp_path / "torch.pt").items():
        assert t.dtype == getattr(dlg, name)
        np.testing.assert_array_equal(t.numpy(), data(name))


def test_an_image_pipeline_computes_torchs_values():
    image = data("uint8", (8, 8, 3))
    same(*both(lambda L, x: (x.permute(2, 0, 1).float() / 255 - 0.5) / 0.25, image))
    same(*both(lambda L, x: (x > 128).byte() * 255, image))


OVERFLOWS = [
    (lambda: dlg.full((2,), 300, dtype=dlg.uint8), "value 300 cannot be converted to type uint8"),
    (lambda: dlg.full_like(dlg.ones(2, dtype=dlg.int8), 128), "128 cannot be converted to type"),
    (lambda: dlg.ones(2, dtype=dlg.uint8).fill_(256), "256 cannot be converted to type uint8"),
    (lambda: dlg.ones(2, dtype=dlg.uint8).fill_(-256), "-256 cannot be converted to type uint8"),
    (lambda: dlg.ones(2, dtype=dlg.int16).masked_fill(dlg.tensor([True, False]), 40000),
     "40000 cannot be converted to type int16"),
    (lambda: dlg.ones(2, dtype=dlg.uint8).clamp(0, 1000), "1000 cannot be converted"),
    (lambda: dlg.tensor([300], dtype=dlg.uint8), "300 out of bounds for uint8"),
    (lambda: dlg.where(dlg.tensor([True, False]), dlg.ones(2, dtype=dlg.uint8), -300),
     "-300 cannot be converted to type uint8"),
    (lambda: dlg.nn.functional.hardtanh(dlg.ones(2, dtype=dlg.uint8)),
     "hardtanh on an unsigned type with negative limits"),
]


@pytest.mark.parametrize("fn, message", OVERFLOWS)
def test_numbers_past_the_range_are_refused_where_torch_refuses(fn, message):
    with pytest.raises(dlg.DlgValueError, match=message) as info:
        fn()
    assert info.value.span is not None and info.value.span.file == __file__


REFUSED = [
    (lambda: dlg.ones(2, dtype=dlg.uint8).requires_grad_(), "can require gradients, not u8"),
    (lambda: dlg.tensor([1], dtype=dlg.int8, requires_grad=True), "gradients, not i8"),
    (lambda: dlg.ones(2, dtype=dlg.int16).mean(), r"mean: the input must be a float tensor"),
    (lambda: dlg.nn.functional.embedding(dlg.ones(2, dtype=dlg.uint8), dlg.ones(3, 2)),
     r"indices must be i32/i64, got u8"),
    (lambda: dlg.nn.functional.interpolate(dlg.ones(1, 1, 4, 4, dtype=dlg.uint8), (2, 3),
                                           mode="bilinear"), "mode 'bilinear' takes float input"),
]


@pytest.mark.parametrize("fn, message", REFUSED)
def test_what_small_ints_cannot_do_is_a_type_error_naming_the_dtype(fn, message):
    with pytest.raises(dlg.DlgTypeError, match=message):
        fn()


def test_torch_refuses_what_dlg_refuses():
    u8 = torch.ones(2, dtype=torch.uint8)
    for fn in (u8.requires_grad_, lambda: u8.mean(), lambda: u8.clamp(0, 1000),
               lambda: torch.full((2,), 300, dtype=torch.uint8), lambda: u8.clone().fill_(256)):
        with pytest.raises(RuntimeError):
            fn()


def test_legacy_constructors_and_type_names():
    for name in ("ByteTensor", "CharTensor", "ShortTensor"):
        same(getattr(dlg, name)([1, 2, 100]), getattr(torch, name)([1, 2, 100]))
        assert tuple(getattr(dlg, name)(2, 3).shape) == (2, 3)
        assert dlg.tensor([1.5]).type(getattr(dlg, name)).type() == f"dlg.{name}"


def test_uint8_index_is_a_mask_as_torch_reads_it():
    """x[m] of a uint8 tensor or array is x[m != 0] with torch's deprecation warning (NumPy would
    read the bytes as positions); assigning through one is torch's error."""
    x = np.arange(12.0, dtype=np.float32).reshape(4, 3)
    m = np.array([1, 0, 2, 0], np.uint8)
    for index in (lambda L: L.from_numpy(m), lambda L: m):
        with pytest.warns(UserWarning, match="uint8"):
            got = dlg.from_numpy(x)[index(dlg)]
        with pytest.warns(UserWarning):
            want = torch.from_numpy(x)[index(torch)]
        same(got, want)
    with pytest.warns(UserWarning):
        same(dlg.from_numpy(x)[dlg.from_numpy(m), 1], torch.from_numpy(x)[torch.from_numpy(m), 1])
    y = dlg.from_numpy(x.copy())
    with pytest.raises(dlg.DlgTypeError, match="uint8 mask"):
        y[dlg.from_numpy(m)] = 7.0
    with pytest.raises(RuntimeError, match="boolean masks"):
        torch.from_numpy(x.copy())[torch.from_numpy(m)] = 7.0


def test_a_fraction_is_never_lifted_into_an_integer_tensor():
    """A composite's float constant meeting an int tensor is refused, not truncated to 0."""
    u8 = dlg.ones((2, 3), dtype=dlg.uint8)
    with pytest.raises(dlg.DlgTypeError, match="would truncate"):
        dlg.nn.functional.cosine_embedding_loss(u8, u8, dlg.tensor([1, -1]))
