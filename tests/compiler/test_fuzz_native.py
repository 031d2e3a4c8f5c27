"""Differential fuzzing: random valid graphs (tools/fuzz/graphs.py: NNSmith-style DAGs of
elementwise ops with broadcasting, reductions, movement, matmul, softmax and layer norm, conv
and pooling, scan, and their gradients), compiled vs the interpreter. The quick profile runs in
CI; `pytest -m fuzz` runs a 3,000-graph campaign and `python -m tools.fuzz graphs --cases N`
any scale. Every bug found becomes a regression test (tests/fuzz/test_regressions.py)."""

from __future__ import annotations

import pytest

from tools.fuzz import graphs
from tools.fuzz.campaign import run


@pytest.mark.parametrize("index", range(40))
def test_random_graphs_compile_to_the_interpreters_results(index):
    graphs.compare(*graphs.make(seed=1, index=index))


@pytest.mark.fuzz
def test_random_graphs_long_campaign():
    summary = run("graphs", graphs.check, seed=2, cases=3000, timeout=graphs.TIMEOUT)
    assert not summary.findings, summary.text()
