"""JSON round trips and the printed IR for every reference model, eval and train graphs (golden
files: tests/golden; the IR text parser: test_parse_ir.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import dlg
from dlg.errors import DlgValueError
from dlg.ir.printer import format_graph
from dlg.ir.serialize import dumps, graph_to_json, loads
from dlg.runtime.interp import Interpreter
from tests.test_models import random_inputs

ROOT = Path(__file__).resolve().parent.parent.parent
MODELS = sorted((ROOT / "models").glob("*.dlg"))


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_json_round_trip_preserves_graph_and_results(path):
    m = dlg.load(path)
    for graph in (m.graph, m.train_graph):
        again = loads(dumps(graph))
        assert graph_to_json(again) == graph_to_json(graph)
        assert format_graph(again) == format_graph(graph)
    inputs = random_inputs(m, 2, np.random.default_rng(0))
    before, _ = Interpreter(0).run(m.graph, inputs, m.params)
    after, _ = Interpreter(0).run(loads(dumps(m.graph)), inputs, m.params)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])


def test_printer_shows_types_attrs_spans_and_scan_bodies():
    m = dlg.load(ROOT / "models" / "rnn.dlg")
    text = format_graph(m.graph)
    assert "%rnn.weight_ih_l0: param f32[128,28]" in text
    assert "graph scan_body(%h: f32[N,128], %x_t: f32[N,28]" in text
    assert "# " in text and "rnn.dlg:" in text
    assert text.count("scan(") == 1


@pytest.mark.parametrize("corrupt", [
    lambda d: d.update(version=99),
    lambda d: d["nodes"][3].update(op="no_such_op"),
    lambda d: d["nodes"][3].update(types=["f32[7]"]),
    lambda d: d["nodes"][3]["inputs"].append([999, 0]),
    lambda d: d["nodes"][0].pop("attrs"),
])
def test_corrupt_json_is_a_dlg_error(corrupt):
    data = graph_to_json(dlg.load(ROOT / "models" / "mlp.dlg").graph)
    corrupt(data)
    with pytest.raises(DlgValueError, match="corrupt graph JSON|format version"):
        loads(json.dumps(data))
    with pytest.raises(DlgValueError):
        loads("{not json")


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_ancestors_walk_once_and_find_what_networkx_finds(path):
    """Graph.ancestors is one walk for all the values (a walk per value revisited the shared
    nodes); the nodes are networkx's, each value's node included."""
    import networkx as nx

    graph = dlg.load(path).train_graph
    values = [v for _, v in graph.outputs + graph.updates]
    want = set().union(*({v.node} | nx.ancestors(graph.nx, v.node) for v in values))
    assert graph.ancestors(values) == want and graph.ancestors([]) == set()
