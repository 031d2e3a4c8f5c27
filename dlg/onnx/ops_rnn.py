"""ONNX import entries: the recurrent layers LSTM, GRU and RNN, as prelude.dlg's layers.

Each becomes one call of the .dlg layer of the same name (`grammar.layer_graph`: one `scan` per
direction, as a .dlg model or a traced `dlg.nn.LSTM` has), its weights converted to PyTorch's
layout: ONNX stacks gates i,o,f,c (LSTM) and z,r,h (GRU) where PyTorch has i,f,g,o and r,z,n, and
packs both biases in one [dirs, 2*gates*H] input. The parameters are named after the node
(`lstm.weight_ih_l0`). What the .dlg layers do not compute is refused by name: peepholes,
sequence lengths, clipping, other activations, `input_forget`, GRU's `linear_before_reset=0`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.functions.indexing import index
from dlg.grammar.layer_graph import layer_graph
from dlg.ir.builder import Builder
from dlg.ir.graph import Node, Value
from dlg.ir.ops.shape import RESHAPE, TRANSPOSE
from dlg.ir.ops.source import PARAM
from dlg.ir.rewrite import copy_nodes
from dlg.onnx.node import Handler, OnnxNode

# kind -> (gates, PyTorch's gate order as ONNX gate positions, ONNX's default activations)
KINDS = {"LSTM": (4, (0, 2, 3, 1), ["Sigmoid", "Tanh", "Tanh"]),
         "GRU": (3, (1, 0, 2), ["Sigmoid", "Tanh"]), "RNN": (1, (0,), ["Tanh"])}


def _reorder(w: np.ndarray, kind: str) -> np.ndarray:
    """ONNX's gate blocks along axis 0 in PyTorch's order."""
    gates, order, _ = KINDS[kind]
    blocks = np.split(w, gates, axis=0)
    return np.ascontiguousarray(np.concatenate([blocks[i] for i in order], axis=0), np.float32)


def _options(n: OnnxNode, kind: str, dirs: int) -> dict[str, Any]:
    for name in ("clip", "input_forget"):
        if n.attr(name):
            raise n.error(f"{name} is not supported")
    if n.has(4) or kind == "LSTM" and n.has(7):
        raise n.error("sequence_lens and peepholes are not supported")
    activations = n.attr("activations")
    defaults = KINDS[kind][2]
    options: dict[str, Any] = {}
    if kind == "RNN" and activations and activations[0] == "Relu" and len(set(activations)) == 1:
        options["nonlinearity"] = "relu"
    elif activations and activations != defaults * dirs:
        raise n.error(f"activations {activations} are not supported (only {defaults})")
    if kind == "GRU" and not n.attr("linear_before_reset", 0):
        raise n.error("linear_before_reset=0 is not supported (PyTorch's GRU, and dlg's, apply "
                      "the reset gate after the hidden projection: linear_before_reset=1)")
    return options


def _recurrent(kind: str) -> Handler:
    def handler(n: OnnxNode) -> Any:
        direction = n.attr("direction", "forward")
        dirs = 2 if direction == "bidirectional" else 1
        batch_first = bool(n.attr("layout", 0))
        w, r = n.static(1, "W"), n.static(2, "R")
        hidden = int(n.attr("hidden_size", r.shape[-1]))
        options = {"input_size": int(w.shape[-1]), "hidden_size": hidden, "bias": True,
                   "batch_first": batch_first, "bidirectional": dirs == 2,
                   **_options(n, kind, dirs)}
        gates = KINDS[kind][0]
        b = n.static(3, "B") if n.has(3) else np.zeros((dirs, 2 * gates * hidden), np.float32)
        params = {}
        for d, suffix in enumerate(["", "_reverse"][:dirs]):
            params[f"weight_ih_l0{suffix}"] = _reorder(w[d], kind)
            params[f"weight_hh_l0{suffix}"] = _reorder(r[d], kind)
            params[f"bias_ih_l0{suffix}"] = _reorder(b[d][:gates * hidden], kind)
            params[f"bias_hh_l0{suffix}"] = _reorder(b[d][gates * hidden:], kind)
        x = n.x(0)
        reverse = direction == "reverse"
        if reverse:  # PyTorch's layers run forward first: flip time, run, flip back
            x = _flip_time(n, x, batch_first)
        state = [n.opt(5)] + ([n.opt(6)] if kind == "LSTM" else [])
        if batch_first:
            state = [s if s is None else n.F.emit(TRANSPOSE, s, perm=(1, 0, 2)) for s in state]
        args: list[Any] = [x]
        if any(s is not None for s in state):
            if any(s is None for s in state):
                raise n.error("give both initial_h and initial_c, or neither")
            args.append(tuple(state) if kind == "LSTM" else state[0])
        outs = _call(n, kind, options, args, params)
        return _onnx_outputs(n, outs, dirs, hidden, batch_first, reverse)
    return handler


def _flip_time(n: OnnxNode, x: Value, batch_first: bool) -> Value:
    items = [slice(None)] * 3
    items[1 if batch_first else 0] = slice(None, None, -1)
    return index(n.F, x, items)


def _call(n: OnnxNode, kind: str, options: dict[str, Any], args: list[Any],
          params: dict[str, np.ndarray]) -> list[Value]:
    """The prelude layer's graph for these inputs, copied into the model with the converted
    weights as parameters named after the node."""
    def types(a: Any) -> Any:
        return tuple(types(v) for v in a) if isinstance(a, tuple) else n.F.type_of(a)

    flat = [v for a in args for v in (a if isinstance(a, tuple) else (a,))]
    graph, _ = layer_graph(kind, tuple(sorted(options.items())), tuple(types(a) for a in args),
                           False, None)
    prefix = n.name.replace("/", "_").strip("_") or kind.lower()

    def param(b: Builder, node: Node, _: tuple[Value, ...]) -> Value | None:
        if node.op is not PARAM:
            return None
        return n.add_param(f"{prefix}.{node.name}", params[node.name or ""])

    mapping = copy_nodes(n.F.builder, graph, param, flat)
    return [mapping[v] for _, v in graph.outputs]


def _onnx_outputs(n: OnnxNode, outs: list[Value], dirs: int, hidden: int, batch_first: bool,
                  reverse: bool) -> tuple[Any, ...]:
    """PyTorch's output [T, B, D*H] (batch first [B, T, D*H]) as ONNX's Y [T, D, B, H]
    ([B, T, D, H]); h_n and c_n [D, B, H] as Y_h, Y_c ([B, D, H])."""
    y, states = outs[0], outs[1:]
    if reverse:
        y = _flip_time(n, y, batch_first)
    shape = n.F.type_of(y).shape
    y = n.F.emit(RESHAPE, y, shape=(shape[0], shape[1], dirs, hidden))
    if not batch_first:
        y = n.F.emit(TRANSPOSE, y, perm=(0, 2, 1, 3))
    else:
        states = [n.F.emit(TRANSPOSE, s, perm=(1, 0, 2)) for s in states]
    return (y, *states)


OPS: dict[str, Handler] = {kind: _recurrent(kind) for kind in KINDS}
