"""The disk cache's key for a graph's object code is its scheduled program (`cache.program_key`):
a hit builds no LLVM module and computes what a miss does; programs that differ anywhere (in the
middle of a large constant, whose repr NumPy elides), or whose modules are built differently or
by other codegen source, get other keys."""

from __future__ import annotations

import numpy as np
import pytest

from dlg.compiler.codegen import cache
from dlg.compiler.pipeline import CompileOptions, compile_graph
from dlg.ir import Builder, DType, Graph, TensorType
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph


def _graph(table: np.ndarray) -> Graph:
    """y = tanh(x) * table + x: a graph with a large constant."""
    g = Graph("keyed")
    b = Builder(g)
    x = b.input("x", TensorType.parse(f"f32[N,{table.size}]"))
    g.set_output("y", b.add(b.mul(b.tanh(x), b.constant(table, DType.f32)), x))
    return g


TABLE = np.linspace(-2.0, 2.0, 4096, dtype=np.float32)


def test_a_cache_hit_builds_no_module_and_computes_what_the_miss_did(monkeypatch, tmp_path):
    monkeypatch.setenv("DLG_CACHE_DIR", str(tmp_path))
    x = {"x": np.random.default_rng(0).standard_normal((3, TABLE.size)).astype(np.float32)}
    miss, hit = NativeGraph(_graph(TABLE)), NativeGraph(_graph(TABLE))
    assert not miss.cache_hit and hit.cache_hit and hit.key == miss.key
    assert "module" in vars(miss.compiled) and "module" not in vars(hit.compiled)
    want, _ = Interpreter().run(_graph(TABLE), x, {})
    for native in (miss, hit):
        np.testing.assert_allclose(native(x, {})["y"], want["y"], rtol=1e-5, atol=1e-6)
    assert "define void" in str(hit.module)  # made when asked for


def test_constants_that_differ_in_the_middle_get_other_keys(monkeypatch, tmp_path):
    monkeypatch.setenv("DLG_CACHE_DIR", str(tmp_path))
    other = TABLE.copy()
    other[TABLE.size // 2] += 1.0  # np.array2string would print both alike ("...")
    assert repr(other) == repr(TABLE)
    a, b = compile_graph(_graph(TABLE)), compile_graph(_graph(other))
    assert a.key != b.key


@pytest.mark.parametrize("options", [CompileOptions(profile=True), CompileOptions(anomaly=True),
                                     CompileOptions(target="cuda-emulated")])
def test_how_the_module_is_built_is_part_of_the_key(options):
    assert compile_graph(_graph(TABLE), options=options).key != compile_graph(_graph(TABLE)).key


def test_other_codegen_source_is_another_key(monkeypatch):
    before = compile_graph(_graph(TABLE)).key
    monkeypatch.setattr(cache, "_builder_source", lambda: "codegen as edited")
    assert compile_graph(_graph(TABLE)).key != before
