"""Launch configurations (grid sizes from the dims at run time, the kind each kernel gets),
the `cuda` target's message where pycuda or a GPU is missing, and dlgc's --target."""

from __future__ import annotations

import importlib.util

import pytest

import dlg
from dlg.compiler.codegen.nvptx_launch import MAX_BLOCKS, THREADS, evaluate
from dlg.compiler.pipeline import compile_ptx
from dlg.ir import Builder, Graph, TensorType
from tests.test_cli import run_cli
from tests.test_models import MODELS


@pytest.fixture(scope="module")
def launches():
    """A matmul with bias (tiled), a column sum over the batch (a block sum), a scatter
    (serial) and a scaled copy (elementwise), by kind."""
    g = Graph("kinds")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[N, 96]"))
    w = b.input("w", TensorType.parse("f32[96, 40]"))
    i = b.input("i", TensorType.parse("i64[N]"))
    g.set_output("y", b.relu(b.matmul(x, w)))
    g.set_output("s", b.reduce_sum(w, axes=[1]))
    g.set_output("t", b.scatter_add(b.reduce_sum(x, axes=[1]), i, shape=[8], axis=0))
    g.set_output("z", b.mul(x, x))
    return {launch.kind: launch for launch in compile_ptx(g).launches()}


def test_each_kernel_gets_its_kind(launches):
    assert set(launches) == {"tiled", "reduce", "serial", "elementwise"}
    assert launches["serial"].threads == 1 and evaluate(launches["serial"].blocks, {}) == 1


@pytest.mark.parametrize("n", [1, 2, 7, 13, 257, 10_007, 5_000_000])
def test_grids_cover_every_point_with_at_most_max_blocks(launches, n):
    dims = {"N": n}
    for launch in launches.values():
        blocks = evaluate(launch.blocks, dims)
        assert 1 <= blocks <= MAX_BLOCKS
    elementwise = launches["elementwise"]
    points, blocks = evaluate(elementwise.points, dims), evaluate(elementwise.blocks, dims)
    assert blocks * THREADS >= points or blocks == MAX_BLOCKS  # a grid-stride loop: the rest
    tiled = launches["tiled"]
    assert evaluate(tiled.blocks, dims) == min(MAX_BLOCKS, -(-n // 64))


@pytest.mark.skipif(importlib.util.find_spec("pycuda") is not None, reason="pycuda installed")
def test_the_cuda_target_names_what_is_missing():
    with pytest.raises(dlg.DlgError, match=r"pycuda: pip install 'dlg\[cuda\]'"):
        dlg.compile(MODELS / "linear_regression.dlg", target="cuda")


def test_an_unknown_target_lists_the_targets():
    with pytest.raises(dlg.DlgError, match="cuda-emulated"):
        dlg.compile(MODELS / "linear_regression.dlg", target="tpu")


def test_dlgc_compile_target_cuda_prints_ptx_and_launches(capsys):
    code, out, _ = run_cli(capsys, "compile", MODELS / "linear_regression.dlg", "--target",
                           "cuda", "--emit", "ptx")
    assert code == 0 and ".target sm_80" in out and ".entry " in out
    code, out, _ = run_cli(capsys, "compile", MODELS / "linear_regression.dlg", "--target",
                           "cuda")
    assert code == 0 and "launch " in out and "threads x" in out


@pytest.mark.parametrize("args, message", [
    (["--emit", "ptx"], "--emit ptx: add --target cuda"),
    (["--target", "cuda", "--emit", "asm"], "use ptx, llvm or kernels"),
])
def test_dlgc_compile_target_errors(capsys, args, message):
    code, _, err = run_cli(capsys, "compile", MODELS / "linear_regression.dlg", *args)
    assert code != 0 and message in err and "Traceback" not in err
