"""dlg: a declarative graph language and compiler for neural networks."""

import builtins

from dlg.api import compile, load, loads, save  # noqa: A004
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
from dlg import data, nn, optim, utils
from dlg.frontend.engine import manual_seed, no_grad
from dlg.frontend.functional import (
    arange,
    argmax,
    cat,
    exp,
    flatten,
    from_numpy,
    full,
    log,
    log_softmax,
    matmul,
    mean,
    ones,
    ones_like,
    rand,
    randn,
    relu,
    sigmoid,
    softmax,
    sqrt,
    stack,
    tanh,
    tensor,
    where,
    zeros,
    zeros_like,
)
from dlg.frontend.functional import max as max  # noqa: A004, PLC0414  (PyTorch's spelling)
from dlg.frontend.functional import min as min  # noqa: A004, PLC0414
from dlg.frontend.functional import sum as sum  # noqa: A004, PLC0414
from dlg.frontend.tensor import Tensor
from dlg.frontend.trace import trace, trace_train
from dlg.runtime.executable import Executable
from dlg.runtime.model import Model

__version__ = "0.1.0"

float16, float32, float64 = DType.f16, DType.f32, DType.f64
int32, int64, bool = DType.i32, DType.i64, DType.bool  # noqa: A001  (PyTorch's spellings)
float, double, half, long = DType.f32, DType.f64, DType.f16, DType.i64  # noqa: A001


def device(name: str = "cpu") -> str:
    """`torch.device` spelling: eager dlg runs on the cpu (`dlg.compile` targets others)."""
    return str(name)


class cuda:  # noqa: N801  (torch.cuda spelling)
    """`dlg.cuda.is_available()`: eager tensors never live on a GPU."""

    @staticmethod
    def is_available() -> builtins.bool:
        return False

__all__ = ["DType", "DlgAttributeError", "DlgError", "DlgImportError", "DlgNameError",
           "DlgShapeError", "DlgSyntaxError", "DlgTypeError", "DlgValueError", "Executable",
           "Graph", "Model", "Tensor", "TensorType", "arange", "argmax", "cat", "compile", "cuda",
           "data", "device", "exp", "flatten", "from_numpy", "full", "load", "loads", "log",
           "log_softmax", "manual_seed", "matmul", "max", "mean", "min", "nn", "no_grad", "ones",
           "ones_like", "optim", "rand", "randn", "relu", "save", "sigmoid", "softmax", "sqrt",
           "stack", "sum", "tanh", "tensor", "trace", "trace_train", "utils", "where", "zeros",
           "zeros_like"]
