"""`dlg.onnx.export`: a dlg model's inference graph as an ONNX model file.

The graph is written from the IR (the registry's ops, through `export_ops.EXPORTS`), so .dlg
models and traced modules export alike: inputs keep their names and symbolic dims (`N` stays
a named dynamic dim), parameters become initializers under their PyTorch names, outputs keep
their names, `scan` becomes ONNX `Scan` (the standard recurrent cells `LSTM`, `GRU`, `RNN`:
`export_rnn`). Ops with no ONNX form are reported together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dlg.compiler.interpreted import refuse_interpreted
from dlg.errors import DlgTypeError, DlgValueError
from dlg.files import write_bytes
from dlg.ir.graph import Graph
from dlg.onnx.export_graph import ModelState, OnnxGraph, emit_graph, find_dim_sources
from dlg.onnx.export_ops import EXPORTS
from dlg.onnx.types import onnx_module

DEFAULT_OPSET = 17
OPSETS = range(17, 24)  # what the mappings are written for and onnxruntime 1.32 runs


class Exportable(Protocol):
    """A `dlg.Model` (from `dlg.load` or `dlg.trace`) or anything with its graph and params."""

    graph: Graph
    params: Any


def _model_of(model: Any) -> Exportable:
    """The model itself, or the one a `dlg.Executable` runs; anything else is a DlgTypeError."""
    inner = getattr(model, "model", None)
    model = inner if isinstance(getattr(inner, "graph", None), Graph) else model
    if not isinstance(getattr(model, "graph", None), Graph) or not hasattr(model, "params"):
        raise DlgTypeError(f"dlg.onnx.export takes a dlg.Model (from dlg.load, or dlg.trace(module,"
                           f" example_input) for a dlg.nn module) or a dlg.Executable, got "
                           f"{type(model).__name__}")
    return model


def export(model: Any, path: str | Path | None = None, opset: int = DEFAULT_OPSET,
           rnn_ops: bool = True) -> Any:
    """Write the inference graph of `model` (a dlg.Model or dlg.Executable) to `path` as ONNX
    (when given) and return the `onnx.ModelProto`. `opset` is the ONNX default-domain version
    (17 to 23). The standard recurrent layers (dlg.nn's and prelude.dlg's RNN, GRU, LSTM)
    become ONNX RNN, GRU and LSTM ops; `rnn_ops=False` writes them, as every other scan, as
    ONNX Scan loops."""
    onnx = onnx_module()
    if opset not in OPSETS:
        raise DlgValueError(f"ONNX export: opset {opset} is not supported; choose one of "
                            f"{OPSETS.start}..{OPSETS.stop - 1} (default {DEFAULT_OPSET})")
    model = _model_of(model)
    g = model.graph
    refuse_interpreted(g, "ONNX export", "dlg's exporter has no complex ops (ONNX's complex "
                       "tensors have few operators)")
    state = ModelState(onnx, opset, EXPORTS, rnn_ops)
    root = state.root = OnnxGraph(state)
    env, inputs = {}, []
    for node in g.inputs:
        env[node.out] = state.name(node.name or "input")
        inputs.append(root.value_info(env[node.out], node.types[0]))
    state.dim_sources = find_dim_sources(g, {n.name or "": env[n.out] for n in g.inputs})
    needed = g.ancestors([v for _, v in g.outputs])
    for node in g.params:
        if node.id in needed:
            env[node.out] = root.const(np.asarray(model.params[node.name]), name=state.name(
                node.name or "param"))
    names = [state.name(name) for name, _ in g.outputs]
    emit_graph(root, g, env, names)
    if state.missing:
        raise DlgValueError(f"ONNX export of {g.name}: no ONNX mapping for "
                            f"{', '.join(state.missing)}")
    outputs = [root.value_info(n, g.type_of(v)) for n, (_, v) in zip(names, g.outputs)]
    opsets = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(  # the oldest IR version the opset allows: older runtimes
        root.make_graph(g.name, inputs, outputs, state.initializers), opset_imports=opsets,
        ir_version=onnx.helper.find_min_ir_version_for(opsets), producer_name="dlg")
    if path is not None:
        write_bytes(path, proto.SerializeToString())
    return proto
