"""dlg: a declarative graph language and compiler for neural networks."""

from dlg.api import compile, load, loads  # noqa: A004
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
from dlg.runtime.executable import Executable
from dlg.runtime.model import Model

__version__ = "0.1.0"

__all__ = ["DType", "DlgAttributeError", "DlgError", "DlgImportError", "DlgNameError",
           "DlgShapeError", "DlgSyntaxError", "DlgTypeError", "DlgValueError", "Executable",
           "Graph", "Model", "TensorType", "compile", "data", "load", "loads"]
