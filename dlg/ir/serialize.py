"""Graphs to JSON and back. Ops are stored by name and attributes by their schema kind; loading
re-runs every op's `infer` rule and checks the stored types, so a corrupt file is a DlgError."""

from __future__ import annotations

import base64
import json
from types import MappingProxyType
from typing import Any

import numpy as np

from dlg.errors import DlgError, DlgValueError, Span
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.opdef import REGISTRY, OpDef
from dlg.ir.shapes import Sym, parse_dim
from dlg.ir.types import TensorType

FORMAT_VERSION = 1


def graph_to_json(g: Graph) -> dict[str, Any]:
    """Plain JSON data (node ids, spans and nested bodies kept; spans without source text)."""
    return {
        "format": "dlg-graph", "version": FORMAT_VERSION, "name": g.name,
        "nodes": [{"id": n.id, "op": n.op.name, "inputs": [[v.node, v.index] for v in n.inputs],
                   "attrs": {k: _encode(n.op, k, v) for k, v in n.attrs.items()},
                   "types": [str(t) for t in n.types], "name": n.name,
                   "span": n.span.to_json() if n.span else None, "backward": n.backward}
                  for n in g],
        "outputs": [[name, v.node, v.index] for name, v in g.outputs],
        "updates": [[name, v.node, v.index] for name, v in g.updates],
        "span": g.span.to_json() if g.span else None,
    }


def graph_from_json(data: Any) -> Graph:
    """Rebuild a graph, re-inferring every type: any inconsistency is a DlgValueError."""
    try:
        return _decode_graph(data)
    except DlgError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError) as e:
        raise DlgValueError(f"corrupt graph JSON: {type(e).__name__}: {e}") from None


def dumps(g: Graph) -> str:
    return json.dumps(graph_to_json(g), indent=1)


def loads(text: str) -> Graph:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DlgValueError(f"corrupt graph JSON: {e}") from None
    return graph_from_json(data)


def _decode_graph(data: dict[str, Any]) -> Graph:
    if data.get("format") != "dlg-graph" or data.get("version") != FORMAT_VERSION:
        raise DlgValueError(f"not a dlg graph of format version {FORMAT_VERSION}")
    nodes: dict[int, Node] = {}
    for entry in data["nodes"]:
        nid, op = entry["id"], REGISTRY.get(entry["op"])
        if op is None:
            raise DlgValueError(f"corrupt graph JSON: unknown op {entry['op']!r}")
        if not isinstance(nid, int) or nid in nodes:
            raise DlgValueError(f"corrupt graph JSON: bad or repeated node id {nid!r}")
        inputs = tuple(_value(nodes, ref) for ref in entry["inputs"])
        attrs = op.check_attrs({k: _decode(op, k, v) for k, v in entry["attrs"].items()})
        types = op.infer(*(nodes[v.node].types[v.index] for v in inputs), **attrs)
        types = types if isinstance(types, tuple) else (types,)
        stored = tuple(TensorType.parse(t) for t in entry["types"])
        if types != stored:
            raise DlgValueError(f"corrupt graph JSON: node {nid} ({op.name}) has types "
                                f"{[str(t) for t in stored]} but its inputs give "
                                f"{[str(t) for t in types]}")
        nodes[nid] = Node(nid, op, inputs, MappingProxyType(attrs), types, entry["name"],
                          Span.from_json(entry["span"]), bool(entry["backward"]))
    return Graph(data["name"], nodes,
                 outputs=[(name, _value(nodes, ref)) for name, *ref in data["outputs"]],
                 updates=[(name, _value(nodes, ref)) for name, *ref in data["updates"]],
                 span=Span.from_json(data["span"]))


def _value(nodes: dict[int, Node], ref: list[int]) -> Value:
    """A reference `[node id, output index]` to a value defined earlier in the file."""
    node_id, index = ref
    if node_id not in nodes or not 0 <= index < len(nodes[node_id].types):
        raise DlgValueError(f"corrupt graph JSON: no value {node_id}:{index} defined before use")
    return Value(node_id, index)


def _kind(op: OpDef, name: str) -> str:
    return op.attrs[name].kind.rstrip("?")


def _encode(op: OpDef, name: str, v: Any) -> Any:
    kind = _kind(op, name)
    if v is None:
        return None
    if kind == "dims":
        return [str(d) if isinstance(d, Sym) else d for d in v]
    if kind == "dtype":
        return str(v)
    if kind == "array":
        data = np.asarray(v, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
        return {"dtype": str(DType.of(data)), "shape": list(data.shape),
                "data": base64.b64encode(data.tobytes()).decode()}
    if kind == "graph":
        return graph_to_json(v)
    if kind in ("ints", "axes"):
        return list(v)
    if kind == "pads":
        return [list(p) for p in v]
    if kind == "object":
        raise DlgValueError(f"{op.name}: a graph running Python (an eager autograd.Function) "
                            "cannot be saved; trace the model (dlg.trace) to save it")
    return v


def _decode(op: OpDef, name: str, v: Any) -> Any:
    if name not in op.attrs:
        return v  # check_attrs reports the unknown attribute
    kind = _kind(op, name)
    if v is None:
        return None
    if kind == "dims":
        return tuple(parse_dim(d) if isinstance(d, str) else d for d in v)
    if kind == "dtype":
        return DType.parse(v)
    if kind == "array":
        dtype = DType.parse(v["dtype"]).np
        raw = base64.b64decode(v["data"])
        return np.frombuffer(raw, dtype=dtype).reshape(v["shape"]).copy()
    if kind == "graph":
        return _decode_graph(v)
    if kind in ("ints", "axes"):
        return tuple(v)
    if kind == "pads":
        return tuple(tuple(p) for p in v)
    return v
