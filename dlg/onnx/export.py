"""`dlg.onnx.export`: a dlg model's inference graph as an ONNX model file.

The graph is written from the IR (the registry's ops, through `export_ops.EXPORTS`), so .dlg
models and traced modules export alike: inputs keep their names and symbolic dims (`N` stays
a named dynamic dim), parameters become initializers under their PyTorch names, outputs keep
their names, `scan` becomes ONNX `Scan` (the standard recurrent cells `LSTM`, `GRU`, `RNN`:
`export_rnn`). Ops with no ONNX form are reported together. A dlg.nn module is traced first,
in torch.onnx.export's spelling (`export_module.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from dlg.compiler.interpreted import refuse_interpreted
from dlg.errors import DlgTypeError, DlgValueError
from dlg.files import write_bytes
from dlg.ir.graph import Graph
from dlg.onnx.export_graph import ModelState, OnnxGraph, emit_graph, find_dim_sources
from dlg.frontend.nn import Module
from dlg.onnx.export_module import (DynamicAxes, TrainingMode, output_dim_names,
                                    refuse_module_options, trace_module)
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
        raise DlgTypeError(f"dlg.onnx.export takes a dlg.nn.Module with example arguments "
                           f"(export(module, (x,), path)), a dlg.Model (from dlg.load or "
                           f"dlg.trace) or a dlg.Executable, got {type(model).__name__}")
    return model


def export(model: Any, args: Any = (), f: str | Path | IO[bytes] | None = None, *,
           kwargs: Mapping[str, Any] | None = None, input_names: Sequence[str] | None = None,
           output_names: Sequence[str] | None = None, opset_version: int | None = None,
           dynamic_axes: DynamicAxes | None = None, training: Any = TrainingMode.EVAL,
           export_params: bool = True, keep_initializers_as_inputs: bool = False,
           opset: int | None = None, rnn_ops: bool = True, dynamic_shapes: Any = None,
           custom_opsets: Mapping[str, int] | None = None,
           operator_export_type: Any = None, export_modules_as_functions: Any = False,
           custom_translation_table: Any = None, **unused: Any) -> Any:
    """Write `model`'s inference graph as ONNX to `f` (a path or binary file, when given) and
    return the `onnx.ModelProto`. torch.onnx.export's call: `model` a dlg.nn.Module traced on
    `args` (one tensor, or a tuple of arguments, a dict of keyword arguments last), with
    `input_names`, `output_names` and `dynamic_axes` (or torch.export's `dynamic_shapes`) as
    torch's (export_module.py), in eval
    mode unless `training` says otherwise. dlg's own: `export(m, path)` of a dlg.Model or
    dlg.Executable, which keeps its graph's names and symbolic dims (`N`).

    `opset_version` (or `opset`) is the ONNX default-domain version, 17 to 23 (default 17).
    The standard recurrent layers (dlg.nn's and prelude.dlg's RNN, GRU, LSTM) become ONNX RNN,
    GRU and LSTM ops; `rnn_ops=False` writes them, as every other scan, as ONNX Scan loops.
    torch's options that change nothing here are accepted (`verbose`, `dynamo`,
    `do_constant_folding`, `external_data`, `optimize`, `verify`, `report`, `profile`,
    `autograd_inlining`, ...); those asking for another file (`export_params=False`,
    `keep_initializers_as_inputs=True`, custom opsets or translations, ONNX functions,
    another operator_export_type) are a DlgValueError."""
    _refuse(unused, export_params=export_params,
            keep_initializers_as_inputs=keep_initializers_as_inputs,
            custom_opsets=custom_opsets or None,
            operator_export_type=operator_export_type,
            export_modules_as_functions=export_modules_as_functions,
            custom_translation_table=custom_translation_table)
    if opset is not None and opset_version is not None and opset != opset_version:
        raise DlgValueError(f"dlg.onnx.export: opset={opset} and opset_version={opset_version} "
                            f"differ; give one")
    opset = opset_version if opset is None else opset
    dims: dict[str, dict[int, str]] = {}
    if isinstance(model, Module):
        model = trace_module(model, args, kwargs, input_names, output_names, dynamic_axes,
                             training, dynamic_shapes)
        dims = output_dim_names([n for n, _ in model.graph.outputs], dynamic_axes)
    else:  # dlg's form: export(m, path, opset)
        if isinstance(f, int) and not isinstance(f, bool) and opset is None:
            opset, f = f, None
        if f is None and (isinstance(args, (str, Path)) or hasattr(args, "write")):
            args, f = (), args
        refuse_module_options(args=args, kwargs=kwargs, input_names=input_names,
                              output_names=output_names, dynamic_axes=dynamic_axes,
                              dynamic_shapes=dynamic_shapes)
    proto = write_model(model, opset=DEFAULT_OPSET if opset is None else opset,
                        rnn_ops=rnn_ops)
    for output in proto.graph.output:  # dynamic_axes' names for outputs' axes
        for axis, name in dims.get(output.name, {}).items():
            output.type.tensor_type.shape.dim[axis].dim_param = name
    if hasattr(f, "write"):
        f.write(proto.SerializeToString())  # type: ignore[union-attr]
    elif f is not None:
        write_bytes(f, proto.SerializeToString())  # type: ignore[arg-type]
    return proto


# torch.onnx.export's options that change nothing in what dlg writes
ACCEPTED = frozenset({"verbose", "dynamo", "do_constant_folding", "external_data", "report",
                      "optimize", "verify", "profile", "dump_exported_program",
                      "artifacts_dir", "autograd_inlining", "fallback"})


def _refuse(unused: Mapping[str, Any], **options: Any) -> None:
    """Unknown keywords, and torch's options asking for a file other than dlg writes."""
    unknown = sorted(set(unused) - ACCEPTED)
    if unknown:
        raise DlgTypeError(f"dlg.onnx.export got unexpected keyword argument(s) "
                           f"{', '.join(unknown)}")
    kind = options.pop("operator_export_type")
    defaults = {"export_params": True, "keep_initializers_as_inputs": False,
                "export_modules_as_functions": False}
    refused = [f"{k}={v!r}" for k, v in options.items() if v != defaults.get(k)]
    if kind is not None and getattr(kind, "name", kind) not in ("ONNX", 0):
        refused.append(f"operator_export_type={kind!r}")
    if refused:
        raise DlgValueError(f"dlg.onnx.export: {', '.join(refused)} is not supported: dlg "
                            f"writes standard ONNX with the parameters as initializers "
                            f"(dynamic dims: dynamic_axes={{'x': {{0: 'batch'}}}})")


def write_model(model: Any, opset: int = DEFAULT_OPSET, rnn_ops: bool = True) -> Any:
    """The `onnx.ModelProto` of a dlg.Model's (or dlg.Executable's) inference graph."""
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
    return onnx.helper.make_model(  # the oldest IR version the opset allows: older runtimes
        root.make_graph(g.name, inputs, outputs, state.initializers), opset_imports=opsets,
        ir_version=onnx.helper.find_min_ir_version_for(opsets), producer_name="dlg")
