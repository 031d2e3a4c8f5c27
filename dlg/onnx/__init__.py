"""ONNX both ways: `export` writes a dlg model (or, as torch.onnx.export, a dlg.nn module traced
on example arguments) as an ONNX graph, `load` reads one into dlg.

The `onnx` package is optional (the `onnx` extra); it is imported when one of these is used.
"""

from dlg.onnx.export import export
from dlg.onnx.export_module import TrainingMode
from dlg.onnx.load import load

__all__ = ["TrainingMode", "export", "load"]
