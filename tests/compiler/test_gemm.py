"""The GEMM library against NumPy (edge shapes, every stride layout, accumulate, one and two
threads), and compiled graphs whose matmuls take the GEMM path against the interpreter: forward
with fused epilogues, the transposed layouts autodiff produces, batched products, a training
step."""

from __future__ import annotations

import platform
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
import pytest

import dlg
from dlg.compiler import schedule
from dlg.compiler.codegen import gemm, threads
from dlg.compiler.codegen.llvm_cpu import host_target, new_target_machine
from dlg.compiler.kernel_ir import Gemm
from dlg.compiler.schedule import Target
from dlg.ir import Builder, Graph, TensorType
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph
from dlg.runtime.training import build_train_step
from tests.compiler.test_schedule import statements

RTOL, ATOL = 1e-4, 1e-4  # float32 sums of up to a few hundred terms against float64
MODELS = Path(__file__).resolve().parents[2] / "models"
BLOCKING = gemm.blocking(host_target(), *gemm.cache_sizes())


@pytest.fixture(scope="module")
def sgemm():
    threads.start(threads.cores() - 1, new_target_machine)
    gemm.start(host_target(), new_target_machine)
    return gemm.PROTOTYPE(llvm.address_of_symbol(gemm.SGEMM))


def strided(rng: np.random.Generator, rows: int, cols: int, layout: str) -> np.ndarray:
    """A float32 matrix laid out row-major, column-major or with gaps between elements."""
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    if layout == "col":
        return np.asfortranarray(x)
    if layout == "gaps":
        wide = np.zeros((rows * 2, cols * 3), np.float32)
        wide[::2, ::3] = x
        return wide[::2, ::3]
    return x


def call(sgemm, a: np.ndarray, b: np.ndarray, c: np.ndarray, accumulate: bool, workers: int):
    def steps(x: np.ndarray) -> tuple[int, int]:
        return x.strides[0] // 4, x.strides[1] // 4
    sgemm(a.shape[0], b.shape[1], a.shape[1], a.ctypes.data, *steps(a), b.ctypes.data, *steps(b),
          c.ctypes.data, *steps(c), int(accumulate), workers)


EDGES = sorted({1, 2, 7, 16, 17, 31, BLOCKING.mr, BLOCKING.mr + 1, BLOCKING.nr + 3, 97})


@pytest.mark.parametrize("m", EDGES)
@pytest.mark.parametrize("n", [1, 5, 16, 33, BLOCKING.nr * 2 + 1])
@pytest.mark.parametrize("k", [1, 3, 64, 131])
def test_edge_shapes_match_numpy(sgemm, m, n, k):
    rng = np.random.default_rng(m * 10007 + n * 101 + k)
    a, b = strided(rng, m, k, "row"), strided(rng, k, n, "row")
    c = np.full((m, n), np.nan, np.float32)
    call(sgemm, a, b, c, False, 2)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("layouts", [(x, y, z) for x in ("row", "col", "gaps")
                                     for y in ("row", "col", "gaps") for z in ("row", "col")])
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("workers", [1, 2])
def test_every_stride_layout_and_accumulate(sgemm, layouts, accumulate, workers):
    rng = np.random.default_rng(len(str(layouts)) + accumulate + 7 * workers)
    m, n, k = 61, 45, 29
    a, b = strided(rng, m, k, layouts[0]), strided(rng, k, n, layouts[1])
    c = strided(rng, m, n, layouts[2])
    want = a.astype(np.float64) @ b + (c if accumulate else 0)
    call(sgemm, a, b, c, accumulate, workers)
    np.testing.assert_allclose(c, want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("m,n,k", [
    (BLOCKING.mc + 5, 37, BLOCKING.kc + 3),  # a second block of A rows and of the sum
    (13, BLOCKING.nc + BLOCKING.nr + 1, 5),  # a second block of B columns
    (400, 300, 200),
    (BLOCKING.mc, 40, 2 * BLOCKING.kc + 1),  # A in one block of rows, k in three equal blocks
    (32, 2 * BLOCKING.nc + 7, 288),  # a convolution: thin m, k one block, n many blocks
    (64, 27, 3 * BLOCKING.kc + 17),  # its weight gradient: huge k, n under two panels
    (BLOCKING.mr * 2 + 1, 3 * BLOCKING.nr, 2 * BLOCKING.kc - 1)])  # tile edges, k just under
def test_several_cache_blocks(sgemm, m, n, k):
    rng = np.random.default_rng(m + n + k)
    a, b = strided(rng, m, k, "row"), strided(rng, k, n, "col")
    c = np.ones((m, n), np.float32)
    call(sgemm, a, b, c, True, 2)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b + 1, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("target", [Target(16, 16), Target(32, 16)])
def test_narrower_vector_targets(sgemm, target):
    """The library for SSE/NEON and AVX widths (runs on any x86-64 with AVX2; `sgemm` started
    the thread pool it calls)."""
    if not llvm.get_host_cpu_features().flatten().count("+avx2"):
        pytest.skip("needs AVX2 to run the 32-byte variant")
    engine = gemm.compile_library(target, new_target_machine())
    narrow = gemm.PROTOTYPE(engine.get_function_address(gemm.SGEMM))
    bl = gemm.blocking(target, *gemm.cache_sizes())
    rng = np.random.default_rng(target.vector_bytes)
    for m, n, k in ((bl.mr + 1, bl.nr + 1, 3), (bl.mc + 1, 2 * bl.nr - 1, bl.kc + 1),
                    (bl.mr * 3 - 1, bl.nc + 3, 2 * bl.kc + 5)):
        a, b = strided(rng, m, k, "row"), strided(rng, k, n, "col")
        c = np.zeros((m, n), np.float32)
        call(narrow, a, b, c, False, 2)
        np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=RTOL, atol=ATOL)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="an x86-64 target")
def test_avx512_library_compiles():
    """The 14 x 32 micro-kernel in zmm registers (this host may not run it)."""
    tm = llvm.Target.from_default_triple().create_target_machine(
        cpu="znver4", features="+avx512f,+avx512vl,+avx512bw,+avx512dq,+fma,+avx2", opt=3)
    bl = gemm.blocking(Target(64, 32), 48 << 10, 1 << 20)
    assert (bl.mr, bl.nr, bl.lanes) == (14, 32, 16)
    mod = llvm.parse_assembly(str(gemm.module(bl)))
    mod.verify()
    assert "zmm" in tm.emit_assembly(mod)


@pytest.mark.parametrize("m,n", [(300, 47), (47, 300)])
def test_results_do_not_depend_on_the_thread_count(sgemm, m, n):
    """Splitting m (or n) over threads changes who computes a tile, not its sums' order."""
    rng = np.random.default_rng(m)
    a, b = strided(rng, m, 301, "row"), strided(rng, 301, n, "row")
    one, two = np.zeros((m, n), np.float32), np.zeros((m, n), np.float32)
    call(sgemm, a, b, one, False, 1)
    call(sgemm, a, b, two, False, 2)
    np.testing.assert_array_equal(one, two)


def test_an_empty_sum_is_zero_or_leaves_c(sgemm):
    a, b = np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32)
    c = np.full((3, 4), 5.0, np.float32)
    call(sgemm, a, b, c, True, 2)
    assert (c == 5).all()
    call(sgemm, a, b, c, False, 2)
    assert (c == 0).all()


# ---- compiled graphs ---------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def library_at_any_size(monkeypatch):
    """Products of any work take the library, so that small edge shapes exercise it."""
    monkeypatch.setattr(schedule, "GEMM_MIN_WORK", 1)
    monkeypatch.setattr(schedule, "TILE_B_L2S", 0)


def check(g: Graph, inputs: dict[str, np.ndarray]) -> NativeGraph:
    ng = NativeGraph(g)
    got = ng(inputs, {})
    want, _ = Interpreter().run(g, inputs, {})
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=RTOL, atol=ATOL, err_msg=name)
    return ng


def gemms(ng: NativeGraph) -> list[Gemm]:
    return [s for k in ng.program.kernels for s in statements(k.body) if isinstance(s, Gemm)]


def rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("n", [1, 3, 67, 130])
@pytest.mark.parametrize("transposed", [False, True])
def test_linear_layers_with_epilogues(n, transposed):
    """x @ W + b then relu, with W as [in, out] or PyTorch's [out, in]."""
    k, m = 97, 45
    g = Graph("linear")
    b = Builder(g)
    x = b.input("x", TensorType.parse(f"f32[N, {k}]"))
    w = b.input("w", TensorType.parse(f"f32[{m}, {k}]" if transposed else f"f32[{k}, {m}]"))
    bias = b.input("b", TensorType.parse(f"f32[{m}]"))
    wt = b.transpose(w, perm=(1, 0)) if transposed else w
    g.set_output("y", b.relu(b.add(b.matmul(x, wt), bias)))
    rng = np.random.default_rng(n)
    ng = check(g, {"x": rand(rng, n, k), "w": rand(rng, *((m, k) if transposed else (k, m))),
                   "b": rand(rng, m)})
    (call_,) = gemms(ng)
    assert call_.epilogue and call_.otherwise


@pytest.mark.parametrize("rows", [1, 16, 95, 96, 130])
def test_a_weight_larger_than_l2_takes_tiles_for_a_small_batch(rows):
    """x @ W^T whose W^T would be packed from L3 on every call: fewer than SMALL_BATCH_ROWS rows
    run on the tiles, which read W in place, more on the library; both give x @ W^T. The
    weight is 1,024 floats wide (rows 4 KB apart: A read in place would alias in L1, so the
    library packs it)."""
    k = 1024
    out = max(16, gemm.cache_sizes()[1] // 4 // (4 * k) + 1)  # n*k floats past L2 / 4
    g = Graph("wide")
    b = Builder(g)
    x = b.input("x", TensorType.parse(f"f32[N, {k}]"))
    w = b.input("w", TensorType.parse(f"f32[{out}, {k}]"))
    g.set_output("y", b.matmul(x, b.transpose(w, perm=(1, 0))))
    rng = np.random.default_rng(rows)
    ng = check(g, {"x": rand(rng, rows, k), "w": rand(rng, out, k)})
    (call_,) = gemms(ng)
    assert call_.min_rows == schedule.SMALL_BATCH_ROWS


@pytest.mark.parametrize("cols", [1, 16, 61, 200])
def test_a_small_im2col_takes_tiles_at_any_work(monkeypatch, cols):
    """W @ x (a convolution's GEMM) whose x (k x n) fits in TILE_B_L2S L2s runs on the tiles,
    which read W in place, whatever its work; a wider x takes the library. Both give W @ x: the
    threshold here is set so that 61 and 200 columns fall on either side."""
    k = 300
    monkeypatch.setattr(schedule, "GEMM_MIN_WORK", 1 << 21)
    monkeypatch.setattr(schedule, "TILE_B_L2S", 100 * k * 4 / gemm.cache_sizes()[1])
    g = Graph("conv")
    b = Builder(g)
    w = b.input("w", TensorType.parse(f"f32[700, {k}]"))
    x = b.input("x", TensorType.parse(f"f32[{k}, N]"))
    g.set_output("y", b.matmul(w, x))
    rng = np.random.default_rng(cols)
    ng = check(g, {"w": rand(rng, 700, k), "x": rand(rng, k, cols)})
    (call_,) = gemms(ng)
    assert call_.tile_b_bytes == int(schedule.TILE_B_L2S * gemm.cache_sizes()[1])


@pytest.mark.parametrize("n", [2, 61, 128])
def test_gradient_layouts(n):
    """g^T @ x (the weight gradient: both operands read down their columns) and g @ W (the
    input gradient of x @ W^T)."""
    g = Graph("grads")
    b = Builder(g)
    gy = b.input("g", TensorType.parse("f32[N, 40]"))
    x = b.input("x", TensorType.parse("f32[N, 53]"))
    w = b.input("w", TensorType.parse("f32[40, 53]"))
    g.set_output("dw", b.matmul(b.transpose(gy, perm=(1, 0)), x))
    g.set_output("dx", b.matmul(gy, w))
    rng = np.random.default_rng(n)
    ng = check(g, {"g": rand(rng, n, 40), "x": rand(rng, n, 53), "w": rand(rng, 40, 53)})
    assert len(gemms(ng)) == 2


@pytest.mark.parametrize("batch", [1, 5])
def test_batched_products(batch):
    """A batched matmul is one call per batch index; in x [N, T, K] @ W^T the batch continues
    x's rows, so it is one call with N*T rows."""
    g = Graph("bmm")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[N, 37, 61]"))
    y = b.input("y", TensorType.parse("f32[N, 61, 41]"))
    w = b.input("w", TensorType.parse("f32[23, 61]"))
    g.set_output("xy", b.matmul(x, y))
    g.set_output("xw", b.tanh(b.matmul(x, b.transpose(w, perm=(1, 0)))))
    rng = np.random.default_rng(batch)
    ng = check(g, {"x": rand(rng, batch, 37, 61), "y": rand(rng, batch, 61, 41),
                   "w": rand(rng, 23, 61)})
    xy, xw = gemms(ng)
    assert [v for v, _ in xy.batch] == ["i.0"] and not xw.batch


def test_small_static_products_stay_in_register_tiles(monkeypatch):
    monkeypatch.setattr(schedule, "GEMM_MIN_WORK", 1 << 21)
    g = Graph("small")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[40, 80]"))
    w = b.input("w", TensorType.parse("f32[80, 16]"))
    g.set_output("y", b.matmul(x, w))
    ng = check(g, {"x": rand(np.random.default_rng(0), 40, 80),
                   "w": rand(np.random.default_rng(1), 80, 16)})
    assert not gemms(ng)


def test_narrow_products_stay_in_register_tiles():
    """A 10-class output layer: fewer columns than the micro-kernel's."""
    g = Graph("narrow")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[N, 128]"))
    w = b.input("w", TensorType.parse("f32[10, 128]"))
    g.set_output("y", b.matmul(x, b.transpose(w, perm=(1, 0))))
    ng = check(g, {"x": rand(np.random.default_rng(0), 30, 128),
                   "w": rand(np.random.default_rng(1), 10, 128)})
    assert not gemms(ng)


def test_mlp_training_steps_match_the_interpreter():
    """The first layer's forward (x @ W^T + b) and weight gradient (g^T @ x) through the
    library at a batch of 64 (the 10-class layer stays in register tiles)."""
    m = dlg.load(MODELS / "mlp.dlg")
    graph, state = build_train_step(m.train_graph, m.train_spec)
    ng = NativeGraph(graph, loss="loss")
    assert len(gemms(ng)) >= 2
    ours = {k: v.copy() for k, v in {**m.params, **state}.items()}
    ref = {k: v.copy() for k, v in ours.items()}
    rng = np.random.default_rng(0)
    for _ in range(3):
        batch = {"x": rand(rng, 64, 1, 28, 28), "y": rng.integers(0, 10, 64)}
        got = ng(batch, ours)
        want, updates = Interpreter().run(graph, batch, ref)
        ref.update(updates)
        np.testing.assert_allclose(got["loss"], want["loss"], rtol=RTOL, atol=ATOL)
    for k in ref:
        np.testing.assert_allclose(ours[k], ref[k], rtol=1e-3, atol=1e-4, err_msg=k)
