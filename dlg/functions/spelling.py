"""How each op is written as .dlg source: the reverse of the user-facing functions, used by
`dlg.grammar.unparse` (`model.to_dlg()`) and by the elaborator's operator table.

A spelling turns an op's argument texts and attributes into a call (`conv2d(x, w, stride=(2,
2), ...)`), an operator (`(a + b)`) or a subscript (`x[1:3, :]`). Every generated elementwise
function gets one automatically (its name, inputs positional, attributes as keywords); the
others are listed here. `UNSPELLED` names the ops a user never writes, and why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from dlg.errors import DlgValueError
from dlg.functions.elementwise import is_generated
from dlg.functions.nn import CONV_TRANSPOSES, CONVS
from dlg.ir.dtypes import DType
from dlg.ir.ops import REGISTRY
from dlg.ir.ops import conv as conv_ops
from dlg.ir.ops import elementwise as ew
from dlg.ir.ops import losses, nn, pool, reduce, shape, source
from dlg.ir.ops.control import SCAN
from dlg.ir.ops.custom import CUSTOM_VJP, PY_FUNCTION, STOP_GRADIENT
from dlg.ir.ops.fft import FFT_C2C, FFT_C2R, FFT_R2C
from dlg.ir.ops.gather import GATHER, INDEX_ADD, SCATTER, SCATTER_ADD_ALONG
from dlg.ir.ops.im2col import IM2COL
from dlg.ir.ops import sort as ordering
from dlg.ir.ops.linalg import DIAGONAL, MATMUL
from dlg.ir.ops.opdef import OpDef
from dlg.ir.shapes import Dim, Sym


class Writer(Protocol):
    """What a spelling needs from the printer."""

    def dim(self, d: Dim) -> str:
        """A dim as .dlg source (symbols through the inputs' shapes)."""

    def rank(self, i: int) -> int:
        """The rank of the op's input i."""


Spell = Callable[[Sequence[str], Mapping[str, Any], Writer], str]

# the binary operators of .dlg, in both directions (the elaborator reads it backwards)
OPERATORS: dict[OpDef, str] = {
    ew.ADD: "+", ew.SUB: "-", ew.MUL: "*", ew.DIV: "/", ew.POW: "**", MATMUL: "@", ew.EQ: "==",
    ew.NE: "!=", ew.LT: "<", ew.LE: "<=", ew.GT: ">", ew.GE: ">=", ew.LOGICAL_AND: "and",
    ew.LOGICAL_OR: "or"}


def literal(value: Any, w: Writer) -> str:
    """A static value as .dlg source."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, DType):
        return value.value
    if isinstance(value, Sym):
        return w.dim(value)
    if isinstance(value, (tuple, list)):
        items = [literal(v, w) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    return repr(value)


def call(name: str, *positional: str, **keywords: str) -> Spell:
    """name(inputs..., positional attributes..., keyword=attribute...)."""
    def spell(a: Sequence[str], attrs: Mapping[str, Any], w: Writer) -> str:
        parts = [*a, *(literal(attrs[p], w) for p in positional)]
        parts += [f"{k}={literal(attrs[attr], w)}" for k, attr in keywords.items()]
        return f"{name}({', '.join(parts)})"
    return spell


def _operator(symbol: str) -> Spell:
    return lambda a, attrs, w: f"({a[0]} {symbol} {a[1]})"


def _reduce(name: str, axes: str) -> Spell:
    """axis= only when given, keepdims= only when true."""
    def spell(a: Sequence[str], attrs: Mapping[str, Any], w: Writer) -> str:
        axis = "" if attrs[axes] is None else f", axis={literal(attrs[axes], w)}"
        keep = ", keepdims=true" if attrs["keepdims"] else ""
        return f"{name}({a[0]}{axis}{keep})"
    return spell


def _dims(name: str, attr: str) -> Spell:
    return lambda a, attrs, w: f"{name}({a[0]}, {', '.join(w.dim(d) for d in attrs[attr])})"


def _conv(nd: int) -> Spell:
    def spell(a: Sequence[str], attrs: Mapping[str, Any], w: Writer) -> str:
        padding = attrs["padding"] if attrs["auto_pad"] == "none" else attrs["auto_pad"]
        return (f"conv{nd}d({', '.join(a)}, stride={literal(attrs['stride'], w)}, "
                f"padding={literal(padding, w)}, dilation={literal(attrs['dilation'], w)}, "
                f"groups={attrs['groups']})")
    return spell


def _conv_transpose(nd: int) -> Spell:
    def spell(a: Sequence[str], attrs: Mapping[str, Any], w: Writer) -> str:
        options = ", ".join(f"{k}={literal(attrs[k], w)}" for k in (
            "stride", "padding", "output_padding", "groups", "dilation"))
        return f"conv_transpose{nd}d({', '.join(a)}, {options})"
    return spell


def _pool(a: Sequence[str], attrs: Mapping[str, Any], w: Writer, kind: str, extra: str) -> str:
    return (f"{kind}_pool{len(attrs['kernel'])}d({a[0]}, {literal(attrs['kernel'], w)}, "
            f"stride={literal(attrs['stride'], w)}, padding={literal(attrs['padding'], w)}, "
            f"ceil_mode={literal(attrs['ceil_mode'], w)}{extra})")


def _max_pool(a: Sequence[str], attrs: Mapping[str, Any], w: Writer) -> str:
    dilation = f", dilation={literal(attrs['dilation'], w)}" if attrs["dilation"] else ""
    return _pool(a, attrs, w, "max", dilation)


def _avg_pool(a: Sequence[str], attrs: Mapping[str, Any], w: Writer) -> str:
    return _pool(a, attrs, w, "avg",
                 f", count_include_pad={literal(attrs['count_include_pad'], w)}")


def _subscript(a: str, items: list[str]) -> str:
    return f"{a}[{', '.join(items)}]"


def _slice(a: Sequence[str], attrs: Mapping[str, Any], w: Writer) -> str:
    items = [":"] * w.rank(0)
    for axis, start, stop, step in zip(attrs["axes"], attrs["starts"], attrs["stops"],
                                       attrs["steps"]):
        end = "" if step < 0 and stop == -1 else w.dim(stop)  # -1: past the front
        items[axis % len(items)] = f"{w.dim(start)}:{end}:{step}"
    return _subscript(a[0], items)


def _index(a: Sequence[str], attrs: Mapping[str, Any], w: Writer) -> str:
    items = [":"] * w.rank(0)
    items[attrs["axis"] % len(items)] = str(attrs["index"])
    return _subscript(a[0], items)


def _squeeze(a: Sequence[str], attrs: Mapping[str, Any], w: Writer) -> str:
    axis = "" if attrs["axes"] is None else f", axis={literal(attrs['axes'], w)}"
    return f"squeeze({a[0]}{axis})"


def _tuple_of_inputs(name: str) -> Spell:
    return lambda a, attrs, w: f"{name}(({', '.join(a)},), axis={attrs['axis']})"


def _batch_norm(a: Sequence[str], attrs: Mapping[str, Any], w: Writer) -> str:
    if attrs["axis"] != 1:
        raise DlgValueError(f"batch_norm over axis {attrs['axis']} cannot be written in .dlg")
    return f"batch_norm({', '.join(a)}, eps={attrs['eps']!r})"


def _random(name: str, defaults: dict[str, float]) -> Spell:
    def spell(a: Sequence[str], attrs: Mapping[str, Any], w: Writer) -> str:
        if any(attrs[k] != v for k, v in defaults.items()):
            raise DlgValueError(f"{name} with {attrs} cannot be written in .dlg")
        return f"{name}({', '.join(w.dim(d) for d in attrs['shape'])}, dtype={attrs['dtype']})"
    return spell


def _cumsum(a: Sequence[str], attrs: Mapping[str, Any], w: Writer) -> str:
    """A reverse cumsum (gradients make them) as the flip of a cumsum of the flip."""
    axis = attrs["axis"]
    if not attrs["reverse"]:
        return f"cumsum({a[0]}, axis={axis})"
    return f"flip(cumsum(flip({a[0]}, {axis}), axis={axis}), {axis})"


def _dim_first(name: str, **keywords: str) -> Spell:
    """PyTorch's order for gathers and scatters: name(x, dim, index, ...)."""
    def spell(a: Sequence[str], attrs: Mapping[str, Any], w: Writer) -> str:
        extra = "".join(f", {k}={literal(attrs[attr], w)}" for k, attr in keywords.items())
        return f"{name}({a[0]}, {attrs['axis']}, {', '.join(a[1:])}{extra})"
    return spell


def _generated(op: OpDef) -> Spell:
    return call(op.name, **{attr: attr for attr in op.attrs})


SPELLINGS: dict[OpDef, Spell] = {
    **{op: _generated(op) for op in REGISTRY.values() if is_generated(op)},
    **{op: _operator(symbol) for op, symbol in OPERATORS.items()
       if op not in (ew.LOGICAL_AND, ew.LOGICAL_OR)},  # a call reads better than `and`
    ew.NEG: lambda a, attrs, w: f"(-{a[0]})",
    ew.WHERE: call("where"),
    ew.PRELU: call("prelu"), ew.GLU: call("glu", axis="axis"),
    reduce.REDUCE_SUM: _reduce("sum", "axes"), reduce.REDUCE_MEAN: _reduce("mean", "axes"),
    reduce.REDUCE_MAX: _reduce("max", "axes"), reduce.REDUCE_MIN: _reduce("min", "axes"),
    reduce.REDUCE_PROD: _reduce("prod", "axes"), reduce.ARGMAX: _reduce("argmax", "axis"),
    reduce.ARGMIN: _reduce("argmin", "axis"),
    reduce.NUMEL: call("numel", axis="axes", dtype="dtype"),
    nn.LOGSUMEXP: call("logsumexp", axis="axes", keepdims="keepdims"),
    **{op: call(name, axis="axes", keepdims="keepdims", correction="correction")
       for op, name in ((reduce.REDUCE_VAR, "var"), (reduce.REDUCE_STD, "std"))},
    reduce.REDUCE_ALL: _reduce("all", "axes"), reduce.REDUCE_ANY: _reduce("any", "axes"),
    reduce.VECTOR_NORM: call("vector_norm", "ord", axis="axes", keepdims="keepdims"),
    nn.SOFTMAX: call("softmax", axis="axis"), nn.LOG_SOFTMAX: call("log_softmax", axis="axis"),
    shape.RESHAPE: _dims("reshape", "shape"),
    shape.BROADCAST_TO: _dims("broadcast_to", "shape"),
    shape.FLATTEN: call("flatten", start_axis="start_axis", end_axis="end_axis"),
    shape.TRANSPOSE: lambda a, attrs, w: f"permute({a[0]}, {literal(attrs['perm'], w)})",
    shape.SQUEEZE: _squeeze,
    shape.UNSQUEEZE: call("unsqueeze", axis="axes"),
    shape.CONCAT: _tuple_of_inputs("concat"), shape.STACK: _tuple_of_inputs("stack"),
    shape.SPLIT: call("split", "sizes", axis="axis"),
    shape.PAD: call("pad", "pads", value="value"),
    shape.TAKE: call("take", axis="axis"),
    GATHER: _dim_first("gather"), SCATTER_ADD_ALONG: _dim_first("scatter_add"),
    SCATTER: _dim_first("scatter"), INDEX_ADD: _dim_first("index_add", alpha="alpha"),
    shape.SLICE: _slice, shape.INDEX: _index,
    DIAGONAL: call("diagonal", offset="offset", dim1="dim1", dim2="dim2"),
    **{op: _conv(nd) for (nd, _), op in CONVS.items()},
    **{op: _conv_transpose(nd) for (nd, _), op in CONV_TRANSPOSES.items()},
    pool.MAX_POOL: _max_pool, pool.AVG_POOL: _avg_pool,
    nn.LINEAR: call("linear"), nn.LINEAR_NOBIAS: call("linear"),
    nn.EMBEDDING: lambda a, attrs, w: f"embedding({a[1]}, {a[0]})",
    nn.ONE_HOT: call("one_hot", num_classes="num_classes", dtype="dtype"),
    nn.DROPOUT: call("dropout", p="p"),
    STOP_GRADIENT: call("detach"),
    nn.BATCH_NORM: _batch_norm,
    nn.LAYER_NORM: lambda a, attrs, w: (f"layer_norm({a[0]}, "
                                        f"{literal(tuple(attrs['normalized_shape']), w)}"
                                        f"{''.join(', ' + x for x in a[1:])}, "
                                        f"eps={attrs['eps']!r})"),
    **{op: _generated(op) for op in losses.LOSSES},
    ordering.SORT: call("sort", axis="axis", descending="descending"),
    ordering.TOPK: call("topk", "k", axis="axis", largest="largest"),
    ordering.CUMSUM: _cumsum, ordering.CUMPROD: call("cumprod", axis="axis"),
    source.FULL: lambda a, attrs, w: (f"full({literal(tuple(attrs['shape']), w)}, "
                                      f"{attrs['value']!r}, dtype={attrs['dtype']})"),
    source.ARANGE: call("arange", "start", "stop", "step", dtype="dtype"),
    source.RANDOM_UNIFORM: _random("rand", {"low": 0.0, "high": 1.0}),
    source.RANDOM_NORMAL: _random("randn", {"mean": 0.0, "std": 1.0}),
}

# ops no user function makes, and how they appear in .dlg instead
UNSPELLED: dict[OpDef, str] = {
    source.INPUT: "an `input` declaration", source.PARAM: "a `param` declaration",
    source.CONSTANT: "a literal", SCAN: "a `scan` statement",
    conv_ops.CONV: "made by decomposing conv1d/2d/3d",
    conv_ops.CONV_WEIGHT_GRAD: "a gradient", pool.MAX_POOL_GRAD: "a gradient",
    pool.AVG_POOL_GRAD: "a gradient", shape.SCATTER_ADD: "a gradient (take's transpose)",
    IM2COL: "made by the compiler (passes/im2col.py)",
    CUSTOM_VJP: "a traced autograd.Function, whose forward and backward are Python",
    PY_FUNCTION: "an eager autograd.Function: Python code",
    **{op: "made by dlg.fft's functions, eager Python's (no .dlg builtin yet)"
       for op in (FFT_C2C, FFT_R2C, FFT_C2R)},
}


def spell(op: OpDef, args: Sequence[str], attrs: Mapping[str, Any], w: Writer) -> str:
    """The .dlg text of one node, its inputs already written as `args`."""
    spelling = SPELLINGS.get(op)
    if spelling is None:
        raise DlgValueError(f"{op.name} cannot be printed as .dlg ({UNSPELLED.get(op, 'yet')})")
    return spelling(args, attrs, w)
