"""`Front`: what the user-facing functions need from a front door (the .dlg elaborator, the eager
and traced Python frontend), so that an op's arguments are parsed and checked once for both.

A front door has its own tensor class (`dlg.grammar.values.GraphTensor` wraps an IR value,
`dlg.Tensor` an array or a traced value); the functions in `dlg.functions` never look inside
one: they ask the front for its type, hand it Python numbers to lift, and emit registry ops
through it. Errors are raised as `DlgError`s without a span; each front door adds its own (the
.dlg call site, the user's Python file:line).
"""

from __future__ import annotations

from typing import Any, Protocol

from dlg.ir.dtypes import DType
from dlg.ir.ops.opdef import OpDef
from dlg.ir.types import TensorType


class Front(Protocol):
    training: bool  # dropout and batch statistics follow it

    def is_tensor(self, value: Any) -> bool:
        """Whether `value` is this front door's tensor."""

    def type_of(self, x: Any) -> TensorType:
        """The dtype and (possibly symbolic) shape of a tensor."""

    def lift(self, value: Any, dtype: DType) -> Any:
        """A Python number (or nested list of numbers) as a constant tensor of `dtype`."""

    def emit(self, op: OpDef, *inputs: Any, **attrs: Any) -> Any:
        """Apply a registry op; a tensor, or a tuple of tensors for multi-output ops."""

    def describe(self, value: Any) -> str:
        """A short phrase for a value of this front door that is neither a tensor nor a plain
        Python value (a .dlg layer or builtin), for error messages."""
