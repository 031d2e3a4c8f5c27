"""Parts compiled in forked workers (codegen/workers.py) give the object code compiling them here
gives; a failing worker's part is compiled here instead; the split into parts does not depend on
the machine; a compiled graph computes what the interpreter does either way."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import dlg
from dlg.compiler.codegen import workers
from dlg.compiler.codegen.llvm_cpu import emit
from dlg.compiler.codegen.parts import O1, O3, O3_PARTS, TIDY
from dlg.compiler.pipeline import compile_graph
from dlg.runtime.native import NativeGraph

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def parts():
    m = dlg.load(MODELS / "cnn.dlg")
    return [(p.text, p.level) for p in compile_graph(m.graph).module.parts]


@pytest.fixture
def two_workers(monkeypatch):
    monkeypatch.setattr(workers, "MIN_COST", 0)
    monkeypatch.setattr(workers, "workers", lambda: 4)


def test_o3_code_is_split_in_parts_of_similar_size():
    m = dlg.load(MODELS / "transformer.dlg")  # eleven distinct O3 kernels (CNN's has three)
    sizes = [len(p.text) for p in compile_graph(m.graph).module.parts if p.level == O3]
    assert len(sizes) == O3_PARTS
    assert min(sizes) > max(sizes) / 4


def test_workers_give_the_object_code_compiled_here(parts, two_workers):
    here = [emit(text, level) for text, level in parts]
    assert workers.compile_parts(parts, emit) == here


def test_a_failing_worker_is_replaced_by_a_compile_here(parts, two_workers):
    parent = os.getpid()

    def flaky(text: str, level: int) -> bytes:
        if os.getpid() != parent:
            raise RuntimeError("a worker that dies")
        return emit(text, level)
    assert workers.compile_parts(parts, flaky) == [emit(t, lv) for t, lv in parts]


def test_no_workers_with_one_thread(monkeypatch, parts):
    monkeypatch.setenv("DLG_NUM_THREADS", "1")
    assert workers.workers() == 1
    parent = os.getpid()
    seen = []

    def record(text: str, level: int) -> bytes:
        seen.append(os.getpid())
        return b"x"
    assert workers.compile_parts(parts, record) == [b"x"] * len(parts)
    assert seen == [parent] * len(parts)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_the_module_and_the_results_do_not_depend_on_the_workers(monkeypatch, threads):
    monkeypatch.setenv("DLG_NUM_THREADS", threads)
    monkeypatch.setenv("DLG_CACHE_DIR", "off")
    monkeypatch.setattr(workers, "MIN_COST", 0)
    m = dlg.load(MODELS / "cnn.dlg")
    native = NativeGraph(m.graph)
    reference = compile_graph(m.graph).module.text
    assert native.module.text == reference
    x = np.random.default_rng(3).standard_normal((5, 3, 10, 10)).astype(np.float32)
    np.testing.assert_allclose(native({"x": x}, m.params)["logits"], m(x=x), rtol=1e-5,
                               atol=1e-5)


def test_shares_balance_the_estimated_cost_not_the_text():
    """Register tiles (TIDY) are long texts that compile fast; O3 code is short and slow: a long
    TIDY part and two short O3 parts of the same estimated cost split two against one."""
    o3 = int(2_000_000 * workers.COST[TIDY] / workers.COST[O3] / 2)
    parts = [("t" * 2_000_000, TIDY), ("o" * o3, O3), ("p" * o3, O3), ("x" * 10, O1)]
    groups = workers.shares(parts, 2)
    tidy = next(g for g in groups if 0 in g)
    assert 1 not in tidy and 2 not in tidy and sorted(k for g in groups for k in g) == [0, 1, 2, 3]
    assert sorted(k for g in workers.shares(parts, 3) for k in g) == [0, 1, 2, 3]
