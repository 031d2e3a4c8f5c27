"""An IR graph back to .dlg source (`model.to_dlg()` for traced models): one statement per node,
parameters in generated `layer`s so their PyTorch names (`fc1.weight`) survive.

The printed model loads back to an equivalent graph (same ops, types and parameter names); its
parameters start from zeros (load the state_dict). Ops are written with the language's own
builtins and operators; constants other than scalars, and names that are not identifiers (the
`0.weight` of an nn.Sequential), cannot be written and are errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.shapes import Dim, Sym
from dlg.ir.types import TensorType

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
OPERATORS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "matmul": "@",
             "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def graph_to_dlg(g: Graph) -> str:
    p = _Printer(g)
    return p.program()


class _Printer:
    def __init__(self, g: Graph):
        self.g = g
        self.names: dict[Value, str] = {}
        self.symbols: dict[str, str] = {}  # symbol -> shape(input, axis)
        for node in g.inputs:
            _check_name(node.name or "")
            self.names[node.out] = node.name  # type: ignore[assignment]
            for axis, d in enumerate(node.types[0].shape):
                if isinstance(d, Sym) and len(d.terms) == 1 and d.terms[0][1] == 1 \
                        and len(d.terms[0][0]) == 1:
                    self.symbols.setdefault(d.terms[0][0][0], f"shape({node.name}, {axis})")

    # -- the program ------------------------------------------------------------------------------
    def program(self) -> str:
        tree: dict[str, Any] = {}
        for node in self.g.params:
            parts = (node.name or "").split(".")
            for part in parts:
                _check_name(part, node.name)
            leaf = tree
            for part in parts[:-1]:
                leaf = leaf.setdefault(part, {})
            leaf[parts[-1]] = node
            self.names[node.out] = node.name  # type: ignore[assignment]
        layers: list[str] = []
        top = self._layer_body(tree, "", layers)
        lines = [f"model {self.g.name} {{"]
        lines += [f"    input {n.name}: {_type(n.types[0])}" for n in self.g.inputs]
        lines += [f"    {line}" for line in top]
        for node in self.g:
            if node.op.name in ("input", "param"):
                continue
            self.statement(node, lines)
        for name, v in self.g.outputs:
            _check_name(name)
            lines.append(f"    output {name} = {self.ref(v)}")
        if self.g.updates:
            raise DlgValueError("state updates (batch-norm running statistics in training "
                                "mode) cannot be printed as a model; trace in eval mode")
        lines.append("}")
        return "\n".join(layers + lines) + "\n"

    def _layer_body(self, tree: dict[str, Any], prefix: str, layers: list[str]) -> list[str]:
        body = []
        for name, item in tree.items():
            if isinstance(item, Node):
                kind = "param" if item.attrs["trainable"] else "buffer"
                body.append(f"{kind} {name}: {_type(item.types[0])} = zeros()")
            else:
                layer = f"Params_{(prefix + name).replace('.', '_')}"
                inner = self._layer_body(item, f"{prefix}{name}.", layers)
                layers.append(f"layer {layer}() {{\n" + "".join(f"    {line}\n" for line in inner)
                              + "}\n")
                body.append(f"layer {name} = {layer}()")
        return body

    # -- statements -------------------------------------------------------------------------------
    def ref(self, v: Value) -> str:
        return self.names[v]

    def statement(self, node: Node, lines: list[str]) -> None:
        rule = RULES.get(node.op.name)
        if node.op.name == "constant":
            self.names[node.out] = _literal(node.attrs["value"])
            return
        if rule is None:
            raise DlgValueError(f"{node.op.name} cannot be printed as .dlg yet")
        text = rule(self, node, [self.ref(v) for v in node.inputs], node.attrs)
        if len(node.types) == 1:
            name = f"v{node.id}"
            self.names[node.out] = name
            lines.append(f"    {name} = {text}")
        else:
            names = [f"v{node.id}_{i}" for i in range(len(node.types))]
            for v, name in zip(node.outs, names):
                self.names[v] = name
            lines.append(f"    {', '.join(names)} = {text}")

    def dim(self, d: Dim) -> str:
        if isinstance(d, int):
            return str(d)
        terms = []
        for monomial, coefficient in d.terms:
            factors = ([str(coefficient)] if coefficient != 1 or not monomial else [])
            for s in monomial:
                if s not in self.symbols:
                    raise DlgValueError(f"dim {d} uses {s}, which no input's shape shows")
                factors.append(self.symbols[s])
            terms.append(" * ".join(factors))
        return " + ".join(terms)


def _check_name(part: str, full: str | None = None) -> None:
    if not IDENTIFIER.match(part):
        raise DlgValueError(f"{full or part!r} is not a .dlg name (names are identifiers; an "
                            f"nn.Sequential's numbered children have none): name the submodules")


def _type(t: TensorType) -> str:
    return f"{t.dtype}[{', '.join(str(d) for d in t.shape)}]"


def _literal(value: np.ndarray) -> str:
    if value.ndim != 0:
        raise DlgValueError(f"a constant tensor of shape {list(value.shape)} cannot be written "
                            f"in .dlg (only scalars)")
    if value.dtype == np.bool_:
        return "true" if value else "false"
    if value.dtype.kind == "f":
        text = repr(float(value))
        return text if any(c in text for c in ".en") else text + ".0"
    return str(int(value))


def _tuple(values: Any) -> str:
    values = list(values)
    return "(" + ", ".join(map(str, values)) + ("," if len(values) == 1 else "") + ")"


def _kw(attrs: dict[str, Any], **names: str) -> str:
    parts = []
    for attr, keyword in names.items():
        value = attrs[attr]
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = f'"{value}"'
        elif isinstance(value, (tuple, list)):
            text = _tuple(value)
        else:
            text = repr(value)
        parts.append(f", {keyword}={text}")
    return "".join(parts)


Rule = Callable[[_Printer, Node, list[str], Any], str]


def _call(name: str, **kw: str) -> Rule:
    return lambda p, n, a, attrs: f"{name}({', '.join(a)}{_kw(attrs, **kw)})"


def _reduce(name: str) -> Rule:
    def rule(p: _Printer, n: Node, a: list[str], attrs: Any) -> str:
        axes = "" if attrs["axes"] is None else f", axis={_tuple(attrs['axes'])}"
        keep = ", keepdims=true" if attrs["keepdims"] else ""
        return f"{name}({a[0]}{axes}{keep})"
    return rule


def _arg(name: str) -> Rule:
    def rule(p: _Printer, n: Node, a: list[str], attrs: Any) -> str:
        axis = "" if attrs["axis"] is None else f", axis={attrs['axis']}"
        keep = ", keepdims=true" if attrs["keepdims"] else ""
        return f"{name}({a[0]}{axis}{keep})"
    return rule


def _conv(nd: int) -> Rule:
    def rule(p: _Printer, n: Node, a: list[str], attrs: Any) -> str:
        padding = (f'"{attrs["auto_pad"]}"' if attrs["auto_pad"] != "none"
                   else _tuple(attrs["padding"]))
        return (f"conv{nd}d({', '.join(a)}, stride={_tuple(attrs['stride'])}, "
                f"padding={padding}, dilation={_tuple(attrs['dilation'])}, "
                f"groups={attrs['groups']})")
    return rule


def _pool(kind: str) -> Rule:
    def rule(p: _Printer, n: Node, a: list[str], attrs: Any) -> str:
        nd = len(attrs["kernel"])
        extra = (f", dilation={_tuple(attrs['dilation'])}" if kind == "max" and attrs["dilation"]
                 else "")
        if kind == "avg":
            extra = f", count_include_pad={'true' if attrs['count_include_pad'] else 'false'}"
        return (f"{kind}_pool{nd}d({a[0]}, {_tuple(attrs['kernel'])}, "
                f"stride={_tuple(attrs['stride'])}, padding={_tuple(attrs['padding'])}, "
                f"ceil_mode={'true' if attrs['ceil_mode'] else 'false'}{extra})")
    return rule


def _slice(p: _Printer, n: Node, a: list[str], attrs: Any) -> str:
    rank = p.g.type_of(n.inputs[0]).rank
    items = [":"] * rank
    for axis, start, stop, step in zip(attrs["axes"], attrs["starts"], attrs["stops"],
                                       attrs["steps"]):
        items[axis % rank] = f"{p.dim(start)}:{p.dim(stop)}:{step}"
    return f"{a[0]}[{', '.join(items)}]"


def _operator(symbol: str) -> Rule:
    return lambda p, n, a, attrs: f"({a[0]} {symbol} {a[1]})"


def _layer_norm(p: _Printer, n: Node, a: list[str], attrs: Any) -> str:
    affine = "".join(", " + x for x in a[1:])
    return f"layer_norm({a[0]}, {_tuple(attrs['normalized_shape'])}{affine}, eps={attrs['eps']!r})"


RULES: dict[str, Rule] = {
    **{op: _operator(symbol) for op, symbol in OPERATORS.items()},
    **{op: _call(op) for op in ("relu", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "abs",
                                "sin", "cos", "floor", "ceil", "sign", "logical_not", "maximum",
                                "minimum", "logical_and", "logical_or", "where", "linear",
                                "linear_nobias")},
    "neg": lambda p, n, a, attrs: f"(-{a[0]})",
    "linear_nobias": _call("linear"),
    "gelu": _call("gelu", approximate="approximate"),
    "leaky_relu": _call("leaky_relu", negative_slope="negative_slope"),
    "cast": lambda p, n, a, attrs: f"cast({a[0]}, {attrs['dtype']})",
    "reduce_sum": _reduce("sum"), "reduce_mean": _reduce("mean"), "reduce_max": _reduce("max"),
    "reduce_min": _reduce("min"), "reduce_prod": _reduce("prod"),
    "argmax": _arg("argmax"), "argmin": _arg("argmin"),
    "softmax": _call("softmax", axis="axis"), "log_softmax": _call("log_softmax", axis="axis"),
    "reshape": lambda p, n, a, attrs: f"reshape({a[0]}, "
                                      f"{', '.join(p.dim(d) for d in attrs['shape'])})",
    "flatten": _call("flatten", start_axis="start_axis", end_axis="end_axis"),
    "transpose": lambda p, n, a, attrs: f"permute({a[0]}, "
                                        f"{', '.join(str(d) for d in attrs['perm'])})",
    "squeeze": lambda p, n, a, attrs: (f"squeeze({a[0]})" if attrs["axes"] is None
                                       else f"squeeze({a[0]}, axis={_tuple(attrs['axes'])})"),
    "unsqueeze": lambda p, n, a, attrs: f"unsqueeze({a[0]}, axis={_tuple(attrs['axes'])})",
    "concat": lambda p, n, a, attrs: f"concat({_tuple(a)}, axis={attrs['axis']})",
    "stack": lambda p, n, a, attrs: f"stack({_tuple(a)}, axis={attrs['axis']})",
    "take": _call("take", axis="axis"),
    "slice": _slice,
    "conv1d": _conv(1), "conv1d_nobias": _conv(1), "conv2d": _conv(2), "conv2d_nobias": _conv(2),
    "max_pool": _pool("max"), "avg_pool": _pool("avg"),
    "batch_norm": _call("batch_norm", eps="eps"),
    "layer_norm": _layer_norm,
    "full": lambda p, n, a, attrs: (f"full({_tuple(p.dim(d) for d in attrs['shape'])}, "
                                    f"{attrs['value']!r}, dtype={attrs['dtype']})"),
    "embedding": lambda p, n, a, attrs: f"embedding({a[1]}, {a[0]})",
    "dropout": _call("dropout", p="p"),
    "cross_entropy": _call("cross_entropy", reduction="reduction",
                           label_smoothing="label_smoothing"),
    "nll_loss": _call("nll_loss", reduction="reduction"),
    "mse_loss": _call("mse_loss", reduction="reduction"),
    "l1_loss": _call("l1_loss", reduction="reduction"),
    "binary_cross_entropy": _call("binary_cross_entropy", reduction="reduction"),
    "binary_cross_entropy_with_logits": _call("binary_cross_entropy_with_logits",
                                              reduction="reduction"),
}
