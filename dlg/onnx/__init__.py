"""ONNX both ways: `export` writes a dlg model as an ONNX graph, `load` reads one into dlg.

The `onnx` package is optional (the `onnx` extra); it is imported when one of these is used.
"""

from dlg.onnx.export import export
from dlg.onnx.load import load

__all__ = ["export", "load"]
