"""Compile-time tools and choices: `--time-passes` (a row per stage), `--dump-dir` (a file per
stage, numbered in pipeline order, holding that stage's IR), kernels optimised at different LLVM
levels in one program (each computing what the interpreter computes), the object blob."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dlg
from dlg.cli import main
from dlg.compiler.codegen.llvm_cpu import kernel_level
from dlg.compiler.codegen.parts import O1, O2, O3, TIDY, pack, unpack
from dlg.compiler.pipeline import STAGES, CompileOptions, dump_file
from dlg.errors import DlgValueError
from dlg.ir.compare import graph_diff
from dlg.ir.parse_ir import parse_ir
from dlg.ir.printer import format_graph
from dlg.runtime.native import NativeGraph

MODELS = Path(__file__).resolve().parent.parent.parent / "models"
TRAINING = ["autodiff", "apply_optimizer"]

# a kernel over a symbolic batch with wide rows (O3), one with rows of 11 (O2), one over a
# small constant shape (O1), 13 elements, and a register-tiled product (TIDY): none a multiple
# of any vector width
LEVELS = """
model Levels {
    input x: f32[N, 137]
    input z: f32[N, 11]
    param w: f32[13] = uniform(-1.0, 1.0)
    param v: f32[137, 5] = uniform(-1.0, 1.0)
    output big = relu(x) * 2.0 + 1.0
    output tiled = x @ v
    output rows = sum(exp(z), axis=1)
    output small = exp(w) * 0.5 - w
}
"""


@pytest.fixture(autouse=True)
def _no_disk_cache(monkeypatch):
    monkeypatch.setenv("DLG_CACHE_DIR", "off")


def _table(out: str) -> dict[str, float]:
    """The --time-passes rows: stage -> seconds (the header and the share column checked)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["stage", "seconds"])
    rows = {}
    for line in lines[start + 1:]:
        name, seconds, share = line.split()
        assert share.endswith("%") and 0.0 <= float(share[:-1]) <= 100.0
        rows[name] = float(seconds)
        if name == "total":
            break
    return rows


@pytest.mark.parametrize("train", [False, True])
def test_time_passes_lists_every_stage_with_its_seconds(capsys, train):
    args = ["compile", str(MODELS / "mlp.dlg"), "--time-passes"] + (["--train"] if train else [])
    assert main(args) == 0
    rows = _table(capsys.readouterr().out)
    expected = [s for s in STAGES if train or s not in TRAINING]
    assert list(rows)[:len(expected)] == expected  # pipeline order, LLVM's stages included
    assert "load" in rows and all(v >= 0.0 for v in rows.values())
    assert rows["total"] == pytest.approx(sum(v for k, v in rows.items() if k != "total"),
                                          abs=1e-3 * len(rows))


def test_time_passes_compiles_even_when_the_code_is_cached(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("DLG_CACHE_DIR", str(tmp_path))
    for _ in range(2):
        assert main(["compile", str(MODELS / "linear_regression.dlg"), "--time-passes"]) == 0
        rows = _table(capsys.readouterr().out)
        assert "optimize" in rows and "codegen" in rows


def test_dump_dir_writes_one_file_per_stage_in_order(tmp_path):
    m = dlg.load(MODELS / "mlp.dlg")
    options = CompileOptions(dump_dir=tmp_path / "dumps")
    native = NativeGraph(m.graph, options=options)
    files = sorted(p.name for p in (tmp_path / "dumps").iterdir())
    assert files == [dump_file(s) for s in STAGES if s not in TRAINING]
    assert files[0].startswith("01_") and files[-1] == f"{len(STAGES):02d}_codegen.s"
    read = {f.split("_", 1)[1].rsplit(".", 1)[0]: (tmp_path / "dumps" / f).read_text()
            for f in files}
    # each file is its stage's result: the last graph stage's text is the compiled graph, and
    # it parses back to the same graph
    assert read["simplify"] == format_graph(native.optimized_graph) + "\n"
    assert graph_diff(native.optimized_graph, parse_ir(read["simplify"])) == []
    assert read["llvm"] == str(native.module) + "\n"
    assert "define void @\"dlg_entry\"" in read["llvm"]
    assert "dlg_entry:" in read["codegen"]


def test_dump_dir_with_dump_after_writes_only_those(tmp_path):
    m = dlg.load(MODELS / "linear_regression.dlg")
    NativeGraph(m.graph, options=CompileOptions(dump_after=("fuse", "llvm"),
                                                dump_dir=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [dump_file("fuse"), dump_file("llvm")]


def test_the_cli_writes_a_dump_dir_for_a_training_step(capsys, tmp_path):
    assert main(["compile", str(MODELS / "linear_regression.dlg"), "--train",
                 "--dump-dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [dump_file(s) for s in STAGES]


def test_compile_time_options_keep_the_compiled_results(tmp_path):
    m = dlg.load(MODELS / "mlp.dlg")
    x = np.random.default_rng(0).standard_normal((5, 1, 28, 28)).astype(np.float32)
    plain = NativeGraph(m.graph)({"x": x}, m.params)
    dumped = NativeGraph(m.graph, options=CompileOptions(dump_dir=tmp_path, cold=True))
    for name, value in dumped({"x": x}, m.params).items():
        np.testing.assert_array_equal(value, plain[name])


def test_kernels_at_four_levels_in_one_program_compute_what_the_interpreter_does():
    m = dlg.loads(LEVELS)
    native = NativeGraph(m.graph)
    levels = {k.name: kernel_level(k) for k in native.program.kernels}
    assert sorted(levels.values()) == [TIDY, O1, O2, O3], levels
    assert [p.level for p in native.module.parts] == [O1, O2, TIDY, O3]
    for n in (1, 7, 64):
        rng = np.random.default_rng(n)
        x = rng.standard_normal((n, 137)).astype(np.float32)
        z = rng.standard_normal((n, 11)).astype(np.float32)
        expected = m(x=x, z=z)
        got = native({"x": x, "z": z}, m.params)
        for name, value in zip(m.outputs, expected):
            np.testing.assert_allclose(got[name], value, rtol=1e-6, atol=1e-6)


def test_a_graph_of_small_kernels_has_no_o3_part():
    m = dlg.loads(LEVELS.replace("N, 137", "2, 3").replace("N, 11", "2, 5").replace("137, 5",
                                                                                     "3, 2"))
    native = NativeGraph(m.graph)
    assert [p.level for p in native.module.parts] == [O1]
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    z = np.arange(10, dtype=np.float32).reshape(2, 5) / 4
    got = native({"x": x, "z": z}, m.params)
    for name, value in zip(m.outputs, m(x=x, z=z)):
        np.testing.assert_allclose(got[name], value, rtol=1e-6, atol=1e-6)


def test_object_blobs_round_trip_and_damage_is_an_error():
    objects = [b"first", b"", b"\x00third\xff"]
    blob = pack(objects)
    assert unpack(blob) == objects
    for bad in (b"", b"\x7fELF...", blob[:-1], blob + b"x", blob[:12]):
        with pytest.raises(DlgValueError):
            unpack(bad)


def test_rows_that_o3_would_unroll_are_o2_pooling_windows_o3():
    """O3 vectorises a row of 32 to 111 terms, then unrolls it and the loops around it (a layer
    norm's mean over 64 took over a second to optimise); a pooling window's few terms keep O3."""
    m = dlg.loads("""
    model Rows {
        input x: f32[N, 32, 64]
        input img: f32[N, 8, 16, 16]
        output mean = sum(x, axis=2) / 64.0
        output pooled = max_pool2d(img, 2)
    }""")
    native = NativeGraph(m.graph)
    levels = {k.name: kernel_level(k) for k in native.program.kernels}
    assert sorted(levels.values()) == [O2, O3], levels
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 32, 64)).astype(np.float32)
    img = rng.standard_normal((3, 8, 16, 16)).astype(np.float32)
    got = native({"x": x, "img": img}, m.params)
    for name, value in zip(m.outputs, m(x=x, img=img)):
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6)


def test_repeated_layers_share_their_kernel_functions():
    m = dlg.loads("""
    layer Block(width: int) {
        layer fc = Linear(width, width)
        layer norm = LayerNorm(width)
        forward(x) { return norm(x + relu(fc(x))) }
    }
    model Stack {
        input x: f32[N, 24]
        layer blocks = [Block(24) for i in range(3)]
        h = x
        for block in blocks { h = block(h) }
        output y = h
    }""")
    native = NativeGraph(m.graph)
    kernels = native.program.kernels
    text = str(native.module)
    defined = sum(f'@"Stack.{k.name}"(' in line for k in kernels for line in text.splitlines()
                  if line.startswith("define"))
    assert len(kernels) >= 6 and defined * 2 < len(kernels), (defined, len(kernels))
    x = np.random.default_rng(1).standard_normal((5, 24)).astype(np.float32)
    np.testing.assert_allclose(native({"x": x}, m.params)["y"], m(x=x), rtol=1e-5, atol=1e-5)
