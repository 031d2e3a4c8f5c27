"""`Builder`: the one way nodes get made, so every node is schema-checked, typed and located.

`b.emit(ADD, x, y)` checks the attributes, runs the op's `infer` rule and records the current
source span; shape errors raised by `infer` get that span. `b.add(x, y)` is the same call
spelled by op name. Composite decompositions and (later) VJP rules build IR through this class.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from dlg.errors import DlgError, DlgTypeError, Span
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph, Value
from dlg.ir.ops.opdef import REGISTRY, OpDef, Trait
from dlg.ir.ops.source import CONSTANT, INPUT, PARAM
from dlg.ir.types import TensorType


class Builder:
    def __init__(self, graph: Graph, span: Span | None = None, backward: bool = False):
        self.graph = graph
        self.span = span
        self.backward = backward

    @contextmanager
    def at(self, span: Span | None) -> Iterator[Builder]:
        """Nodes made inside this block carry `span`."""
        saved = self.span
        self.span = span or saved
        try:
            yield self
        finally:
            self.span = saved

    def type_of(self, v: Value) -> TensorType:
        return self.graph.type_of(v)

    def emit(self, op: OpDef, *inputs: Value, name: str | None = None, **attrs: Any
             ) -> Value | tuple[Value, ...]:
        """Add one node; returns its value, or a tuple of values for multi-output ops."""
        try:
            if op.variadic:
                if len(inputs) < len(op.inputs) - 1:
                    raise DlgTypeError(f"{op.name} takes at least {len(op.inputs) - 1} inputs, "
                                       f"got {len(inputs)}")
            elif len(inputs) != len(op.inputs):
                raise DlgTypeError(f"{op.name} takes {len(op.inputs)} input"
                                   f"{'s' if len(op.inputs) != 1 else ''} "
                                   f"({', '.join(op.inputs)}), got {len(inputs)}")
            checked = op.check_attrs(attrs)
            types = op.infer(*(self.graph.type_of(v) for v in inputs), **checked)
        except DlgError as e:
            raise e.with_span(self.span) from None
        types = types if isinstance(types, tuple) else (types,)
        node = self.graph.add_node(op, tuple(inputs), checked, types, name=name, span=self.span,
                                   backward=self.backward)
        return node.outs if len(types) != 1 or Trait.MULTI_OUTPUT in op.traits else node.out

    def __getattr__(self, opname: str) -> Any:
        op = REGISTRY.get(opname)
        if op is None:
            raise AttributeError(opname)
        return lambda *inputs, **attrs: self.emit(op, *inputs, **attrs)

    # -- sources --------------------------------------------------------------------------------
    def input(self, name: str, type: TensorType) -> Value:
        return self.emit(INPUT, name=name, dtype=type.dtype, shape=type.shape)

    def param(self, name: str, type: TensorType, trainable: bool = True) -> Value:
        return self.emit(PARAM, name=name, dtype=type.dtype, shape=type.shape,
                         trainable=trainable)

    def constant(self, value: Any, dtype: DType) -> Value:
        return self.emit(CONSTANT, value=np.asarray(value, dtype=dtype.np))
