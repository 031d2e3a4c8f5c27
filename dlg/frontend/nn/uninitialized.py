"""torch's UninitializedParameter and UninitializedBuffer: what a lazy module (LazyLinear,
LazyConv2d, LazyBatchNorm1d, ...) holds until its first call gives it its input size. They are
in its parameters() and state_dict, print as `<UninitializedParameter>`, keep a dtype (`.double()`
before the first call is kept), and refuse to be used: their shape and any op on them are an
error saying to run a dummy batch first, as torch's. The first call draws the module's values
into these same objects, which then become a plain Parameter (or tensor), so an optimizer given
the parameters before that call trains the drawn values, as torch's does (d2l's lazy chapters)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.nn.module import Module, Parameter
from dlg.frontend.tensor import Tensor, checked
from dlg.functions.creation import dtype_arg
from dlg.ir.dtypes import DType
from dlg.ir.types import TensorType


class _Uninitialized:
    """What UninitializedParameter and UninitializedBuffer share: no shape, no use, a dtype."""

    __slots__ = ()
    cls_to_become: type[Tensor]

    def _placeholder(self, requires_grad: bool, dtype: Any) -> None:
        dtype = DType.f32 if dtype is None else checked(dtype_arg, dtype, "dtype")
        self._setup(np.empty(0, dtype.np), False, None)  # type: ignore[attr-defined]
        self._requires_grad = requires_grad  # a float placeholder, as torch's

    @property
    def tensor_type(self) -> TensorType:
        raise DlgValueError(f"the {type(self).__name__} of a lazy module has no shape or values "
                            f"yet: call the module (forward) on a dummy batch first to "
                            f"initialize its parameters", engine.caller_span())

    @tensor_type.setter
    def tensor_type(self, t: TensorType) -> None:
        Tensor.tensor_type.__set__(self, t)  # type: ignore[attr-defined]

    @property
    def dtype(self) -> DType:
        return DType.of(self._value)  # type: ignore[attr-defined]

    def detach(self) -> Any:
        return self  # torch's state_dict of a lazy module holds the placeholders themselves

    def materialize(self, shape: Any, device: Any = None, dtype: Any = None) -> None:
        """torch's: become a tensor of `shape` (zeros here; torch's are uninitialized memory)
        in this placeholder's dtype or `dtype`, as cls_to_become."""
        dtype = self.dtype if dtype is None else checked(dtype_arg, dtype, "dtype")
        self._become(np.zeros(tuple(shape), dtype.np))

    def _become(self, array: np.ndarray) -> None:
        """Hold `array` (a lazy module's first draw) in this placeholder's dtype, as
        cls_to_become."""
        array = array.astype(self.dtype.np, copy=False)  # `.double()` before the call kept
        self.__class__ = self.cls_to_become  # type: ignore[assignment]
        requires_grad = self._requires_grad  # type: ignore[attr-defined]
        self._setup(array, requires_grad, None)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class UninitializedParameter(_Uninitialized, Parameter):
    """A lazy module's parameter before its first call (torch.nn.UninitializedParameter)."""

    __slots__ = ()
    cls_to_become = Parameter

    def __init__(self, requires_grad: bool = True, device: Any = None, dtype: Any = None):
        self._placeholder(requires_grad, dtype)


class UninitializedBuffer(_Uninitialized, Tensor):
    """A lazy module's buffer before its first call (torch.nn.UninitializedBuffer)."""

    __slots__ = ()
    cls_to_become = Tensor

    def __init__(self, requires_grad: bool = False, device: Any = None, dtype: Any = None):
        self._placeholder(requires_grad, dtype)


def is_lazy(param: Any) -> bool:
    """Whether `param` is a lazy module's placeholder (torch.nn.parameter.is_lazy)."""
    return isinstance(param, _Uninitialized)


def held(module: Module) -> dict[str, dict[str, Tensor]]:
    """A lazy module's parameters and buffers before its first call, by table and name: the
    placeholders, and the tensors a load_state_dict has put in their places."""
    return {table: {name: t for name, t in getattr(module, table).items() if t is not None}
            for table in ("_parameters", "_buffers")}


def materialize(module: Module, before: dict[str, dict[str, Tensor]]) -> None:
    """After a lazy module's first call has drawn its parameters and buffers: the placeholders
    it held take the drawn values and their places again; tensors a load gave it stay."""
    for table, entries in before.items():
        drawn = getattr(module, table)
        for name, t in entries.items():
            if drawn.get(name) is not None:
                if isinstance(t, _Uninitialized):
                    t._become(drawn[name].numpy_view())
                drawn[name] = t


def load_hook(module: Module, state: dict[str, Any], prefix: str, *_: Any) -> None:
    """A lazy module's load_state_dict pre-hook (torch's): each placeholder given a loaded
    value takes that value's shape, so the load copies into it."""
    for table in (module._parameters, module._buffers):
        for name, t in table.items():
            value = state.get(prefix + name)
            if isinstance(t, _Uninitialized) and value is not None and not is_lazy(value):
                t.materialize(tuple(value.shape))
