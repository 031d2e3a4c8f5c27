"""Module methods torch programs call beyond the core ones: dtype and device conversion
(`to`, `float`, `double`, `half`, `cpu`) and lookup by dotted name (`get_submodule`,
`get_parameter`, `get_buffer`). A mixin of Module."""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor, checked
from dlg.functions.creation import dtype_arg
from dlg.ir.dtypes import AbsentDType, DType
from dlg.ir.types import TensorType


class ModuleAPI:
    _parameters: dict[str, Any]
    _buffers: dict[str, Any]
    _modules: dict[str, Any]

    def modules(self) -> Any:
        raise NotImplementedError

    # -- conversion ------------------------------------------------------------------------------
    def to(self, *args: Any, **kwargs: Any) -> Any:
        """torch's spellings: `to(device)`, `to(dtype)`, `to(device, dtype)`, `to(tensor)` (its
        dtype) and the keywords device=, dtype=, non_blocking=. Floating-point parameters and
        buffers take the dtype in place; eager modules live on the cpu (compile for others)."""
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        kwargs.pop("non_blocking", None)
        kwargs.pop("memory_format", None)
        if kwargs:
            raise DlgTypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}",
                               engine.caller_span())
        for arg in args:
            if isinstance(arg, (DType, AbsentDType)):
                dtype = arg
            elif isinstance(arg, Tensor):
                dtype = arg.dtype
            elif not isinstance(arg, bool):  # non_blocking
                device = arg
        if device is not None and str(device).split(":")[0] not in ("cpu", "meta"):
            raise DlgValueError(f"device {device!r}: eager dlg modules run on the cpu; use "
                                f"dlg.compile(...) for other targets", engine.caller_span())
        if dtype is not None:
            dtype = checked(dtype_arg, dtype, "to(): dtype")
            if not dtype.is_float:
                raise DlgTypeError(f"nn.Module.to only accepts floating point dtypes, but got "
                                   f"desired dtype={dtype}", engine.caller_span())
            self._cast_floats(dtype)
        return self

    def cpu(self) -> Any:
        return self

    def to_empty(self, *, device: Any, recurse: bool = True) -> Any:
        """torch's: the parameters and buffers moved to `device` without their values (after
        `with torch.device("meta")`, before reset_parameters() or a load). dlg's tensors are
        on the cpu already, with values: they are kept, to be overwritten as torch's would."""
        if str(device).split(":")[0] not in ("cpu", "meta"):
            raise DlgValueError(f"device {device!r}: eager dlg modules run on the cpu; use "
                                f"dlg.compile(...) for other targets", engine.caller_span())
        return self

    def share_memory(self) -> Any:
        """torch's, for multiprocessing: dlg's data loading runs in the main process, so there
        is nothing to share."""
        return self

    def float(self) -> Any:  # noqa: A003
        return self._cast_floats(DType.f32)

    def double(self) -> Any:
        return self._cast_floats(DType.f64)

    def half(self) -> Any:
        return self._cast_floats(DType.f16)

    def _cast_floats(self, dtype: DType) -> Any:
        """Every floating-point parameter and buffer (and gradient) as `dtype`, in place, so
        optimizers holding them see the change (torch's `param.data = param.to(dtype)`)."""
        for m in self.modules():
            for t in (*m._parameters.values(), *m._buffers.values()):
                if t is not None and t.dtype.is_float:
                    _retype(t, dtype)
                    if t.grad is not None:
                        _retype(t.grad, dtype)
        return self

    # -- lookup ----------------------------------------------------------------------------------
    def get_submodule(self, target: str) -> Any:
        """The submodule at a dotted path ("" is this module); AttributeError as torch's."""
        module: Any = self
        for name in target.split(".") if target else ():
            if name not in module._modules:
                raise AttributeError(f"{type(module).__name__} has no attribute `{name}`")
            module = module._modules[name]
        return module

    def set_submodule(self, target: str, module: Any, strict: bool = False) -> None:
        """Put `module` at a dotted path (model surgery: a layer swapped for an adapter), its
        parent's existing attribute there replaced in place; torch's errors."""
        if target == "":
            raise DlgValueError("Cannot set the submodule without a target name!",
                                engine.caller_span())
        if not isinstance(module, ModuleAPI):
            raise DlgValueError(f"`module` is not an nn.Module, found {type(module)}",
                                engine.caller_span())
        path, _, name = target.rpartition(".")
        parent = self.get_submodule(path)
        if strict and not hasattr(parent, name):
            raise AttributeError(f"{type(parent).__name__} has no attribute `{name}`")
        if hasattr(parent, name) and not isinstance(getattr(parent, name), ModuleAPI):
            raise AttributeError(f"`{name}` is not an nn.Module")
        setattr(parent, name, module)

    def get_parameter(self, target: str) -> Any:
        return self._get(target, "_parameters", "nn.Parameter")

    def get_buffer(self, target: str) -> Any:
        return self._get(target, "_buffers", "buffer")

    def _get(self, target: str, table: str, kind: str) -> Any:
        path, _, name = target.rpartition(".")
        module = self.get_submodule(path)
        if name in getattr(module, table):
            return getattr(module, table)[name]
        if hasattr(module, name):
            raise AttributeError(f"`{name}` is not an {kind}")
        raise AttributeError(f"{type(module).__name__} has no attribute `{name}`")


def _retype(t: Tensor, dtype: DType) -> None:
    t._value = t.numpy_view().astype(dtype.np)
    t.tensor_type = TensorType(dtype, t._value.shape)  # a lazy module's placeholder has no type
