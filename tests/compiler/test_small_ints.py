"""uint8, int8 and int16 through the LLVM CPU compiler against the reference interpreter, exactly:
each integer primitive on values over the dtype's whole range (wrap-around, uint8's unsigned
compares, divisions and shifts), casts both ways (float -> uint8 through int64, NaN -> 0), the
integer reductions, a traced dlg.compile function against eager dlg, and a .dlg model; a few
ops on the CUDA target's emulated grid (the kernels share codegen/scalar.py's forms)."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.compiler.pipeline import CompileOptions
from dlg.ir import Builder, DType, Graph, TensorType
from dlg.ir.ops.opdef import REGISTRY
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph

SMALL = (DType.u8, DType.i8, DType.i16)
SHAPE = (3, 37)  # more columns than a vector's lanes: the vector body and its tail both run


def whole_range(dtype: DType, seed: int = 0, nonzero: bool = False) -> np.ndarray:
    info = np.iinfo(dtype.np)
    values = np.random.default_rng(seed).integers(info.min, info.max + 1, SHAPE)
    if nonzero:
        values[values == 0] = 3
    return values.astype(dtype.np)


def agree(name: str, arrays: list[np.ndarray], options: CompileOptions | None = None,
          **attrs) -> None:
    """One op compiled gives the interpreter's dtype, shape and values exactly."""
    g = Graph(name)
    b = Builder(g)
    values = [b.input(f"in{i}", TensorType(DType.of(a), a.shape)) for i, a in enumerate(arrays)]
    out = b.emit(REGISTRY[name], *values, **attrs)
    for i, v in enumerate(out if isinstance(out, tuple) else (out,)):
        g.set_output(f"out{i}", v)
    inputs = {f"in{i}": a for i, a in enumerate(arrays)}
    want, _ = Interpreter().run(g, inputs, {})
    got = (NativeGraph(g) if options is None else NativeGraph(g, options=options))(inputs, {})
    for k, w in want.items():
        assert got[k].dtype == w.dtype and got[k].shape == w.shape, k
        np.testing.assert_array_equal(got[k], w, err_msg=f"{name} {k}")


UNARY = ("neg", "abs", "sign", "bitwise_not", "relu", "square")
BINARY = ("add", "sub", "mul", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge",
          "bitwise_and", "bitwise_or", "bitwise_xor", "floor_divide", "remainder", "fmod")


@pytest.mark.parametrize("dtype", SMALL, ids=str)
@pytest.mark.parametrize("name", UNARY + BINARY)
def test_elementwise_ops_compile_to_the_interpreters_values(name, dtype):
    arrays = [whole_range(dtype)]
    if name in BINARY:
        arrays.append(whole_range(dtype, seed=1, nonzero=True))
    agree(name, arrays)


@pytest.mark.parametrize("dtype", SMALL, ids=str)
@pytest.mark.parametrize("name", ["bitwise_left_shift", "bitwise_right_shift"])
def test_shifts_past_the_width_compile_as_torchs(name, dtype):
    counts = np.random.default_rng(2).integers(0, 20, SHAPE).astype(dtype.np)
    agree(name, [whole_range(dtype), counts])


@pytest.mark.parametrize("dtype", SMALL, ids=str)
def test_where_compiles(dtype):
    x, y = whole_range(dtype), whole_range(dtype, seed=1)
    agree("where", [x > y, x, y])
    agree("where", [x > 0, x, y])


@pytest.mark.parametrize("dtype", SMALL, ids=str)
@pytest.mark.parametrize("to", [DType.bool, DType.u8, DType.i8, DType.i16, DType.i32, DType.i64,
                                DType.f16, DType.f32, DType.f64], ids=str)
def test_casts_from_small_ints_compile(dtype, to):
    agree("cast", [whole_range(dtype)], dtype=to)


@pytest.mark.parametrize("dtype", SMALL, ids=str)
@pytest.mark.parametrize("src", [DType.f32, DType.f64], ids=str)
def test_float_casts_truncate_and_wrap_compiled(dtype, src):
    values = np.random.default_rng(3).standard_normal(SHAPE) * 400
    values.flat[:8] = [-1.5, 255.9, 300.2, -300.5, np.nan, np.inf, -np.inf, 3e9]
    agree("cast", [values.astype(src.np)], dtype=dtype)


@pytest.mark.parametrize("dtype", SMALL, ids=str)
@pytest.mark.parametrize("name, attrs", [
    ("reduce_max", {"axes": (1,), "keepdims": False}),
    ("reduce_min", {"axes": (1,), "keepdims": False}),
    ("reduce_sum", {"axes": (1,), "keepdims": False}),
    ("argmax", {"axis": 1, "keepdims": False}), ("argmin", {"axis": 0, "keepdims": False}),
    ("cumsum", {"axis": 1})], ids=lambda v: v if isinstance(v, str) else "")
def test_integer_reductions_compile(name, attrs, dtype):
    agree(name, [whole_range(dtype)], **attrs)


@pytest.mark.parametrize("dtype", SMALL, ids=str)
def test_max_pool_of_small_ints_compiles(dtype):
    """Padding and the first value are the dtype's minimum, not -inf."""
    x = whole_range(dtype).reshape(1, 3, 37)
    agree("max_pool", [x], kernel=(2,), stride=(2,), padding=(1,), ceil_mode=True)
    agree("max_pool", [x.reshape(3, 37)[None]], kernel=(3,), stride=(1,), padding=(0,),
          dilation=(2,))


def test_matmul_and_linear_of_small_ints_compile():
    for dtype in SMALL:
        a, b = whole_range(dtype), whole_range(dtype, seed=1)
        agree("matmul", [a, b.T.copy()])
        agree("linear", [a, b, b[:, 0].copy()])


def test_traced_function_compiles_to_eager_values():
    rng = np.random.default_rng(4)
    u = dlg.from_numpy(rng.integers(0, 256, (4, 8)).astype(np.uint8))
    v = dlg.from_numpy(rng.integers(1, 256, (4, 8)).astype(np.uint8))
    c = dlg.from_numpy(rng.integers(-128, 128, (4, 8)).astype(np.int8))

    def f(a, b, s):
        return (a + b, a - b, a * b, a // b, a % b, a > b, a.max(1).values, a.argmax(1), a + s,
                a.sum(1), a >> 3, -s, s.abs(), s.to(dlg.uint8), a.float() / 255, b.short() * 300,
                a.to(dlg.int8), a + 300, (a.float() * 1.7).byte())
    exe = dlg.compile(f, u, v, c)
    for k, (got, want) in enumerate(zip(exe(u.numpy(), v.numpy(), c.numpy()), f(u, v, c))):
        got = np.asarray(got.numpy() if hasattr(got, "numpy") else got)
        assert got.dtype == want.numpy().dtype, k
        np.testing.assert_array_equal(got, want.numpy(), err_msg=str(k))


def test_a_module_fed_uint8_images_compiles():
    net = dlg.nn.Sequential(dlg.nn.Flatten(), dlg.nn.Linear(12, 3))

    class Scaled(dlg.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, image):
            return self.net(image.float() / 255)
    model = Scaled()
    image = dlg.from_numpy(np.random.default_rng(5).integers(0, 256, (2, 3, 4)).astype(np.uint8))
    np.testing.assert_allclose(dlg.compile(model)(image).detach().numpy(),
                               model(image).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_a_dlg_model_with_small_int_inputs_compiles():
    m = dlg.loads("""
model M {
    input x: u8[N, 4]
    input y: i8[N, 4]
    output s = x + x
    output t = cast(x, i16) + cast(y, i16)
    output f = cast(x, f32) / 255.0
    output g = x > cast(y, u8)
}
""")
    rng = np.random.default_rng(6)
    x = rng.integers(0, 256, (5, 4)).astype(np.uint8)
    y = rng.integers(-128, 128, (5, 4)).astype(np.int8)
    want, got = m(x=x, y=y), dlg.compile(m)(x=x, y=y)
    assert [w.dtype for w in want] == [np.uint8, np.int16, np.float32, np.bool_]
    for w, g in zip(want, got):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("dtype", SMALL, ids=str)
def test_small_ints_on_the_emulated_cuda_grid(dtype):
    emulated = CompileOptions(target="cuda-emulated")
    x, y = whole_range(dtype), whole_range(dtype, seed=1, nonzero=True)
    for name in ("add", "lt", "floor_divide", "remainder", "maximum"):
        agree(name, [x, y], emulated)
    agree("bitwise_right_shift", [x, np.random.default_rng(2).integers(0, 20, SHAPE).astype(
        dtype.np)], emulated)
    agree("cast", [x], emulated, dtype=DType.f32)
    agree("reduce_max", [x], emulated, axes=(1,), keepdims=False)
    agree("argmax", [x], emulated, axis=1, keepdims=False)
    agree("cumsum", [x], emulated, axis=1)
