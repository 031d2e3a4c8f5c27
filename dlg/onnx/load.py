"""`dlg.onnx.load`: an ONNX model as a `dlg.Model`.

The model is read with its external data, its local functions inlined, and checked before any
node is built: every op outside the import table and every node of another domain is reported
at once, by op and node name. Then each node runs its op's entry (`OPS`, one per op, the tables
of `ops_*.py`), which builds dlg IR through the user-facing functions. Graph inputs become
inputs (a `dim_param` a symbol, so `N` stays `N`); initializers used as tensors become
parameters under their ONNX names (float ones trainable), shape arithmetic is evaluated while
importing (`node.py`), and the graph's outputs keep their names.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dlg.errors import DlgError, DlgImportError, DlgTypeError
from dlg.frontend.trace import TracedModel
from dlg.ir.builder import Builder
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph, Value
from dlg.ir.shapes import Sym
from dlg.ir.types import TensorType
from dlg.onnx import ops_math, ops_nn, ops_rnn, ops_shape
from dlg.onnx.node import ImportFront, OnnxNode, Static, elem_dtype
from dlg.onnx.types import onnx_module

OPS = {**ops_math.OPS, **ops_nn.OPS, **ops_shape.OPS, **ops_rnn.OPS}
assert len(OPS) == sum(len(m.OPS) for m in (ops_math, ops_nn, ops_shape, ops_rnn)), \
    "an ONNX op has two entries"
DOMAINS = ("", "ai.onnx")


def load(source: str | Path | bytes | Any, known_inputs: Mapping[str, Any] | None = None
         ) -> TracedModel:
    """An ONNX model (a path, serialized bytes or an `onnx.ModelProto`) as a dlg model.
    `known_inputs` gives values for graph inputs that dlg must know while importing (a Reshape's
    shape fed as an input); they stay inputs otherwise. `model.to_dlg()` prints it as .dlg."""
    model = read_model(source)
    return _Importer(model, dict(known_inputs or {})).run()


def read_model(source: str | Path | bytes | Any) -> Any:
    """The ModelProto, external data loaded and local functions inlined; a DlgImportError for a
    missing file, a damaged protobuf or missing external data."""
    onnx = onnx_module()
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise DlgImportError(f"{path}: no such ONNX file")
        try:
            model = onnx.load_model(str(path), load_external_data=False)
        except Exception as e:  # protobuf's DecodeError and friends
            raise DlgImportError(f"{path}: not a readable ONNX model ({e})") from None
        _load_external_data(model, path)
    elif isinstance(source, bytes):
        try:
            model = onnx.load_model_from_string(source)
        except Exception as e:
            raise DlgImportError(f"not a readable ONNX model ({e})") from None
    elif isinstance(source, onnx.ModelProto):
        model = source
    else:
        raise DlgImportError(f"dlg.onnx.load takes a path, bytes or an onnx.ModelProto, not "
                             f"{type(source).__name__}")
    if not model.HasField("graph"):
        raise DlgImportError("not an ONNX model: it has no graph")
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    return model


def _load_external_data(model: Any, path: Path) -> None:
    """The tensors kept in files beside the model, each file checked first by name."""
    helper = importlib.import_module("onnx.external_data_helper")
    tensors = [t for t in helper._get_all_tensors(model) if helper.uses_external_data(t)]
    for tensor in tensors:
        location = helper.ExternalDataInfo(tensor).location
        if not (path.parent / location).is_file():
            raise DlgImportError(f"{path}: external data file {location!r} of tensor "
                                 f"{tensor.name!r} is missing (looked in {path.parent})")
    if tensors:
        try:
            helper.load_external_data_for_model(model, str(path.parent))
        except Exception as e:  # a file too short, a location outside the folder
            raise DlgImportError(f"{path}: external data could not be read ({e})") from None


def unsupported_ops(model: Any) -> dict[str, list[str]]:
    """The ops dlg does not import (of other domains, with their opset), each with its nodes."""
    opsets = {o.domain: o.version for o in model.opset_import}
    unsupported: dict[str, list[str]] = {}
    for i, node in enumerate(model.graph.node):
        if node.domain not in DOMAINS:
            key = f"{node.op_type} of domain {node.domain!r} (opset {opsets.get(node.domain)})"
        elif node.op_type not in OPS:
            key = node.op_type
        else:
            continue
        unsupported.setdefault(key, []).append(node.name or f"#{i}")
    return unsupported


def check_supported(model: Any) -> int:
    """The ai.onnx opset version; a DlgImportError listing every node dlg cannot import."""
    opsets = {o.domain: o.version for o in model.opset_import}
    version = opsets.get("", opsets.get("ai.onnx"))
    if version is None:
        raise DlgImportError("the model imports no ai.onnx opset")
    unsupported = unsupported_ops(model)
    if unsupported:
        lines = [f"{op} (node{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))})"
                 for op, names in sorted(unsupported.items())]
        raise DlgImportError(f"{len(unsupported)} unsupported ONNX op"
                             f"{'s' if len(unsupported) > 1 else ''}: " + "; ".join(lines))
    return version


def clean_name(name: str, fallback: str) -> str:
    """An ONNX value name as a dlg name: dotted parts of letters, digits and underscores
    (`fc1.weight` stays, `onnx::Conv_12` is `onnx__Conv_12`)."""
    parts = [re.sub(r"\W", "_", p) for p in name.split(".")]
    parts = [p if p and not p[0].isdigit() or p.isdigit() else f"_{p}" for p in parts]
    cleaned = ".".join(p for p in parts if p)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"{fallback}_{cleaned}"


class _Importer:
    def __init__(self, model: Any, known: dict[str, Static]):
        self.onnx = onnx_module()
        self.model = model
        self.opset = check_supported(model)
        graph = model.graph
        self.graph = Graph(clean_name(graph.name or "onnx_model", "model").replace(".", "_"))
        self.builder = Builder(self.graph)
        self.front = ImportFront(self.builder)
        self.known = known
        self.values: dict[str, Value | Static] = {}
        self.materialized: dict[str, Value] = {}
        self.params: dict[str, np.ndarray] = {}
        self.trainable: dict[str, bool] = {}
        self.initializers = {t.name for t in graph.initializer}
        self.symbols: dict[str, Sym] = {}

    def run(self) -> TracedModel:
        graph = self.model.graph
        for tensor in graph.initializer:
            self.values[tensor.name] = self.onnx.numpy_helper.to_array(tensor)
        for info in graph.input:
            if info.name not in self.initializers:  # IR < 4 lists initializers as inputs too
                self.values[info.name] = self.builder.input(clean_name(info.name, "input"),
                                                            self._input_type(info))
        for node in graph.node:
            self._node(node)
        for info in graph.output:
            value = self.values[info.name]
            if isinstance(value, np.ndarray):
                value = self.materialize(info.name)
            self.graph.set_output(clean_name(info.name, "output").replace(".", "_"), value)
        return TracedModel(self.graph, self.params, self.trainable, seed=None)

    def _node(self, proto: Any) -> None:
        node = OnnxNode(proto, self.opset, self.front, self)
        try:
            result = self._fold(proto) if _foldable(node) else OPS[proto.op_type](node)
        except DlgError as e:
            if e.message.startswith("ONNX node "):
                raise
            raise type(e)(f"ONNX node {node.name!r} ({node.op}): {e.message}", e.span,
                          e.notes) from None
        results = result if isinstance(result, tuple) else (result,)
        for name, value in zip(proto.output, results):
            if name:  # static results may come back as NumPy scalars or symbolic dims
                self.values[name] = value if isinstance(value, Value) else np.asarray(value)

    def _fold(self, proto: Any) -> tuple[np.ndarray, ...]:
        """A node whose inputs are all known numbers, evaluated by ONNX's reference
        implementation (the shape arithmetic of exported functions: Size, Range, Sub...)."""
        onnx = self.onnx
        graph = onnx.helper.make_graph(
            [proto], "fold", [onnx.helper.make_tensor_value_info(name, 0, None)
                              for name in proto.input if name],
            [onnx.helper.make_tensor_value_info(name, 0, None) for name in proto.output])
        model = onnx.helper.make_model(graph, opset_imports=self.model.opset_import)
        feeds = {name: self.values[name] for name in proto.input if name}
        try:
            return tuple(onnx.reference.ReferenceEvaluator(model).run(None, feeds))
        except Exception as e:  # the reference's own errors (a bad constant graph)
            raise DlgImportError(f"evaluating this node on constants failed: {e}") from None

    # -- values -----------------------------------------------------------------------------------
    def materialize(self, name: str) -> Value:
        """A static array as a graph value: a scalar a constant, anything larger a parameter
        under its ONNX name (initializers of floats trainable), so `to_dlg` can print it. The
        array stays the static value (a shape read as a tensor and as a shape)."""
        if name in self.materialized:
            return self.materialized[name]
        array = self.values[name]
        assert isinstance(array, np.ndarray)
        if array.dtype == object:
            raise DlgTypeError(f"{name!r} holds symbolic dims ({array.tolist()}); dlg uses "
                               f"shapes as attributes, not as tensors")
        dtype = _dtype(array, name)
        array = np.asarray(array, dtype.np, order="C")
        if array.ndim == 0:
            value = self.builder.constant(array, dtype)
        else:
            value = self.add_param(name, array, name in self.initializers and dtype.is_float)
        self.materialized[name] = value
        return value

    def add_param(self, name: str, array: np.ndarray, trainable: bool) -> Value:
        pname = clean_name(name, "param")
        while pname in self.params:
            pname += "_"
        self.params[pname], self.trainable[pname] = array, trainable
        return self.builder.param(pname, TensorType(DType.of(array), array.shape),
                                  trainable=trainable)

    def _input_type(self, info: Any) -> TensorType:
        t = info.type
        if not t.HasField("tensor_type"):
            raise DlgImportError(f"input {info.name!r}: only tensor inputs are supported "
                                 f"(not sequences, maps or optionals)")
        dtype = elem_dtype(t.tensor_type.elem_type, f"input {info.name!r}")
        if not t.tensor_type.HasField("shape"):
            raise DlgImportError(f"input {info.name!r} has no shape; dlg needs each input's "
                                 f"rank")
        dims: list[Any] = []
        for axis, d in enumerate(t.tensor_type.shape.dim):
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            else:
                dims.append(self._symbol(d.dim_param or f"{info.name}_{axis}"))
        return TensorType(dtype, tuple(dims))

    def _symbol(self, name: str) -> Sym:
        """A dynamic dim's symbol: the ONNX name, capitalised as .dlg writes symbols."""
        if name not in self.symbols:
            clean = clean_name(name, "D").replace(".", "_")
            self.symbols[name] = Sym.named(clean[0].upper() + clean[1:])
        return self.symbols[name]

    def attribute(self, a: Any) -> Any:
        value = self.onnx.helper.get_attribute_value(a)
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, self.onnx.TensorProto):
            return self.onnx.numpy_helper.to_array(value)
        if isinstance(value, list) and value and isinstance(value[0], bytes):
            return [v.decode() for v in value]
        return value


def _foldable(node: OnnxNode) -> bool:
    """Every input known and numeric: symbolic dims go through the table's own entries."""
    return node.num_inputs > 0 and node.all_static() and not any(
        a.dtype == object for a in node.statics())


def _dtype(array: np.ndarray, what: str) -> DType:
    try:
        return DType.of(array)
    except KeyError:
        raise DlgTypeError(f"{what!r}: element type {array.dtype} is not one of dlg's dtypes "
                           f"(f16, f32, f64, i32, i64, bool)") from None
