"""What torch programs ask of a tensor and of dtypes, and the eager-only spellings around them:
a tensor's layout (`stride()`, `storage_offset()`, `storage()`, `untyped_storage()`, `nbytes`,
`data_ptr()`, `is_cuda`, `is_pinned()`, `pin_memory()` refused as torch without a GPU, ...), the
dtype queries (`result_type`, `promote_types`, `can_cast`, `is_signed`, `is_complex`),
`broadcast_shapes`, `is_nonzero`/`is_same_size`, `scalar_tensor`/`as_tensor`/`asarray`,
`clone`, torch's `take`/`put` (on the flattened tensor), `sum_to_size`, `x.new(...)`, and the
in-place view ops (`t_`, `transpose_`, `swapaxes_`, `swapdims_`, `squeeze_`, `unsqueeze_`).

Eager tensors are dense row-major arrays (views are copies, `is_contiguous()` holds), so the
strides are the contiguous ones and the storage offset 0; dlg has no complex dtype.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from dlg import foreign
from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.frontend import engine, inplace
from dlg.frontend.device import device as torch_device
from dlg.frontend.engine import caller_span
from dlg.frontend.factory import Layout, leaf
from dlg.frontend.methods import promote
from dlg.frontend.size import Size
from dlg.frontend.tensor import (Tensor, call, checked, foreign_array, foreign_tensors,
                                 numpy_data)
from dlg.functions.args import int_scalar
from dlg.functions.creation import dtype_arg
from dlg.ir import dtypes
from dlg.ir.dtypes import DType
from dlg.ir.ops import REGISTRY
from dlg.ir.ops.common import broadcast_shapes as _broadcast
from dlg.ir.shapes import Dim


def method(fn: Callable[..., Any]) -> Callable[..., Any]:
    setattr(Tensor, fn.__name__, fn)
    return fn


# ---- layout ----------------------------------------------------------------------------------
@method
def stride(self: Tensor, dim: int | None = None) -> Any:
    """The contiguous strides, in elements (eager tensors are dense arrays)."""
    strides: list[Dim] = []
    step: Dim = 1
    for d in reversed(self.tensor_type.shape):
        strides.insert(0, step)
        step = step * d
    if dim is None:
        return tuple(strides)
    if not -max(self.ndim, 1) <= dim < max(self.ndim, 1):
        raise DlgShapeError(f"stride: dim {dim} is out of range for a tensor of {self.ndim} "
                            f"dims", caller_span())
    return strides[dim] if self.ndim else 1


@method
def storage_offset(self: Tensor) -> int:
    """0: every eager tensor starts its own array."""
    return 0


@method
def ndimension(self: Tensor) -> int:
    return self.ndim


@method
def data_ptr(self: Tensor) -> int:
    """The address of the first element (tensors sharing memory share it)."""
    if self.graph_value is not None:
        raise DlgValueError("data_ptr(): a traced tensor has no data", caller_span())
    return int(self.numpy_view().__array_interface__["data"][0])


@method
def get_device(self: Tensor) -> int:
    """-1: eager tensors are on the cpu (torch's answer for it)."""
    return -1


@method
def pin_memory(self: Tensor, device: Any = None) -> Tensor:
    """Refused, as torch refuses it without an accelerator: pinned memory is for copies to a
    GPU, and eager dlg tensors stay on the cpu."""
    raise DlgValueError("pin_memory(): pinned memory is for copies to a GPU; eager dlg tensors "
                        "live on the cpu (torch raises here too without an accelerator): "
                        "leave the call out", caller_span())


@method
def is_pinned(self: Tensor, device: Any = None) -> bool:
    """False: no eager tensor is pinned (torch's answer on the cpu)."""
    return False


class _Storage:
    """What x.storage() and x.untyped_storage() share: a tensor's memory as one dimension of
    `_array`'s items (its elements, or their bytes), written through."""

    def __init__(self, array: np.ndarray):
        self._array = array

    def __len__(self) -> int:
        return int(self._array.size)

    def size(self) -> int:
        return len(self)

    def nbytes(self) -> int:
        return int(self._array.nbytes)

    def data_ptr(self) -> int:
        return int(self._array.__array_interface__["data"][0])

    @property
    def device(self) -> Any:
        return torch_device("cpu")

    def tolist(self) -> list[Any]:
        return self._array.tolist()

    def __iter__(self) -> Any:
        return iter(self.tolist())

    def __setitem__(self, i: Any, value: Any) -> None:
        self._array[i] = value

    def _repr(self, info: str) -> str:
        return " " + "\n ".join(str(v) for v in self.tolist()) + f"\n[{info} of size {len(self)}]"


class TypedStorage(_Storage):
    """torch's x.storage() (deprecated there, with its warning): the tensor's elements in one
    dimension, sharing its memory. An eager tensor starts its own array (storage_offset() is
    0), so a view's storage holds the view's elements, where torch's holds its base's."""

    @property
    def dtype(self) -> DType:
        return DType.of(self._array)

    def element_size(self) -> int:
        return int(self._array.itemsize)

    def __getitem__(self, i: int) -> Any:
        if not isinstance(i, (int, np.integer)):
            raise DlgTypeError("slices are only supported in UntypedStorage.__getitem__",
                               caller_span())
        return self._array[i].item()

    def untyped(self) -> UntypedStorage:
        return UntypedStorage(self._array.view(np.uint8))

    def __repr__(self) -> str:
        return self._repr(f"dlg.storage.TypedStorage(dtype={self.dtype!r}, device=cpu)")


class UntypedStorage(_Storage):
    """torch's x.untyped_storage(): the tensor's bytes, sharing its memory."""

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return UntypedStorage(self._array[i])
        return int(self._array[i])

    def __repr__(self) -> str:
        return self._repr("dlg.storage.UntypedStorage(device=cpu)")


def _flat_memory(x: Tensor, what: str) -> np.ndarray:
    if x.graph_value is not None:
        raise DlgValueError(f"{what}(): a traced tensor has no storage", caller_span())
    array = x.numpy_view()
    flat = array.reshape(-1)
    if flat.size and not np.shares_memory(flat, array):
        raise DlgValueError(f"{what}(): the tensor's elements are not one block of memory; "
                            f"take x.contiguous().{what}()", caller_span())
    return flat


@method
def storage(self: Tensor) -> TypedStorage:
    """The tensor's elements as a TypedStorage (Karpathy's `a.storage()`), with torch's
    deprecation warning."""
    warnings.warn("TypedStorage is deprecated. It will be removed in the future and "
                  "UntypedStorage will be the only storage class. This should only matter to "
                  "you if you are using storages directly.  To access UntypedStorage directly, "
                  "use tensor.untyped_storage() instead of tensor.storage()", UserWarning,
                  stacklevel=2)
    return TypedStorage(_flat_memory(self, "storage"))


@method
def untyped_storage(self: Tensor) -> UntypedStorage:
    return UntypedStorage(_flat_memory(self, "untyped_storage").view(np.uint8))


Tensor.itemsize = property(lambda self: self.dtype.itemsize)  # type: ignore[attr-defined]
Tensor.nbytes = property(lambda self: self.numel() * self.dtype.itemsize)  # type: ignore
Tensor.is_cpu = property(lambda self: True)  # type: ignore[attr-defined]
Tensor.is_cuda = property(lambda self: False)  # type: ignore[attr-defined]
Tensor.is_sparse = property(lambda self: False)  # type: ignore[attr-defined]
Tensor.layout = property(lambda self: Layout.strided)  # type: ignore[attr-defined]


def _no_sparse(name: str) -> Callable[..., Any]:
    """x.to_sparse() and its kin, refused by name: dlg has no sparse layout (Whisper keeps its
    alignment heads as one)."""
    def refuse(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        raise DlgTypeError(f"{name}(): dlg has no sparse tensors; keep the dense tensor "
                           f"(x.nonzero() gives the indices a COO tensor holds)", caller_span())
    refuse.__name__ = name
    return refuse


for _name in ("to_sparse", "to_sparse_coo", "to_sparse_csr", "to_sparse_csc", "to_sparse_bsr",
              "to_sparse_bsc"):
    setattr(Tensor, _name, _no_sparse(_name))


@method
def new(self: Tensor, *args: Any, dtype: Any = None, device: Any = None,
        requires_grad: bool = False) -> Tensor:
    """torch's legacy constructor: x.new(2, 3) zeros of x's dtype (torch leaves them
    uninitialised), x.new(data) a copy of data, x.new() an empty tensor."""
    dtype = checked(dtype_arg, dtype or self.dtype, "new(): dtype")
    if len(args) == 1 and not isinstance(args[0], (int, np.integer, Size)):
        data = args[0].numpy_view() if isinstance(args[0], Tensor) else args[0]
        value = np.array(data, dtype.np)
    else:
        shape = tuple(args[0]) if len(args) == 1 and isinstance(args[0], Size) else args
        value = np.zeros(shape or (0,), dtype.np)
    return leaf(Tensor.of(value), requires_grad, device)


@method
def sum_to_size(self: Tensor, *size: Any) -> Tensor:
    """x summed down to `size` (which broadcasts to x's shape): the gradient of a broadcast."""
    shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
    lead = self.ndim - len(shape)
    if lead < 0 or any(s not in (1, d) for s, d in zip(shape, self.shape[lead:])):
        raise DlgShapeError(f"sum_to_size: size {list(shape)} is not expandable to the "
                            f"tensor's {list(self.shape)}", caller_span())
    if not shape:  # torch's sum_to: the whole sum (an int tensor's in int64), 0-d included
        return call("sum", self)
    axes = [*range(lead), *(lead + i for i, s in enumerate(shape)
                            if s == 1 and self.shape[lead + i] != 1)]
    out = call("sum", self, axes, keepdims=True) if axes else self
    return out.reshape(shape) if lead else out


# ---- in-place view ops: x takes the view's shape -------------------------------------------------
def _view_in_place(name: str) -> None:
    out_of_place = getattr(Tensor, name)

    def update(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        tracer = engine.current_tracer()
        if tracer is not None and tracer.owns(self):
            if self.graph_value is None:
                raise DlgValueError(f"{name}_: a module's parameter or buffer cannot change its "
                                    "shape in a trace", caller_span())
            new = out_of_place(self, *args, **kwargs)
            self.tensor_type, self.graph_value = new.tensor_type, tracer.value_of(new)
            return self
        if engine.grad_enabled() and self.requires_grad and self.record is None:
            raise DlgValueError(inplace.LEAF_ERROR, caller_span())
        old = Tensor.__new__(Tensor)  # x as it was: the view's record reads it
        old._value, old.tensor_type, old.record, old.grad, old._requires_grad, old.graph_value = (
            self._value, self.tensor_type, self.record, None, self._requires_grad, None)
        new = out_of_place(old, *args, **kwargs)
        self._value, self.tensor_type, self.record = new._value, new.tensor_type, new.record
        return self
    update.__name__ = update.__qualname__ = f"{name}_"
    update.__doc__ = f"x.{name}(...), x itself taking the result's shape (torch's in-place view)."
    method(update)


for _name in ("t", "transpose", "swapaxes", "swapdims", "squeeze", "unsqueeze"):
    _view_in_place(_name)


# ---- torch's take and put: the flattened tensor ------------------------------------------------
def _flat_index(x: Tensor, index: Any, name: str) -> Tensor:
    index = foreign_tensors(index)  # torch's index tensor
    if not isinstance(index, Tensor) or index.dtype not in (DType.i32, DType.i64):
        raise DlgTypeError(f"{name}: index must be an int64 tensor", caller_span())
    n = x.numel()
    return call("where", index < 0, index + n, index).reshape(-1)


def take(input: Tensor, index: Tensor) -> Tensor:  # noqa: A002
    """input's elements at `index` into the flattened input (negative from the end), shaped as
    index."""
    picked = call("take", input.reshape(-1), _flat_index(input, index, "take"), 0)
    return picked.reshape(index.shape)


def put(input: Tensor, index: Tensor, source: Tensor,  # noqa: A002
        accumulate: bool = False) -> Tensor:
    """input with `source`'s elements written (or added, with accumulate) at `index` into the
    flattened input."""
    flat, where = input.reshape(-1), _flat_index(input, index, "put")
    values = source.reshape(-1).to(input.dtype)
    if accumulate:
        out = call("index_add", flat, 0, where, values)
    else:
        out = call("scatter", flat, 0, where, values)
    return out.reshape(input.shape)


def _put_(self: Tensor, index: Tensor, source: Tensor, accumulate: bool = False) -> Tensor:
    return inplace.update(self, lambda s: put(s, index, source, accumulate), index, source)


Tensor.take = take  # type: ignore[attr-defined]
Tensor.put = put  # type: ignore[attr-defined]
Tensor.put_ = _put_  # type: ignore[attr-defined]


# ---- top-level queries and constructors ---------------------------------------------------------
def clone(input: Tensor, *, memory_format: Any = None) -> Tensor:  # noqa: A002
    """A copy that keeps the gradient path (x.clone())."""
    return input.clone(memory_format)


def is_nonzero(input: Tensor) -> bool:  # noqa: A002
    """Whether a one-element tensor's value is not 0."""
    if input.numel() != 1:
        raise DlgValueError(f"is_nonzero: the tensor must have one element, it has "
                            f"{input.numel()}", caller_span())
    return bool(input.item() != 0)


def is_same_size(input: Tensor, other: Tensor) -> bool:  # noqa: A002
    return tuple(input.shape) == tuple(other.shape)


def is_signed(input: Tensor) -> bool:  # noqa: A002
    """Whether the dtype holds negative numbers (all but bool and uint8)."""
    return input.dtype.is_signed


def is_complex(input: Tensor) -> bool:  # noqa: A002
    """Whether the dtype is complex64 or complex128."""
    return input.dtype.is_complex


def _dtype(value: Any, what: str) -> DType:
    return checked(dtype_arg, value, what)


def promote_types(type1: Any, type2: Any) -> DType:
    """The smallest dtype both cast to without losing their kind (bool < int < float)."""
    a, b = _dtype(type1, "promote_types(): type1"), _dtype(type2, "promote_types(): type2")
    return dtypes.promote_types(a, b)


def result_type(tensor1: Any, tensor2: Any) -> DType:
    """The dtype an arithmetic op of the two gives: torch's promotion, numbers weak."""
    values = promote(REGISTRY["add"], tensor1, tensor2)
    tensors = [v for v in values if isinstance(v, Tensor)]
    if tensors:
        return tensors[0].dtype
    if any(isinstance(v, (float, np.floating)) for v in values):
        return DType.f32
    return DType.bool if all(isinstance(v, (bool, np.bool_)) for v in values) else DType.i64


def can_cast(from_: Any, to: Any) -> bool:
    """torch's casting rule: never to a lower kind (complex to float, float to int, a number
    to bool)."""
    a, b = _dtype(from_, "can_cast(): from_"), _dtype(to, "can_cast(): to")
    return b.kind >= a.kind


def broadcast_shapes(*shapes: Any) -> Size:
    """The shape the given shapes broadcast to (ints count as 1-d shapes)."""
    dims = [(int(s),) if isinstance(s, (int, np.integer)) else tuple(s) for s in shapes]
    try:
        return Size.of(_broadcast("broadcast_shapes", *dims))
    except DlgShapeError as e:
        raise e.with_span(caller_span()) from None


def scalar_tensor(s: Any, *, dtype: Any = None, device: Any = None,
                  requires_grad: bool = False, layout: Any = None,
                  pin_memory: bool = False) -> Tensor:
    """A 0-d tensor of `s`, float32 unless dtype says otherwise."""
    dtype = _dtype(dtype or DType.f32, "scalar_tensor(): dtype")
    value = s.item() if isinstance(s, Tensor) else s
    if dtype.is_int and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = checked(lambda _, v: int_scalar(v, dtype), value)  # -5 as uint8 is 251
    return leaf(Tensor.of(np.asarray(value, dtype.np)), requires_grad, device, layout, pin_memory)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """data as a tensor without a copy where it can be (a tensor or a NumPy array of the
    dtype); Python floats make float32."""
    dtype = None if dtype is None else _dtype(dtype, "as_tensor(): dtype")
    if isinstance(data, Tensor):
        return data if dtype in (None, data.dtype) else data.to(dtype)
    if foreign.is_foreign(data):  # a torch tensor: its memory, as a NumPy array's
        data = foreign_array(data)
    if isinstance(data, np.ndarray) and (dtype is None or data.dtype == dtype.np):
        try:
            DType.of(data)
        except KeyError:  # a dtype dlg lacks: the conversion below copies it
            pass
        else:
            return leaf(Tensor.of(data), False, device)
    value = numpy_data(data, None if dtype is None else dtype.np, copy=False)
    if dtype is None and value.dtype == np.float64 and not isinstance(data, np.generic):
        value = value.astype(np.float32)
    return leaf(Tensor.of(value), False, device)


def asarray(obj: Any, *, dtype: Any = None, device: Any = None, copy: bool | None = None,
            requires_grad: bool = False) -> Tensor:
    """as_tensor, with torch.asarray's copy= and requires_grad= (copy=False where a copy is
    needed is torch's error)."""
    if foreign.is_foreign(obj):  # a torch tensor: copy= said of its memory
        obj = foreign_array(obj)
    out = as_tensor(obj, dtype, device)
    shares = out is obj or isinstance(obj, np.ndarray) and np.shares_memory(
        out.numpy_view(), obj)
    if copy and shares:
        out = (out.clone().detach() if isinstance(obj, Tensor)
               else Tensor.of(out.numpy_view().copy()))
    elif copy is False and not shares:
        raise DlgValueError("asarray: copy=False, but the data must be copied (another dtype "
                            "or not an array)", caller_span())
    return out.requires_grad_() if requires_grad else out


TOP_LEVEL = {"clone": clone, "take": take, "put": put, "is_nonzero": is_nonzero,
             "is_same_size": is_same_size, "is_signed": is_signed, "is_complex": is_complex,
             "promote_types": promote_types, "result_type": result_type, "can_cast": can_cast,
             "broadcast_shapes": broadcast_shapes, "scalar_tensor": scalar_tensor,
             "as_tensor": as_tensor, "asarray": asarray}
for _name in ("is_nonzero", "is_same_size", "is_signed", "is_complex"):
    setattr(Tensor, _name, TOP_LEVEL[_name])
