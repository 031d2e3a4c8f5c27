"""What an ONNX op's entry in the import table sees: one node, its attributes (decoded), its
inputs as dlg values or as known arrays, and a `Front` through which it calls dlg's
user-facing functions (`dlg.functions`), so the import checks arguments as .dlg and Python do.

An input is *static* when its value is known while importing: an initializer, a `Constant`, a
shape (`Shape` of a tensor gives its dims, symbolic ones included, as an object array), or
anything computed from those by the shape arithmetic torch's exporters emit. Attributes that
ONNX moved into inputs over the opsets (Reshape's shape, Slice's starts, Squeeze's axes...) must
be static: dlg's ops take them as attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from dlg.errors import DlgTypeError, DlgValueError
from dlg.ir.builder import Builder
from dlg.ir.dtypes import DType
from dlg.ir.graph import Value
from dlg.ir.ops.opdef import OpDef
from dlg.ir.types import TensorType
from dlg.onnx.types import from_onnx, onnx_module

Static = np.ndarray  # a value known while importing (dtype object when it holds symbolic dims)


class ImportFront:
    """`dlg.functions`' Front for the importer: tensors are the graph's `Value`s, made through
    the IR builder."""

    training = False  # an ONNX graph is an inference graph

    def __init__(self, builder: Builder):
        self.builder = builder

    def is_tensor(self, value: Any) -> bool:
        return isinstance(value, Value)

    def type_of(self, x: Value) -> TensorType:
        return self.builder.type_of(x)

    def lift(self, value: Any, dtype: DType) -> Value:
        return self.builder.constant(value, dtype)

    def emit(self, op: OpDef, *inputs: Value, **attrs: Any) -> Any:
        return self.builder.emit(op, *inputs, **attrs)

    def describe(self, value: Any) -> str:
        return type(value).__name__


class Scope(Protocol):
    """The importer's side: ONNX value names to dlg values or static arrays, the graph inputs
    whose values are known, and the model's parameters."""

    values: dict[str, Value | Static]
    known: dict[str, Static]

    def materialize(self, name: str) -> Value:
        """A static value as a graph value, when an op needs a tensor."""

    def add_param(self, name: str, array: np.ndarray, trainable: bool) -> Value:
        """A new parameter of the model (a unique name made from `name`)."""

    def attribute(self, proto: Any) -> Any:
        """An attribute's value, decoded (strings, arrays)."""


class OnnxNode:
    """One ONNX node as its table entry reads it."""

    def __init__(self, proto: Any, opset: int, front: ImportFront, scope: Scope):
        self.proto = proto
        self.op = proto.op_type
        self.name = proto.name or (proto.output[0] if proto.output else proto.op_type)
        self.opset = opset
        self.F = front
        self._scope = scope
        self._values = scope.values
        self._known = scope.known
        self.attrs = {a.name: scope.attribute(a) for a in proto.attribute}

    # -- attributes and arity ---------------------------------------------------------------------
    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    @property
    def num_inputs(self) -> int:
        return len(self.proto.input)

    @property
    def num_outputs(self) -> int:
        return len(self.proto.output)

    def has(self, i: int) -> bool:
        """Whether optional input `i` is given (ONNX leaves out trailing ones, names others '')."""
        return i < len(self.proto.input) and self.proto.input[i] != ""

    def wants(self, i: int) -> bool:
        """Whether optional output `i` is asked for."""
        return i < len(self.proto.output) and self.proto.output[i] != ""

    # -- inputs -----------------------------------------------------------------------------------
    def x(self, i: int) -> Value:
        """Input `i` as a graph value."""
        name = self.proto.input[i]
        value = self._values[name]
        return self._scope.materialize(name) if isinstance(value, np.ndarray) else value

    def opt(self, i: int) -> Value | None:
        return self.x(i) if self.has(i) else None

    def xs(self) -> list[Value]:
        return [self.x(i) for i in range(self.num_inputs) if self.has(i)]

    def static(self, i: int, what: str) -> Static:
        """Input `i`'s value, which dlg needs while importing (a shape, axes, pads)."""
        name = self.proto.input[i]
        value = self._values[name]
        if isinstance(value, np.ndarray):
            return value
        if name in self._known:
            return np.asarray(self._known[name])
        raise self.error(f"its {what} ({name!r}) must be a constant (an initializer or computed "
                         f"from shapes): dlg takes it as an attribute")

    def ints(self, i: int, what: str) -> list[Any]:
        """A static input as a list of ints (or symbolic dims)."""
        return [d if not isinstance(d, (np.integer, float, np.floating)) else int(d)
                for d in self.static(i, what).reshape(-1).tolist()]

    def is_static(self, i: int) -> bool:
        return self.has(i) and isinstance(self._values[self.proto.input[i]], np.ndarray)

    def all_static(self) -> bool:
        return all(self.is_static(i) for i in range(self.num_inputs) if self.has(i))

    def statics(self) -> list[Static]:
        return [self._static_value(name) for name in self.proto.input if name]

    def _static_value(self, name: str) -> Static:
        value = self._values[name]
        assert isinstance(value, np.ndarray), f"{name} is not static"
        return value

    def type(self, i: int) -> TensorType:
        if self.is_static(i):  # a shape's type, without making it a tensor
            value = self._static_value(self.proto.input[i])
            dtype = DType.i64 if value.dtype == object else DType.of(value)
            return TensorType(dtype, value.shape)
        return self.F.type_of(self.x(i))

    def add_param(self, name: str, array: np.ndarray, trainable: bool = True) -> Value:
        return self._scope.add_param(name, array, trainable)

    # -- errors -----------------------------------------------------------------------------------
    def error(self, message: str) -> DlgValueError:
        return DlgValueError(f"ONNX node {self.name!r} ({self.op}): {message}")


def elem_dtype(elem_type: int, what: str) -> DType:
    """The dlg dtype of an ONNX element type, or a DlgTypeError naming the type."""
    try:
        return from_onnx(elem_type)
    except KeyError:
        name = onnx_module().TensorProto.DataType.Name(elem_type)
        raise DlgTypeError(f"{what}: element type {name} is not one of dlg's dtypes (f16, f32, "
                           f"f64, i32, i64, bool)") from None


Handler = Callable[[OnnxNode], Any]  # returns a value, a static array, or a tuple per output
