"""The verifier accepts every graph dlg builds and rejects broken ones, showing where."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import dlg
from dlg.ir import DType, Graph, TensorType, Value
from dlg.ir.verify import IRVerifyError, verify
from tests.ir.sample_graphs import every_attr_kind, recurrent, step_body, tiny

MODELS = sorted((Path(__file__).resolve().parent.parent.parent / "models").glob("*.dlg"))


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_every_model_graph_verifies(path):
    m = dlg.load(path)
    verify(m.graph)
    verify(m.train_graph)


@pytest.mark.parametrize("make", [tiny, step_body, recurrent, every_attr_kind])
def test_hand_built_graphs_verify(make):
    verify(make())


def _node(g: Graph, opname: str):
    return next(n for n in g if n.op.name == opname)


def _swap(g: Graph, node_id: int, **changes) -> Graph:
    """The same graph with one node changed (the networkx edges rebuilt to match)."""
    nodes = dict(g.nodes)
    nodes[node_id] = replace(nodes[node_id], **changes)
    return Graph(g.name, nodes, g.outputs, g.updates)


def _reorder(g: Graph) -> Graph:
    """Move the last computed node to the front: no longer a topological order."""
    order = list(g.nodes)
    order.insert(0, order.pop(-1))
    return Graph(g.name, {k: g.nodes[k] for k in order}, g.outputs, g.updates)


def _wrong_types(g: Graph) -> Graph:
    add = _node(g, "add")
    return _swap(g, add.id, types=(TensorType(DType.f64, (3,)),))


def _bad_body(g: Graph) -> Graph:
    scan = _node(g, "scan")
    body = scan.attrs["body"]
    tanh = _node(body, "tanh")
    broken = _swap(body, tanh.id, inputs=(Value(tanh.id + 5),))
    return _swap(g, scan.id, attrs={**scan.attrs, "body": broken})


def _stale_edges(g: Graph) -> Graph:
    add = _node(g, "add")
    g.nodes[add.id] = replace(add, inputs=add.inputs[::-1])
    return g


def _output_name_twice(g: Graph) -> Graph:
    g.outputs.append(g.outputs[0])
    return g


def _update_type(g: Graph) -> Graph:
    g.updates[0] = ("steps", g.outputs[0][1])
    return g


BROKEN = {
    "not_topological": (_reorder, r"not defined before its use"),
    "wrong_types": (_wrong_types, r"types \['f64\[3\]'\] but infer gives \['f32\[\]'\]"),
    "bad_attr": (lambda g: _swap(g, _node(g, "full").id, attrs={"shape": (2,), "value": 0.0,
                                                               "dtype": "f32"}),
                 r"its op rejects it: full: attribute 'dtype' must be dtype"),
    "missing_input": (lambda g: _swap(g, _node(g, "add").id, inputs=(Value(2), Value(2, 1))),
                      r"input 2:1 is not defined"),
    "bad_body": (_bad_body, r"its body is broken: graph step: node %5 \(tanh\)"),
    "stale_edges": (_stale_edges, r"in-edges disagree"),
    "duplicate_output": (_output_name_twice, r"duplicate output names"),
    "missing_output": (lambda g: g.outputs.append(("z", Value(99))) or g,
                       r"output z refers to a missing value 99:0"),
    "update_of_no_param": (lambda g: g.updates.append(("xs", g.updates[0][1])) or g,
                           r"update xs names no parameter"),
    "update_type": (_update_type, r"update steps gives f32\[N,4\] to a parameter of type f32\[\]"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_graphs_are_rejected(name):
    corrupt, message = BROKEN[name]
    with pytest.raises(IRVerifyError, match=message):
        verify(corrupt(recurrent()))


def test_a_failure_shows_the_node_and_its_neighbours():
    with pytest.raises(IRVerifyError) as info:
        verify(_wrong_types(recurrent()))
    lines = str(info.value).splitlines()
    assert lines[0] == ("graph rnn: node %6 (add): types ['f64[3]'] but infer gives ['f32[]']")
    assert lines[1:] == [
        "   %v4_0: f32[N,4], %v4_1: f32[T,N,1] = scan(%v3, %xs, %c) "
        "{axis=0, n_carry=1, n_seq=1, reverse=false}",
        "   %v5: f32[] = constant() {value=f32[]{1.0}}",
        ">> %v6: f64[3] = add(%steps, %v5)",
    ]
    assert isinstance(info.value, AssertionError) and not isinstance(info.value, dlg.DlgError)
