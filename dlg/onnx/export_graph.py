"""Writing dlg IR graphs as ONNX graphs: names, initializers, symbolic dims, the node walk.

`OnnxGraph` collects one ONNX graph's nodes (the model's or a scan body's); what every graph
of a model shares (the name space, the initializers, the symbolic dims' tensors, the ops found
without a mapping) is its `ModelState`. `emit_graph` walks a dlg graph in order and hands each
node to the op table (`export_ops.EXPORTS`); a composite op the table does not map is written
as its decomposition. Names are unique across the whole model, so a scan body can read any
outer value by name (ONNX's outer scope) without shadowing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.ir.decompose import expand_node
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.opdef import OpDef, Trait
from dlg.ir.shapes import Dim, Sym
from dlg.ir.types import TensorType
from dlg.onnx.types import to_onnx

@dataclass(frozen=True)
class Call:
    """One dlg node being written: its ONNX input names, the names its outputs must get, and
    its inputs' dlg types."""

    node: Node
    inputs: list[str]
    outputs: list[str]
    in_types: tuple[TensorType, ...]

    @property
    def attrs(self) -> Mapping[str, Any]:
        return self.node.attrs

    @property
    def type(self) -> TensorType:
        return self.node.types[0]


# A mapping writes one dlg node as ONNX nodes; it returns False (only) when ONNX has no form
# for these attributes: a composite is then written as its decomposition, a primitive reported.
OpExport = Callable[["OnnxGraph", Call], Any]


@dataclass
class ModelState:
    """What all graphs of one exported model share."""

    onnx: ModuleType
    opset: int
    table: Mapping[OpDef, OpExport]
    rnn_ops: bool = True  # prelude RNN/GRU/LSTM scans as ONNX RNN/GRU/LSTM, not Scan
    initializers: list[Any] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)
    dim_sources: dict[str, tuple[str, int]] = field(default_factory=dict)  # N -> (input, axis)
    dim_tensors: dict[Dim, str] = field(default_factory=dict)
    missing: dict[str, None] = field(default_factory=dict)  # ops without a mapping, in order
    small_consts: dict[Any, str] = field(default_factory=dict)  # (dtype, shape, bytes) -> name
    root: OnnxGraph | None = None

    def name(self, hint: str) -> str:
        """A name no other value of the model has: the hint, else the hint with `_1`, `_2`..."""
        name, k = hint, 0
        while name in self.taken:
            k += 1
            name = f"{hint}_{k}"
        self.taken.add(name)
        return name


class OnnxGraph:
    """The nodes of one ONNX graph being written, with helpers that emit into it."""

    def __init__(self, state: ModelState):
        self.state = state
        self.nodes: list[Any] = []

    @property
    def opset(self) -> int:
        return self.state.opset

    def emit(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str] | int = 1,
             **attrs: Any) -> list[str]:
        """Append one ONNX node; `outputs` are names, or a count of fresh ones. Returns them."""
        if isinstance(outputs, int):
            outputs = [self.state.name(op_type.lower()) for _ in range(outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self.state.onnx.helper.make_node(op_type, list(inputs), list(outputs),
                                                           **attrs))
        return list(outputs)

    def one(self, op_type: str, inputs: Sequence[str], out: str | None = None,
            **attrs: Any) -> str:
        """Emit a single-output node; returns its output's name."""
        return self.emit(op_type, inputs, [out] if out else 1, **attrs)[0]

    def const(self, value: np.ndarray, hint: str = "const", name: str | None = None) -> str:
        """An initializer of the model holding `value` (every graph can read it by name); small
        unnamed ones (axes, shapes, scalars) are made once per value."""
        value = np.ascontiguousarray(value)
        key = (value.dtype.str, value.shape, value.tobytes()) if value.size <= 16 else None
        if name is None and key in self.state.small_consts:
            return self.state.small_consts[key]
        name = name or self.state.name(hint)
        if key is not None:
            self.state.small_consts.setdefault(key, name)
        self.state.initializers.append(self.state.onnx.numpy_helper.from_array(value, name))
        return name

    def ints(self, values: Iterable[int], hint: str = "ints") -> str:
        return self.const(np.asarray(list(values), np.int64), hint)

    def scalar(self, value: float, dtype: Any) -> str:
        return self.const(np.asarray(value, dtype), "scalar")

    def dims(self, dims: Sequence[Dim], hint: str = "shape") -> str:
        """An int64 vector of `dims` at run time: a constant when all are ints, else symbolic
        dims read from the inputs' shapes (`Shape`) and joined with the known ones."""
        known = [d for d in dims if isinstance(d, int)]
        if len(known) == len(dims):
            return self.ints(known, hint)
        parts = [self.state.dim_tensors.get(d) or self._dim_tensor(d)
                 if isinstance(d, Sym) else self.ints([d], "dim") for d in dims]
        return parts[0] if len(parts) == 1 else self._root().one("Concat", parts, axis=0)

    def _root(self) -> OnnxGraph:
        assert self.state.root is not None
        return self.state.root

    def _dim_tensor(self, d: Sym) -> str:
        """A symbolic dim as an int64 [1] tensor, built in the model's main graph (once per
        expression) so that scan bodies read it from their outer scope."""
        root = self._root()
        total: str | None = None
        for monomial, coef in d.terms:
            factors = [self._symbol(s) for s in monomial]
            if coef != 1 or not factors:
                factors.append(self.ints([coef], "coef"))
            term = factors[0]
            for f in factors[1:]:
                term = root.one("Mul", [term, f])
            total = term if total is None else root.one("Add", [total, term])
        assert total is not None
        self.state.dim_tensors[d] = total
        return total

    def _symbol(self, symbol: str) -> str:
        key = Sym.named(symbol)
        if key not in self.state.dim_tensors:
            if symbol not in self.state.dim_sources:
                raise DlgValueError(f"ONNX export: symbolic dim {symbol} is not a dim of its own "
                                    f"in any input, so its value cannot be read at run time")
            source, axis = self.state.dim_sources[symbol]
            self.state.dim_tensors[key] = self._root().one(
                "Shape", [source], self.state.name(f"dim_{symbol}"), start=axis, end=axis + 1)
        return self.state.dim_tensors[key]

    def value_info(self, name: str, t: TensorType) -> Any:
        """A typed graph input or output; plain symbols stay named (`N`), expressions of them
        are left unnamed (ONNX shape inference works them out)."""
        dims = [d if isinstance(d, int) else _symbol_name(d) for d in t.shape]
        return self.state.onnx.helper.make_tensor_value_info(name, to_onnx(t.dtype), dims)

    def make_graph(self, name: str, inputs: list[Any], outputs: list[Any],
                   initializers: Sequence[Any] = ()) -> Any:
        return self.state.onnx.helper.make_graph(self.nodes, name, inputs, outputs,
                                                 initializer=list(initializers))


def _symbol_name(d: Sym) -> str | None:
    """`N` for the dim N; None for an expression (`2*N`, `N*T`)."""
    if len(d.terms) == 1:
        monomial, coef = d.terms[0]
        if coef == 1 and len(monomial) == 1:
            return monomial[0]
    return None


def emit_graph(out: OnnxGraph, g: Graph, env: dict[Value, str],
               result_names: Sequence[str]) -> None:
    """Write the nodes of `g` that its outputs need into `out`. `env` names the values already
    there (its inputs); `result_names` are the ONNX names its outputs get, in order."""
    needed = g.ancestors([v for _, v in g.outputs])
    wanted: dict[Value, str] = {}  # outputs a node writes under their own name; the others
    for (_, v), name in zip(g.outputs, result_names):  # (sources, repeats) through Identity
        if v not in env and v not in wanted and Trait.SOURCE not in g.node(v).op.traits:
            wanted[v] = name
    for node in g:
        if node.id not in needed or Trait.ARGUMENT in node.op.traits:
            continue
        outs = [wanted.get(v) or out.state.name(_hint(node, v.index)) for v in node.outs]
        _emit_node(out, Call(node, [env[v] for v in node.inputs], outs,
                             tuple(g.type_of(v) for v in node.inputs)))
        env.update(zip(node.outs, outs))
    for (_, v), name in zip(g.outputs, result_names):
        if env[v] != name:
            out.one("Identity", [env[v]], name)


def _hint(node: Node, index: int) -> str:
    base = node.name or f"{node.op.name}{node.id}"
    return base if len(node.types) == 1 else f"{base}_{index}"


def _emit_node(out: OnnxGraph, call: Call) -> None:
    op = call.node.op
    mapping = out.state.table.get(op)
    if mapping is not None and mapping(out, call) is not False:
        return
    if op.is_composite:
        sub = expand_node(call.node, list(call.in_types))
        emit_graph(out, sub, dict(zip((n.out for n in sub.inputs), call.inputs)), call.outputs)
        return
    out.state.missing[op.name] = None  # the walk goes on, so one export finds every such op
    for name in call.outputs:
        out.one("Identity", call.inputs[:1], name)


def find_dim_sources(g: Graph, names: Mapping[str, str]) -> dict[str, tuple[str, int]]:
    """For each symbol that is a whole dim of some input: that input's ONNX name and axis."""
    sources: dict[str, tuple[str, int]] = {}
    for node in g.inputs:
        for axis, d in enumerate(node.types[0].shape):
            symbol = _symbol_name(d) if isinstance(d, Sym) else None
            if symbol is not None and symbol not in sources:
                sources[symbol] = (names[node.name or ""], axis)
    return sources
