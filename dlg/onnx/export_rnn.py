"""Scans that run prelude.dlg's RNN, GRU or LSTM cell, written as ONNX RNN, GRU or LSTM.

A scan is recognised by structure, not by names: its body must equal (`ir.compare`, ops, types,
attributes and wiring) the body the prelude layer itself makes for the same sizes, so only the
standard cells match (an LSTM with proj_size, a hand-written cell with another order of the same
ops, or a scan over another axis stays an ONNX Scan). PyTorch's gate orders become ONNX's in the
graph (a split and concat of each weight that onnxruntime folds at load), so the initializers
keep PyTorch's names and layouts: LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h with
linear_before_reset (PyTorch multiplies r by h W_hn + b_hn).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dlg.grammar.layer_graph import layer_graph
from dlg.ir.compare import graph_diff
from dlg.ir.graph import Graph
from dlg.ir.ops.control import SCAN
from dlg.ir.types import TensorType
from dlg.onnx.export_graph import Call, OnnxGraph


@dataclass(frozen=True)
class Cell:
    """One prelude layer's cell and its ONNX op."""

    layer: str             # the prelude layer (and ONNX op) name
    n_carry: int           # h (and c)
    order: tuple[int, ...]  # ONNX's gate blocks, as indices of PyTorch's
    variants: tuple[tuple[tuple[str, Any], ...], ...]  # layer options that change the body
    attrs: tuple[dict[str, Any], ...]  # the ONNX attributes of each variant


CELLS = (
    Cell("LSTM", 2, (0, 3, 1, 2), ((),), ({},)),
    Cell("GRU", 1, (1, 0, 2), ((),), ({"linear_before_reset": 1},)),
    Cell("RNN", 1, (0,), ((), (("nonlinearity", "relu"),)),
         ({"activations": ["Tanh"]}, {"activations": ["Relu"]})),
)


def write_recurrent(out: OnnxGraph, c: Call) -> bool:
    """Write `c` (a scan) as an ONNX RNN/GRU/LSTM when it runs a prelude cell; False if not."""
    a = c.attrs
    if a["n_seq"] != 1 or a["axis"] != 0 or c.in_types[a["n_carry"]].rank != 3:
        return False
    found = _match(a["body"], a["n_carry"], c.in_types)
    if found is None:
        return False
    cell, attrs = found
    _emit(out, c, cell, attrs)
    return True


def _match(body: Graph, n_carry: int, types: tuple[TensorType, ...]
           ) -> tuple[Cell, dict[str, Any]] | None:
    x, n_consts = types[n_carry], len(types) - n_carry - 1
    hidden = types[0].shape[-1]
    if types[0].rank != 2 or not isinstance(hidden, int) or not isinstance(x.shape[2], int) \
            or n_consts not in (2, 4):  # the cells' shapes: [N, H] states, weights, biases
        return None
    with_bias = n_consts == 4
    for cell in CELLS:
        if cell.n_carry != n_carry:
            continue
        for variant, attrs in zip(cell.variants, cell.attrs):
            options = (("input_size", x.shape[2]), ("hidden_size", hidden),
                       ("bias", with_bias)) + variant
            template, _ = layer_graph(cell.layer, options, (x,), False, None)
            scan = next(n for n in template if n.op is SCAN)
            if not graph_diff(scan.attrs["body"], body, limit=1):
                return cell, attrs
    return None


def _emit(out: OnnxGraph, c: Call, cell: Cell, attrs: dict[str, Any]) -> None:
    nc = cell.n_carry
    carries, x, consts = c.inputs[:nc], c.inputs[nc], c.inputs[nc + 1:]
    hidden = c.in_types[0].shape[-1]
    zero = out.ints([0], "axis0")
    w, r = (_gates(out, name, cell.order) for name in consts[:2])
    b = out.one("Concat", [_gates(out, n, cell.order) for n in consts[2:]], axis=1) \
        if consts[2:] else ""  # ONNX's B is [1, W_b then R_b]
    initial = [out.one("Unsqueeze", [h, zero]) for h in carries]
    ys, *states = out.emit(cell.layer, [x, w, r, b, "", *initial], 1 + nc, hidden_size=hidden,
                           direction="reverse" if c.attrs["reverse"] else "forward", **attrs)
    for state, name in zip(states, c.outputs[:nc]):
        out.one("Squeeze", [state, zero], name)
    out.one("Squeeze", [ys, out.ints([1], "axis1")], c.outputs[nc])


def _gates(out: OnnxGraph, weight: str, order: tuple[int, ...]) -> str:
    """A [G*H, ...] weight or bias as ONNX's [1, G*H, ...] with its gate blocks reordered."""
    if order != tuple(range(len(order))):
        parts = out.emit("Split", [weight], len(order), axis=0, num_outputs=(
            len(order) if out.opset >= 18 else None))
        weight = out.one("Concat", [parts[i] for i in order], axis=0)
    return out.one("Unsqueeze", [weight, out.ints([0], "axis0")])
