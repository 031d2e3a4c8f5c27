"""dlg: a declarative graph language and compiler for neural networks."""

import builtins
import math as _math

from dlg.api import compile, load, loads, save  # noqa: A004
from dlg.errors import (
    DlgAttributeError,
    DlgError,
    DlgImportError,
    DlgNameError,
    DlgNumericError,
    DlgShapeError,
    DlgSyntaxError,
    DlgTypeError,
    DlgValueError,
)
from dlg.ir import DType, Graph, TensorType
from dlg.ir import DType as dtype  # torch.dtype: isinstance(x.dtype, dlg.dtype)
from dlg.ir.dtypes import bfloat16  # a name only: no tensor has it (autocast's dtype)
from dlg.ir.anomaly import detect_anomaly, is_anomaly_enabled, set_anomaly
from dlg import autograd, data, nn, optim, utils
from dlg import distributions, func
from dlg import amp, backends, cuda, testing
from dlg.backends import get_float32_matmul_precision, set_float32_matmul_precision
from dlg.backends.determinism import (are_deterministic_algorithms_enabled,
                                      is_deterministic_algorithms_warn_only_enabled,
                                      use_deterministic_algorithms)
from dlg.frontend.amp import autocast, is_autocast_enabled
from dlg import fft, linalg, special
# dlg.onnx imports the `onnx` package only to read or write files
from dlg import distributed, jit, onnx, profiler
from dlg.frontend import dense_linalg as _dense_linalg
from dlg.frontend import linalg_more as _linalg_more
from dlg.frontend.dtypes import finfo, get_default_dtype, iinfo, set_default_dtype
from dlg.frontend.engine import (
    enable_grad,
    inference_mode,
    initial_seed,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from dlg.frontend.rng_state import get_rng_state, manual_seed, seed, set_rng_state
from dlg import random
from dlg.frontend.engine import is_grad_enabled
from dlg.frontend.device import device, get_default_device, set_default_device
from dlg.frontend.factory import Layout, MemoryFormat
from dlg.frontend import functional as _functional
from dlg.frontend.out_arg import with_out as _with_out
from dlg.frontend import top_in_place as _top_in_place
from dlg.frontend.tensor import Tensor
from dlg.frontend.printing import set_printoptions
from dlg.frontend.size import Size
from dlg.frontend.trace import trace, trace_train
from dlg.frontend.from_torch import from_torch
from dlg.frontend.random_fill import Generator
from dlg.frontend.sampling import (BoolTensor, ByteTensor, CharTensor, DoubleTensor,
                                   FloatTensor, IntTensor, LongTensor, ShortTensor)
from dlg.runtime.executable import Executable
from dlg.runtime.model import Model
from dlg.runtime.native import get_num_threads, set_num_threads

__version__ = "0.1.0"
complex64, cfloat, complex128, cdouble = DType.c64, DType.c64, DType.c128, DType.c128

# the functions (dlg.relu, dlg.cat, dlg.max, ...): every name of dlg.nn.functional not taken above
_FUNCTIONS = [n for n in _functional.__all__ if n not in globals() and n not in ("MaxResult", "op")]
# (each taking torch's out= as well: dlg.matmul(a, b, out=c))
globals().update({name: _with_out(getattr(_functional, name)) for name in _FUNCTIONS})
for _name in _FUNCTIONS:  # each found by pickle as dlg.<name>
    globals()[_name].__module__, globals()[_name].__qualname__ = "dlg", _name
# torch's top-level in-place spellings (dlg.sin_(x) is x.sin_()) not among those
_IN_PLACE = {k: v for k, v in _top_in_place.FUNCTIONS.items() if k not in globals()}
globals().update(_IN_PLACE)

# torch's top-level dense linear algebra (eager only; dlg.linalg has the rest)
inverse, det, logdet, slogdet = (_dense_linalg.inv, _dense_linalg.det, _dense_linalg.logdet,
                                 _dense_linalg.slogdet)
cholesky = _dense_linalg.cholesky_torch
t = Tensor.t  # torch.t(x): the transpose of a matrix (a vector or scalar as it is)
vmap = func.vmap  # torch.vmap is torch.func.vmap
globals().update(_linalg_more.TOP_LEVEL)  # pinverse, matrix_exp, matrix_power, svd, qr, ...

float16, float32, float64 = DType.f16, DType.f32, DType.f64
int32, int64, bool = DType.i32, DType.i64, DType.bool  # noqa: A001  (PyTorch's spellings)
float, double, half, long = DType.f32, DType.f64, DType.f16, DType.i64  # noqa: A001
int = DType.i32  # noqa: A001  (torch.int is int32)
uint8, int8, int16, short = DType.u8, DType.i8, DType.i16, DType.i16
preserve_format, contiguous_format = MemoryFormat.preserve_format, MemoryFormat.contiguous_format
channels_last, channels_last_3d = MemoryFormat.channels_last, MemoryFormat.channels_last_3d
strided = Layout.strided
# torch's constants (torch.pi in a cosine schedule, torch.inf in a clamp); newaxis is None
pi, e, inf, nan, newaxis = _math.pi, _math.e, _math.inf, _math.nan, None


class accelerator:  # noqa: N801  (torch.accelerator spelling)
    """`dlg.accelerator.is_available()`: eager tensors run on the CPU (pytorch/examples ask)."""

    @staticmethod
    def is_available() -> builtins.bool:
        return False

__all__ = ["DType", "DlgAttributeError", "DlgError", "DlgImportError", "DlgNameError",
           "DlgShapeError", "DlgSyntaxError", "DlgTypeError", "DlgValueError", "Executable",
           "Graph", "Model", "Tensor", "TensorType", "compile", "cuda", "data", "device",
           "distributions", "func", "load",
           "loads", "manual_seed", "nn", "no_grad", "optim", "save", "trace", "trace_train",
           "utils"]
__all__ += ["enable_grad", "finfo", "get_default_dtype", "iinfo", "inference_mode",
            "is_inference_mode_enabled", "set_default_dtype",
            "is_grad_enabled", "set_grad_enabled"]
__all__ += _FUNCTIONS
__all__ += list(_IN_PLACE)
__all__ += ["get_default_device", "set_default_device", "testing"]
__all__ += ["fft", "linalg", "special", *_linalg_more.TOP_LEVEL]
__all__ += ["DlgNumericError", "detect_anomaly", "is_anomaly_enabled", "set_anomaly"]
__all__ += ["get_num_threads", "set_num_threads"]
__all__ += ["channels_last", "channels_last_3d", "contiguous_format", "preserve_format", "strided"]
__all__ += ["from_torch"]
__all__ += ["autograd"]
__all__ += ["amp", "autocast", "bfloat16", "is_autocast_enabled"]
__all__ += ["Generator"]
__all__ += ["get_rng_state", "initial_seed", "random", "seed", "set_rng_state"]
__all__ += ["are_deterministic_algorithms_enabled", "dtype",
            "is_deterministic_algorithms_warn_only_enabled", "use_deterministic_algorithms"]
__all__ += ["Size", "backends", "get_float32_matmul_precision", "set_float32_matmul_precision"]
__all__ += ["BoolTensor", "DoubleTensor", "FloatTensor", "IntTensor", "LongTensor"]
__all__ += ["ByteTensor", "CharTensor", "ShortTensor"]
__all__ += ["set_printoptions", "t", "vmap"]
__all__ += ["distributed", "jit", "onnx", "profiler"]
