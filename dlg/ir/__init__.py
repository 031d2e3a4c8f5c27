"""The shared language of dlg: dtypes, shapes, types, graphs, the op library. Imports nothing else
from dlg."""

from dlg.ir import ops  # noqa: F401  (registers every op)
from dlg.ir.builder import Builder
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.opdef import REGISTRY, OpDef
from dlg.ir.shapes import Dim, Sym
from dlg.ir.types import TensorType

__all__ = [
           "REGISTRY",
           "Builder",
           "DType",
           "Dim",
           "Graph",
           "Node",
           "OpDef",
           "Sym",
           "TensorType",
           "Value",
]
