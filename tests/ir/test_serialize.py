"""JSON (de)serialisation of hand-built graphs: every attribute kind, scan bodies, node ids,
spans and updates survive; anything inconsistent in a file is a DlgError, never a traceback."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from dlg.errors import DlgError, Span
from dlg.ir import REGISTRY, Builder, Graph, TensorType, Value
from dlg.ir.printer import format_graph
from dlg.ir.serialize import FORMAT_VERSION, dumps, graph_from_json, graph_to_json, loads
from dlg.ir.verify import verify
from dlg.runtime.interp import Interpreter
from tests.ir.sample_graphs import SPAN, every_attr_kind, recurrent, tiny


def _kinds(g: Graph) -> set[str]:
    out = set()
    for node in g:
        out |= {node.op.attrs[k].kind.rstrip("?") for k in node.attrs}
        if "body" in node.attrs:
            out |= _kinds(node.attrs["body"])
    return out


def test_sample_graph_covers_every_attr_kind_the_ops_use():
    used = {a.kind.rstrip("?") for op in REGISTRY.values() for a in op.attrs.values()}
    assert used - {"object"} <= _kinds(every_attr_kind())  # object: refused below


def test_a_graph_running_python_is_refused():
    """An eager autograd.Function's node holds Python (`object` attributes): no JSON for it."""
    g = Graph("f")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[2]"))
    fn = type("Twice", (), {"infer": lambda self, types: types,
                            "compute": lambda self, arrays: [2 * a for a in arrays]})()
    g.set_output("y", b.emit(REGISTRY["py_function"], x, fn=fn)[0])
    with pytest.raises(DlgError, match="py_function: a graph running Python"):
        graph_to_json(g)


@pytest.mark.parametrize("make", [tiny, recurrent, every_attr_kind])
def test_round_trip_is_a_fixed_point(make):
    g = make()
    data = graph_to_json(g)
    again = graph_from_json(json.loads(json.dumps(data)))
    assert graph_to_json(again) == data
    assert loads(dumps(g)) is not g and graph_to_json(loads(dumps(again))) == data
    assert format_graph(again) == format_graph(g)
    verify(again)


def test_round_trip_keeps_values_and_results():
    g = every_attr_kind()
    again = loads(dumps(g))
    for old, new in zip(g, again):
        assert (old.id, old.op, old.types, old.name, old.backward) == \
            (new.id, new.op, new.types, new.name, new.backward)
        for k, v in old.attrs.items():
            if isinstance(v, np.ndarray):
                assert new.attrs[k].dtype == v.dtype and new.attrs[k].shape == v.shape
                np.testing.assert_array_equal(new.attrs[k], v)
    assert again.outputs == g.outputs and again.updates == g.updates
    rng = np.random.default_rng(0)
    inputs = {"xs": rng.standard_normal((3, 2, 4)).astype(np.float32),
              "x": rng.standard_normal((5, 3)).astype(np.float32)}
    params = {"c": np.float32([0.5, -1, 2, 0]), "steps": np.float32(3)}
    want, want_upd = Interpreter(0).run(g, inputs, params)
    got, got_upd = Interpreter(0).run(again, inputs, params)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    np.testing.assert_array_equal(got_upd["steps"], want_upd["steps"])


def test_node_ids_and_spans_are_kept_without_source_text():
    g = tiny()  # ids 0..3; spread them out as a pass that drops nodes would leave them

    def spread(v: Value) -> Value:
        return Value(11 * v.node, v.index)

    gapped = Graph(g.name, {11 * k: replace(n, id=11 * k, inputs=tuple(map(spread, n.inputs)))
                            for k, n in g.nodes.items()},
                   [("out", spread(g.outputs[0][1]))], span=SPAN)
    data = graph_to_json(gapped)
    again = graph_from_json(data)
    assert list(again.nodes) == [0, 11, 22, 33]
    node = again.nodes[22]
    assert node.span == Span("m.dlg", 3, 5, 3, 12) and again.span == node.span
    assert "model M" not in json.dumps(data)
    assert again.add_node(node.op, node.inputs, node.attrs, node.types).id == 34


def _first(data, op):
    return next(n for n in data["nodes"] if n["op"] == op)


CORRUPTIONS = {
    "version": lambda d: d.update(version=FORMAT_VERSION + 1),
    "format": lambda d: d.update(format="onnx"),
    "not_a_dict": lambda d: d.clear(),
    "unknown_op": lambda d: _first(d, "add").update(op="frobnicate"),
    "stored_type": lambda d: _first(d, "add").update(types=["f32[N,5]"]),
    "bad_type_text": lambda d: _first(d, "add").update(types=["f32[N,"]),
    "bad_dtype": lambda d: _first(d, "full").update(types=["q7[N,4]"]),
    "input_later": lambda d: _first(d, "full")["inputs"].append([d["nodes"][-1]["id"], 0]),
    "input_index": lambda d: _first(d, "add")["inputs"].__setitem__(0, [0, 3]),
    "repeated_id": lambda d: _first(d, "add").update(id=0),
    "unknown_attr": lambda d: _first(d, "add")["attrs"].update(alpha=2),
    "attr_kind": lambda d: _first(d, "scan")["attrs"].update(n_carry="one"),
    "missing_attrs": lambda d: _first(d, "scan").pop("attrs"),
    "bad_dim": lambda d: _first(d, "full")["attrs"].update(shape=["N +", 4]),
    "bad_dtype_attr": lambda d: _first(d, "full")["attrs"].update(dtype="f31"),
    "base64": lambda d: _first(d, "constant")["attrs"]["value"].update(data="!!"),
    "array_size": lambda d: _first(d, "constant")["attrs"]["value"].update(shape=[2]),
    "body_type": lambda d: _first(_first(d, "scan")["attrs"]["body"], "tanh").update(
        types=["f32[N,5]"]),
    "output_ref": lambda d: d["outputs"].append(["extra", 3, 7]),
    "update_ref": lambda d: d["updates"][0].__setitem__(1, 999),
    "span": lambda d: _first(d, "add").update(span=[1, 2]),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_corrupt_file_is_a_dlg_error(name):
    data = graph_to_json(recurrent())
    CORRUPTIONS[name](data)
    with pytest.raises(DlgError):
        graph_from_json(json.loads(json.dumps(data)))


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", "null", '{"format": "dlg-graph"}'])
def test_text_that_is_no_graph_is_a_dlg_error(text):
    with pytest.raises(DlgError):
        loads(text)
