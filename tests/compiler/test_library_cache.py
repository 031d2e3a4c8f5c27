"""The once-per-process library modules (thread pool, GEMM library, training-loop driver) keep
their object code in the disk cache (`cache.library`): compiled once, then loaded; a damaged
entry is compiled again, never loaded; a second process loads what the first stored."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import llvmlite.binding as llvm
from llvmlite import ir

from dlg.compiler.codegen import cache
from dlg.compiler.codegen.llvm_cpu import new_target_machine, optimize, target_machine

ROOT = Path(__file__).resolve().parents[2]


def _module(value: int) -> ir.Module:
    m = ir.Module("answer")
    m.triple = llvm.get_process_triple()
    fn = ir.Function(m, ir.FunctionType(ir.IntType(64), []), "dlg_test_answer")
    ir.IRBuilder(fn.append_basic_block("entry")).ret(ir.IntType(64)(value))
    return m


def _load(value: int, compiled: list[str]) -> int:
    def compile(text: str) -> bytes:
        compiled.append(text)
        return target_machine().emit_object(optimize(text))
    engine = cache.library(f"answer {value}", lambda: _module(value), "O3", compile,
                           new_target_machine)
    return ctypes.CFUNCTYPE(ctypes.c_int64)(engine.get_function_address("dlg_test_answer"))()


def test_a_library_is_compiled_once_then_loaded_and_a_damaged_entry_is_rebuilt(
        monkeypatch, tmp_path):
    monkeypatch.setenv("DLG_CACHE_DIR", str(tmp_path))
    compiled: list[str] = []
    assert _load(42, compiled) == 42 and len(compiled) == 1
    (entry,) = tmp_path.iterdir()
    assert _load(42, compiled) == 42 and len(compiled) == 1  # from the cache
    assert _load(7, compiled) == 7 and len(compiled) == 2  # another name, another entry
    for damage in (lambda b: b[:-9], lambda b: b[:70] + bytes([b[70] ^ 1]) + b[71:], lambda b: b""):
        entry.write_bytes(damage(entry.read_bytes()))
        assert _load(42, compiled) == 42
    assert len(compiled) == 5  # each damaged entry compiled again (and stored again)
    assert _load(42, compiled) == 42 and len(compiled) == 5


def test_a_hit_builds_no_module(monkeypatch, tmp_path):
    monkeypatch.setenv("DLG_CACHE_DIR", str(tmp_path))
    made: list[int] = []

    def make() -> ir.Module:
        made.append(1)
        return _module(11)
    for _ in range(2):
        engine = cache.library("answer 11", make, "O3", lambda text: target_machine(
            ).emit_object(optimize(text)), new_target_machine)
        assert ctypes.CFUNCTYPE(ctypes.c_int64)(engine.get_function_address(
            "dlg_test_answer"))() == 11
    assert made == [1]


def test_another_recipe_is_another_entry(monkeypatch, tmp_path):
    monkeypatch.setenv("DLG_CACHE_DIR", str(tmp_path))
    compiled: list[str] = []

    def compile(text: str) -> bytes:
        compiled.append(text)
        return target_machine().emit_object(optimize(text, 1))
    for recipe in ("O3", "O1", "O3"):
        cache.library("answer 3", lambda: _module(3), recipe, compile, new_target_machine)
    assert len(compiled) == 2 and len(list(tmp_path.iterdir())) == 2


def test_without_a_cache_every_load_compiles(monkeypatch):
    monkeypatch.setenv("DLG_CACHE_DIR", "off")
    compiled: list[str] = []
    assert _load(5, compiled) == 5 and _load(5, compiled) == 5
    assert len(compiled) == 2


START = """
import ctypes, numpy as np, llvmlite.binding as llvm
from dlg.compiler.codegen import driver, gemm, threads
from dlg.compiler.codegen.llvm_cpu import host_target, new_target_machine
threads.start(2, new_target_machine)
gemm.start(host_target(), new_target_machine)
driver.loop_function()
a = np.arange(12, dtype=np.float32).reshape(3, 4); b = np.ones((4, 5), np.float32)
c = np.zeros((3, 5), np.float32)
gemm.PROTOTYPE(llvm.address_of_symbol(gemm.SGEMM))(3, 5, 4, a.ctypes.data, 4, 1, b.ctypes.data,
    5, 1, c.ctypes.data, 5, 1, 0, 2)
assert np.array_equal(c, a @ b), c
"""


def test_a_second_process_loads_the_libraries_from_the_cache(monkeypatch, tmp_path):
    """A second process loads the three; a third, after each entry lost its last byte, compiles
    and stores them again."""
    monkeypatch.setenv("DLG_CACHE_DIR", str(tmp_path))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run() -> dict[str, int]:
        subprocess.run([sys.executable, "-c", START], env=env, check=True, cwd=ROOT)
        return {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    first = run()
    assert len(first) == 3  # pool, GEMM library, driver
    second = run()
    assert second == first  # loaded: nothing written
    assert all(cache.load(name.removesuffix(".o")) is not None for name in second)
    for p in tmp_path.iterdir():
        p.write_bytes(p.read_bytes()[:-1])
        second[p.name] = p.stat().st_mtime_ns
    third = run()
    assert third.keys() == second.keys()
    assert all(cache.load(name.removesuffix(".o")) is not None for name in third)
    assert all(third[k] != second[k] for k in second)  # compiled and stored again
