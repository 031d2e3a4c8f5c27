"""dlg: a declarative graph language and compiler for neural networks."""

from dlg.api import load, loads
from dlg.errors import (
                        DlgAttributeError,
                        DlgError,
                        DlgImportError,
                        DlgNameError,
                        DlgShapeError,
                        DlgSyntaxError,
                        DlgTypeError,
                        DlgValueError,
)
from dlg.ir import DType, Graph, TensorType
from dlg import data
from dlg.runtime.model import Model

__version__ = "0.1.0"

__all__ = ["DType", "DlgAttributeError", "DlgError", "DlgImportError", "DlgNameError",
           "DlgShapeError", "DlgSyntaxError", "DlgTypeError", "DlgValueError", "Graph", "Model",
           "TensorType", "data", "load", "loads"]
