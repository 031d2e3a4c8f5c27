"""The ONNX export table: one mapping per dlg op (STYLE §1), keyed by its `OpDef`.

A mapping gets the ONNX graph being written, the dlg node, its inputs' ONNX names and the names
its outputs must have, and emits ONNX nodes, or returns False for an attribute combination
ONNX lacks. Composites missing from `EXPORTS` (or declined) are written as their decomposition
into primitives; primitives missing (or declined) are reported together by name. Semantics are
dlg's: each mapping is checked against the interpreter through onnxruntime
(tests/onnx/test_export.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.ir.ops.control import SCAN
from dlg.ir.ops.conv import CONV
from dlg.ir.ops.elementwise import (
    ABS, ADD, ATAN, CAST, CEIL, COS, DIV, EQ, ERF, EXP, FLOOR, GE, GT, LE, LOG, LOG1P, LOGICAL_AND,
    LOGICAL_NOT, LOGICAL_OR, LT, MAXIMUM, MINIMUM, MUL, NE, NEG, POW, RELU, RSQRT, SIGMOID, SIGN,
    SIN, SQRT, SUB, TANH, WHERE,
)
from dlg.ir.ops.gather import GATHER, SCATTER, SCATTER_ADD_ALONG
from dlg.ir.ops.linalg import MATMUL
from dlg.ir.ops.nn import BATCH_NORM, LAYER_NORM, LINEAR, LINEAR_NOBIAS, LOG_SOFTMAX, SOFTMAX
from dlg.ir.ops.opdef import OpDef
from dlg.ir.ops.pool import AVG_POOL, MAX_POOL
from dlg.ir.ops.reduce import (
    ARGMAX, ARGMIN, NUMEL, REDUCE_MAX, REDUCE_MIN, REDUCE_PROD, REDUCE_SUM,
)
from dlg.ir.ops.shape import (
    BROADCAST_TO, CONCAT, PAD, RESHAPE, SCATTER_ADD, SLICE, SPLIT, TAKE, TRANSPOSE,
)
from dlg.ir.ops.sort import CUMSUM, SORT
from dlg.ir.ops.source import ARANGE, CONSTANT, FULL
from dlg.ir.shapes import Dim, Sym
from dlg.onnx.export_graph import Call, OpExport, OnnxGraph, emit_graph
from dlg.onnx.export_rnn import write_recurrent
from dlg.onnx.types import to_onnx

INT64_MIN = np.iinfo(np.int64).min


def same(op_type: str, **fixed: Any) -> OpExport:
    """A dlg op that is one ONNX node with the same inputs (NumPy broadcasting in both)."""
    return lambda out, c: out.emit(op_type, c.inputs, c.outputs, **fixed)


def then(first: str, second: str) -> OpExport:
    """second(first(inputs...)): ops ONNX spells as two (ne is Not(Equal))."""
    return lambda out, c: out.emit(second, [out.one(first, c.inputs)], c.outputs)


def on_axis(op_type: str) -> OpExport:
    """One ONNX node taking dlg's `axis` attribute as its own."""
    return lambda out, c: out.emit(op_type, c.inputs, c.outputs, axis=c.attrs["axis"])


def _log1p(out: OnnxGraph, c: Call) -> None:
    one = out.scalar(1.0, c.type.dtype.np)
    out.emit("Log", [out.one("Add", [c.inputs[0], one])], c.outputs)


def _constant(out: OnnxGraph, c: Call) -> None:
    """Sources computed from their attributes alone are initializers, made by their ref."""
    out.const(c.node.op.ref(**c.attrs), name=c.outputs[0])  # type: ignore[misc]


def _full(out: OnnxGraph, c: Call) -> None:
    """A constant, or ConstantOfShape where the shape is symbolic (zero states of N rows)."""
    if c.type.is_concrete:
        _constant(out, c)
        return
    value = out.state.onnx.numpy_helper.from_array(np.asarray([c.attrs["value"]],
                                                              c.type.dtype.np))
    out.emit("ConstantOfShape", [out.dims(c.type.shape)], c.outputs, value=value)


def _reduce(op_type: str) -> OpExport:
    """ReduceSum takes its axes as an input from opset 13, the others from opset 18. dlg's
    axes=() reduces nothing, ONNX's empty axes everything."""
    def emit(out: OnnxGraph, c: Call) -> None:
        axes, keep = c.attrs["axes"], int(c.attrs["keepdims"])
        if axes == ():
            out.emit("Identity", c.inputs, c.outputs)
        elif axes is None:
            out.emit(op_type, c.inputs, c.outputs, keepdims=keep)
        elif op_type == "ReduceSum" or out.opset >= 18:
            out.emit(op_type, [c.inputs[0], out.ints(axes, "axes")], c.outputs, keepdims=keep)
        else:
            out.emit(op_type, c.inputs, c.outputs, axes=list(axes), keepdims=keep)
    return emit


def _arg(op_type: str) -> OpExport:
    """ArgMax/ArgMin over one axis; dlg's axis=None is over the flattened input."""
    def emit(out: OnnxGraph, c: Call) -> None:
        axis, keep = c.attrs["axis"], int(c.attrs["keepdims"])
        if axis is not None:
            out.emit(op_type, c.inputs, c.outputs, axis=axis, keepdims=keep)
            return
        flat = out.one("Reshape", [c.inputs[0], out.ints([-1])])
        if not keep:
            out.emit(op_type, [flat], c.outputs, axis=0, keepdims=0)
            return
        index = out.one(op_type, [flat], axis=0, keepdims=1)
        out.emit("Reshape", [index, out.ints([1] * c.type.rank)], c.outputs)
    return emit


def _numel(out: OnnxGraph, c: Call) -> None:
    """The element count over the axes: a constant, or a product of symbolic dims."""
    shape = c.in_types[0].shape
    count: Dim = 1
    for axis in range(len(shape)) if c.attrs["axes"] is None else c.attrs["axes"]:
        count = count * shape[axis]
    scalar = out.one("Reshape", [out.dims([count], "count"), out.ints([], "scalar_shape")])
    out.emit("Cast", [scalar], c.outputs, to=to_onnx(c.type.dtype))


def _reshape(out: OnnxGraph, c: Call) -> None:
    shape = c.attrs["shape"]
    symbolic = [i for i, d in enumerate(shape) if isinstance(d, Sym)]
    if len(symbolic) == 1:  # the one dim ONNX can work out itself
        shape = tuple(-1 if i == symbolic[0] else d for i, d in enumerate(shape))
    out.emit("Reshape", [c.inputs[0], out.dims(shape)], c.outputs)


def _slice(out: OnnxGraph, c: Call) -> None:
    a = c.attrs
    # ONNX counts negative bounds from the end; dlg's stop -1 with a negative step means "past
    # the first element", which ONNX spells as any bound below -dim
    stops = [INT64_MIN if step < 0 and stop == -1 else stop
             for stop, step in zip(a["stops"], a["steps"])]
    out.emit("Slice", [c.inputs[0], out.dims(a["starts"], "starts"), out.dims(stops, "stops"),
                       out.ints(a["axes"], "axes"), out.ints(a["steps"], "steps")], c.outputs)


def _split(out: OnnxGraph, c: Call) -> None:
    out.emit("Split", [c.inputs[0], out.ints(c.attrs["sizes"], "sizes")], c.outputs,
             axis=c.attrs["axis"])


def _pad(out: OnnxGraph, c: Call) -> None:
    pads = c.attrs["pads"]
    widths = out.ints([lo for lo, _ in pads] + [hi for _, hi in pads], "pads")
    value = out.scalar(c.attrs["value"], c.type.dtype.np)
    out.emit("Pad", [c.inputs[0], widths, value], c.outputs, mode="constant")


def _conv(out: OnnxGraph, c: Call) -> None:
    pads = c.attrs["padding"]
    out.emit("Conv", c.inputs, c.outputs, strides=list(c.attrs["stride"]),
             dilations=list(c.attrs["dilation"]), group=c.attrs["groups"],
             pads=[lo for lo, _ in pads] + [hi for _, hi in pads])


def _pool(op_type: str, **extra: Callable[[Any], Any]) -> OpExport:
    """MaxPool/AveragePool; `extra` are ONNX attributes computed from dlg's attributes."""
    def emit(out: OnnxGraph, c: Call) -> None:
        kernel = list(c.attrs["kernel"])
        if c.type.rank != len(kernel) + 2:
            raise DlgValueError(f"ONNX export: {c.node.op.name} needs an input of [N, C, ...] "
                                f"(ONNX {op_type} has no unbatched form), got {c.in_types[0]}")
        spatial = c.type.shape[2:]
        extra_window = c.attrs["ceil_mode"] and spatial != _ceil_sizes(c)
        pooled = out.one(op_type, c.inputs, None if extra_window else c.outputs[0],
                         kernel_shape=kernel, strides=list(c.attrs["stride"]),
                         pads=list(c.attrs["padding"]) * 2, ceil_mode=int(c.attrs["ceil_mode"]),
                         **{k: f(c.attrs) for k, f in extra.items()})
        if extra_window:  # ONNX keeps a last window that starts in the right padding; dlg not
            out.emit("Slice", [pooled, out.ints([0] * len(spatial)), out.dims(spatial),
                               out.ints(range(2, c.type.rank))], c.outputs)
    return emit


def _ceil_sizes(c: Call) -> tuple[Dim, ...] | None:
    """A pool's output sizes under ONNX's ceil_mode rule (None where a size is symbolic)."""
    a, sizes = c.attrs, []
    dilation = a.get("dilation") or (1,) * len(a["kernel"])
    for size, k, s, p, d in zip(c.in_types[0].shape[2:], a["kernel"], a["stride"], a["padding"],
                                dilation):
        if not isinstance(size, int):
            return None
        sizes.append(-(-(size + 2 * p - d * (k - 1) - 1) // s) + 1)
    return tuple(sizes)


def _scatter_add(out: OnnxGraph, c: Call) -> bool | None:
    """take's transpose: zeros with the updates added at the indices along the axis. ONNX's
    ScatterElements wants an index per update, so one vector of indices is broadcast; other
    index ranks (an embedding's gradient) have no mapping."""
    updates, indices = c.in_types
    if indices.rank != 1:
        return False
    axis = c.attrs["axis"] % c.type.rank
    zero = out.state.onnx.numpy_helper.from_array(np.zeros(1, c.type.dtype.np))
    zeros = out.one("ConstantOfShape", [out.dims(c.type.shape)], value=zero)
    column = [1] * updates.rank
    column[axis] = -1
    index = out.one("Expand", [out.one("Reshape", [c.inputs[1], out.ints(column)]),
                               out.dims(updates.shape)])
    out.emit("ScatterElements", [zeros, index, c.inputs[0]], c.outputs, axis=axis,
             reduction="add")
    return None


def _sort(out: OnnxGraph, c: Call) -> None:
    """TopK of the whole axis; ONNX breaks ties by position, as dlg's stable sort does."""
    axis = c.attrs["axis"]
    k = out.dims([c.in_types[0].shape[axis]], "k")
    out.emit("TopK", [c.inputs[0], k], c.outputs, axis=axis,
             largest=int(c.attrs["descending"]), sorted=1)


def _cumsum(out: OnnxGraph, c: Call) -> None:
    axis = out.const(np.asarray(c.attrs["axis"], np.int64), "axis")
    out.emit("CumSum", [c.inputs[0], axis], c.outputs, reverse=int(c.attrs["reverse"]))


def _linear(out: OnnxGraph, c: Call) -> bool | None:
    if c.type.rank != 2:
        return False  # Gemm is 2-D; other ranks are matmul + add
    out.emit("Gemm", c.inputs, c.outputs, transB=1)
    return None


def _batch_norm(out: OnnxGraph, c: Call) -> bool | None:
    if c.attrs["axis"] % c.type.rank != 1:
        return False
    x, mean, var, weight, bias = c.inputs
    out.emit("BatchNormalization", [x, weight, bias, mean, var], c.outputs,
             epsilon=c.attrs["eps"])
    return None


def _layer_norm(out: OnnxGraph, c: Call) -> bool | None:
    if len(c.inputs) != 3:
        return False
    out.emit("LayerNormalization", c.inputs, c.outputs,
             axis=-len(c.attrs["normalized_shape"]), epsilon=c.attrs["eps"])
    return None


def _scan(out: OnnxGraph, c: Call) -> None:
    """A prelude RNN/GRU/LSTM cell's scan as that ONNX op (`export_rnn`); others as ONNX Scan:
    carries and sequences are the body's inputs; the constants the dlg body
    takes as inputs (weights) it reads from the outer scope instead. A reverse scan reads its
    sequences backwards and prepends its per-step outputs, so step t lands at t, as in dlg."""
    if out.state.rnn_ops and write_recurrent(out, c):
        return
    a = c.attrs
    body, nc, ns, axis = a["body"], a["n_carry"], a["n_seq"], a["axis"]
    inner = OnnxGraph(out.state)
    env, inputs = {}, []
    for i, (arg, name) in enumerate(zip(body.inputs, c.inputs)):
        if i < nc + ns:
            env[arg.out] = out.state.name(arg.name or f"in{i}")
            inputs.append(inner.value_info(env[arg.out], arg.types[0]))
        else:
            env[arg.out] = name
    results = [out.state.name(name) for name, _ in body.outputs]
    emit_graph(inner, body, env, results)
    outputs = [inner.value_info(n, body.type_of(v)) for n, (_, v) in zip(results, body.outputs)]
    ys = c.node.types[nc:]
    backwards = (lambda n: [1] * n) if a["reverse"] else (lambda n: None)
    out.emit("Scan", c.inputs[:nc + ns], c.outputs,
             body=inner.make_graph(body.name, inputs, outputs), num_scan_inputs=ns,
             scan_input_axes=[axis % t.rank for t in c.in_types[nc:nc + ns]],
             scan_output_axes=[axis % t.rank for t in ys],
             scan_input_directions=backwards(ns), scan_output_directions=backwards(len(ys)))


EXPORTS: dict[OpDef, OpExport] = {
    # sources
    CONSTANT: _constant, ARANGE: _constant, FULL: _full,
    # elementwise
    NEG: same("Neg"), ABS: same("Abs"), EXP: same("Exp"), LOG: same("Log"), SQRT: same("Sqrt"),
    RSQRT: then("Sqrt", "Reciprocal"), TANH: same("Tanh"), SIGMOID: same("Sigmoid"),
    RELU: same("Relu"), ERF: same("Erf"), LOG1P: _log1p, SIN: same("Sin"), COS: same("Cos"),
    ATAN: same("Atan"),
    FLOOR: same("Floor"), CEIL: same("Ceil"), SIGN: same("Sign"), LOGICAL_NOT: same("Not"),
    ADD: same("Add"), SUB: same("Sub"), MUL: same("Mul"), DIV: same("Div"), POW: same("Pow"),
    MAXIMUM: same("Max"), MINIMUM: same("Min"), EQ: same("Equal"), NE: then("Equal", "Not"),
    LT: same("Less"), LE: same("LessOrEqual"), GT: same("Greater"), GE: same("GreaterOrEqual"),
    LOGICAL_AND: same("And"), LOGICAL_OR: same("Or"), WHERE: same("Where"),
    CAST: lambda out, c: out.emit("Cast", c.inputs, c.outputs, to=to_onnx(c.attrs["dtype"])),
    # reductions, products, windows
    REDUCE_SUM: _reduce("ReduceSum"), REDUCE_PROD: _reduce("ReduceProd"),
    REDUCE_MAX: _reduce("ReduceMax"), REDUCE_MIN: _reduce("ReduceMin"),
    ARGMAX: _arg("ArgMax"), ARGMIN: _arg("ArgMin"), NUMEL: _numel, CUMSUM: _cumsum,
    SORT: _sort,
    MATMUL: same("MatMul"), CONV: _conv,
    MAX_POOL: _pool("MaxPool", dilations=lambda a: list(a["dilation"]) or None),
    AVG_POOL: _pool("AveragePool", count_include_pad=lambda a: int(a["count_include_pad"])),
    # movement
    RESHAPE: _reshape, SLICE: _slice, SPLIT: _split, PAD: _pad, CONCAT: on_axis("Concat"),
    TRANSPOSE: lambda out, c: out.emit("Transpose", c.inputs, c.outputs,
                                       perm=list(c.attrs["perm"])),
    BROADCAST_TO: lambda out, c: out.emit("Expand", [c.inputs[0], out.dims(c.attrs["shape"])],
                                          c.outputs),
    TAKE: on_axis("Gather"), GATHER: on_axis("GatherElements"), SCATTER_ADD: _scatter_add,
    SCATTER_ADD_ALONG: lambda out, c: out.emit("ScatterElements", c.inputs, c.outputs,
                                               axis=c.attrs["axis"], reduction="add"),
    SCATTER: lambda out, c: out.emit("ScatterElements", c.inputs, c.outputs,
                                     axis=c.attrs["axis"]),
    # control
    SCAN: _scan,
    # composites ONNX has as one op (the others are written as their decomposition)
    LINEAR: _linear, LINEAR_NOBIAS: _linear, SOFTMAX: on_axis("Softmax"),
    LOG_SOFTMAX: on_axis("LogSoftmax"), BATCH_NORM: _batch_norm, LAYER_NORM: _layer_norm,
}
