"""An IR graph back to .dlg source (`model.to_dlg()` for traced models): one statement per node,
parameters in generated `layer`s so their PyTorch names (`fc1.weight`) survive.

The printed model loads back to an equivalent graph (same ops, types and parameter names); its
parameters start from zeros (load the state_dict). Each op is written as its user function or
operator says (`dlg.functions.spelling`); constants other than scalars, and names that are not
identifiers (the `0.weight` of an nn.Sequential), cannot be written and are errors.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.functions.spelling import spell
from dlg.grammar.format import dict_key, float_literal, quote
from dlg.grammar.layer_lists import SELF
from dlg.grammar.parser import is_name
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.opdef import Trait
from dlg.ir.ops.control import SCAN
from dlg.ir.ops.source import CONSTANT, INPUT
from dlg.ir.shapes import Dim, Sym
from dlg.ir.types import TensorType

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def graph_to_dlg(g: Graph) -> str:
    p = _Printer(g)
    return p.program()


class _Printer:
    def __init__(self, g: Graph, prefix: str = "", symbols: dict[str, str] | None = None):
        self.g = g
        self.prefix = prefix  # of value names (a scan body's are s<id>_v<n>)
        self.names: dict[Value, str] = {}
        self.symbols: dict[str, str] = symbols if symbols is not None else {}  # -> shape(x, i)
        for node in g.inputs if symbols is None else ():  # a body's inputs are named by its scan
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
            leaf = tree
            for part in parts[:-1]:
                leaf = leaf.setdefault(part, {})
            leaf[parts[-1]] = node
        layers: list[str] = []
        self.layer_names: set[str] = set()
        self.empty: str | None = None
        top = self._layer_body(tree, "Params", "", layers)
        lines = [f"model {_model_name(self.g.name)} {{"]
        lines += [f"    input {n.name}: {_type(n.types[0])}" for n in self.g.inputs]
        lines += [f"    {line}" for line in top]
        for node in self.g:
            if Trait.ARGUMENT in node.op.traits:
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

    def _layer_body(self, tree: dict[str, Any], path: str, ref: str, layers: list[str]
                    ) -> list[str]:
        """The declarations of one layer's params and children. Children whose names are not
        .dlg names (an nn.Sequential's 0, 1, ...) are the layer's own list: `layer self = [...]`,
        as a subclass of nn.Sequential holds them."""
        body = []
        others = {k: v for k, v in tree.items() if not _declarable(k)}
        for name, item in tree.items():
            if name in others:
                if name == next(iter(others)):
                    body.append(f"layer {SELF} = "
                                f"{self._layer_expr(others, path, ref + SELF, layers)}")
            elif isinstance(item, Node):
                kind = "param" if item.attrs["trainable"] else "buffer"
                body.append(f"{kind} {name}: {_type(item.types[0])} = zeros()")
                self.names[item.out] = ref + name
            else:
                expr = self._layer_expr(item, f"{path}_{name}", ref + name, layers)
                body.append(f"layer {name} = {expr}")
        return body

    def _layer_expr(self, tree: dict[str, Any], path: str, ref: str, layers: list[str]) -> str:
        """A child layer: a list when its children are numbered 0, 1, ..., a dict when they have
        other names that are not .dlg names, else a generated layer holding its params."""
        numbered = all(k.isdigit() and k == str(int(k)) for k in tree)
        if not numbered and any(_declarable(k) for k in tree) or not tree:
            name = self._layer_name(path)
            inner = self._layer_body(tree, name, ref + ".", layers)
            layers.append(f"layer {name}() {{\n" + "".join(f"    {line}\n" for line in inner)
                          + "}\n")
            return f"{name}()"
        for item in tree.values():
            if isinstance(item, Node):
                raise DlgValueError(f"{item.name!r} is not a .dlg name (a parameter's own name "
                                    f"must be an identifier): rename it")
        if numbered:
            items = [self._layer_expr(tree[str(i)], f"{path}_{i}", f"{ref}[{i}]", layers)
                     if str(i) in tree else self._empty_layer(layers)
                     for i in range(max(int(k) for k in tree) + 1)]
            return "[" + ", ".join(items) + "]"
        items = []
        for k, v in tree.items():
            child = self._layer_expr(v, f"{path}_{k}", f"{ref}[{quote(k)}]", layers)
            items.append(f"{dict_key(k)}: {child}")
        return "{" + ", ".join(items) + "}"

    def _empty_layer(self, layers: list[str]) -> str:
        """A list's child without parameters (the ReLU between two Linears)."""
        if self.empty is None:
            self.empty = self._layer_expr({}, "NoParams", "", layers)
        return self.empty

    def _layer_name(self, path: str) -> str:
        """A generated layer's name from its path (Params_blocks_0), unique in the program."""
        name = re.sub(r"\W", "_", path)
        while name in self.layer_names:
            name += "_"
        self.layer_names.add(name)
        return name

    # -- statements -------------------------------------------------------------------------------
    def ref(self, v: Value) -> str:
        return self.names[v]

    def statement(self, node: Node, lines: list[str]) -> None:
        if node.op is CONSTANT:
            self.names[node.out] = _literal(node.attrs["value"])
            return
        if node.op is SCAN:
            _scan(self, node, lines)
            return
        self.node = node
        text = spell(node.op, [self.ref(v) for v in node.inputs], node.attrs, self)
        if len(node.types) == 1:
            name = f"{self.prefix}v{node.id}"
            self.names[node.out] = name
            lines.append(f"    {name} = {text}")
        else:
            names = [f"{self.prefix}v{node.id}_{i}" for i in range(len(node.types))]
            for v, name in zip(node.outs, names):
                self.names[v] = name
            lines.append(f"    {', '.join(names)} = {text}")

    def rank(self, i: int) -> int:
        """The rank of input i of the node being written."""
        return self.g.type_of(self.node.inputs[i]).rank

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


def _scan(p: _Printer, node: Node, lines: list[str]) -> None:
    """A scan node as a `scan` block. Its carries, steps and per-step outputs are named
    s<id>_c<i>, s<id>_x<i>, s<id>_y<i>, and the body's values s<id>_v<n>, so that no name in the
    body hides one outside it."""
    body: Graph = node.attrs["body"]
    nc, ns = node.attrs["n_carry"], node.attrs["n_seq"]
    tag = f"s{node.id}_"
    args = [p.ref(v) for v in node.inputs]
    carries = [f"{tag}c{i}" for i in range(nc)]
    steps = [f"{tag}x{i}" for i in range(ns)]
    emits = [f"{tag}y{i}" for i in range(len(body.outputs) - nc)]
    inner = _Printer(body, tag, p.symbols)
    inner.names = {n.out: name for n, name in zip(body.inputs, carries + steps + args[nc + ns:])}
    inside: list[str] = []
    for n in body:
        if n.op is not INPUT:
            inner.statement(n, inside)
    outs = [inner.ref(v) for _, v in body.outputs]
    inside += [f"    {c} = {v}" for c, v in zip(carries, outs)]
    inside += [f"    emit {y} = {v}" for y, v in zip(emits, outs[nc:])]
    seqs = ", ".join(f"{x} in {a}" for x, a in zip(steps, args[nc:]))
    reverse = ", reverse=true" if node.attrs["reverse"] else ""
    carry = (" carry (" + ", ".join(f"{c} = {a}" for c, a in zip(carries, args)) + ")"
             if nc else "")
    lines.append(f"    scan ({seqs}, axis={node.attrs['axis']}{reverse}){carry} {{")
    lines += ["    " + line for line in inside] + ["    }"]
    p.names.update(zip(node.outs, carries + emits))


def _check_name(part: str, full: str | None = None) -> None:
    if not IDENTIFIER.match(part):
        raise DlgValueError(f"{full or part!r} is not a .dlg name (names are identifiers; an "
                            f"nn.Sequential's numbered children have none): name the submodules")


def _declarable(key: str) -> bool:
    """Whether a child or param can be declared under its own name (`self` means the layer
    itself: a child named so is written in a dict)."""
    return is_name(key) and key != SELF


def _model_name(name: str) -> str:
    """The graph's name as a model name: a traced `<lambda>` is `lambda`."""
    name = re.sub(r"\W", "", name)
    return name if is_name(name) else "Traced"


def _type(t: TensorType) -> str:
    return f"{t.dtype}[{', '.join(str(d) for d in t.shape)}]"


def _literal(value: np.ndarray) -> str:
    if value.ndim != 0:
        raise DlgValueError(f"a constant tensor of shape {list(value.shape)} cannot be written "
                            f"in .dlg (only scalars)")
    if value.dtype == np.bool_:
        return "true" if value else "false"
    if value.dtype.kind == "f":
        return float_literal(float(value))
    if value.dtype.kind == "c":
        raise DlgValueError(f"the complex constant {complex(value)} cannot be written in .dlg "
                            f"(it has no complex literals)")
    return str(int(value))
