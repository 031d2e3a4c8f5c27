"""`dlg.Tensor`: an eager, NumPy-backed tensor with the PyTorch surface programs use.

Every operation goes through `engine.apply` (the op registry and its references), and
`backward()` through the autodiff pass, so eager results and gradients are the interpreter's.
Dtypes promote as in PyTorch (an int tensor meeting a float becomes float); Python numbers take
the tensor's dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from dlg.errors import DlgError, DlgShapeError, DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.functions import indexing
from dlg.ir.dtypes import DType
from dlg.ir.graph import Value
from dlg.ir.ops.opdef import REGISTRY
from dlg.ir.shapes import exact_div, numel
from dlg.ir.types import TensorType

_PROMOTION = [DType.bool, DType.i32, DType.i64, DType.f16, DType.f32, DType.f64]


class MaxResult(NamedTuple):
    values: Tensor
    indices: Tensor


class Tensor:
    __slots__ = ("_value", "type", "record", "requires_grad", "grad", "trace", "__weakref__")

    def __init__(self, value: Any, requires_grad: bool = False,
                 record: engine.Record | None = None, dtype: DType | None = None):
        array = _as_array(value, dtype)
        self._value = array
        self.type = TensorType(DType.of(array), array.shape)
        self.record = record
        self.grad: Tensor | None = None
        self.trace: Value | None = None  # set on the symbolic tensors `dlg.trace` runs with
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)
        elif record is not None:
            self.requires_grad = True

    # -- data -------------------------------------------------------------------------------------
    @classmethod
    def traced(cls, value: Value, t: TensorType) -> Tensor:
        """A symbolic tensor of a trace: a type and a graph value, no data."""
        out = cls.__new__(cls)
        out._value, out.type, out.record, out.grad, out.requires_grad, out.trace = (
            None, t, None, None, False, value)
        return out

    def numpy_view(self) -> np.ndarray:
        if self._value is None:
            raise engine.TraceHazard()
        return self._value

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """NumPy (and so dlg models and executables) can take a tensor as an array."""
        array = self.numpy_view()
        return array if dtype is None else array.astype(dtype)

    def numpy(self) -> np.ndarray:
        if self.requires_grad:
            raise DlgValueError("can't call numpy() on a tensor that requires grad; use "
                                "tensor.detach().numpy()", engine.caller_span())
        return self._value

    def tolist(self) -> Any:
        return self.numpy_view().tolist()

    def item(self) -> Any:
        if self.numpy_view().size != 1:
            raise DlgValueError(f"item(): the tensor has {self._value.size} elements, not 1",
                                engine.caller_span())
        return self._value.reshape(()).item()

    @property
    def data(self) -> Tensor:
        """The same storage, detached from autograd (assigning it replaces the values)."""
        return self.detach()

    @data.setter
    def data(self, value: Tensor) -> None:
        self._value = _as_array(value, self.type.dtype).copy()
        self.type = TensorType(self.type.dtype, self._value.shape)

    def detach(self) -> Tensor:
        out = Tensor.__new__(Tensor)
        out._value, out.type, out.record, out.grad, out.requires_grad, out.trace = (
            self._value, self.type, None, None, False, self.trace)
        return out

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not self.type.dtype.is_float:
            raise DlgTypeError(f"only float tensors can require gradients, not {self.type}",
                               engine.caller_span())
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self.record is None

    @property
    def grad_fn(self) -> str | None:
        return self.record.op.name if self.record is not None else None

    def accumulate_grad(self, value: np.ndarray) -> None:
        value = np.asarray(value, self.type.dtype.np)
        if self.grad is None:
            self.grad = Tensor(value.copy())
        else:
            self.grad._value = self.grad._value + value

    def backward(self, gradient: Any = None) -> None:
        seed = None if gradient is None else _as_array(gradient, self.type.dtype)
        engine.backward(self, seed)

    # -- shape and dtype ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[Any, ...]:
        """Ints; while tracing, a symbolic dim (such as the batch size N) where there is one."""
        return tuple(self.type.shape)

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def ndim(self) -> int:
        return self.type.rank

    def size(self, dim: int | None = None) -> Any:
        return self.shape if dim is None else self.shape[_axis(dim, self.ndim)]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> Any:
        return numel(self.type.shape)

    def __len__(self) -> int:
        if not self.ndim:
            raise DlgTypeError("len() of a 0-d tensor", engine.caller_span())
        return self.shape[0]

    def __repr__(self) -> str:
        if self._value is None:
            return f"tensor(<traced {self.type}>)"
        body = np.array2string(self._value, separator=", ", threshold=50)
        extra = ", requires_grad=True" if self.requires_grad and self.is_leaf else (
            f", grad_fn=<{self.grad_fn}>" if self.record is not None else "")
        return f"tensor({body}, dtype={self.dtype}{extra})"

    def __bool__(self) -> bool:
        if self.numpy_view().size != 1:
            raise DlgValueError("the truth value of a tensor with several elements is "
                                "ambiguous", engine.caller_span())
        return bool(self._value.reshape(()))

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        return int(self.item())

    __hash__ = object.__hash__

    # -- conversion --------------------------------------------------------------------------------
    def to(self, dtype: DType | str) -> Tensor:
        """A dtype conversion; `to("cpu")` is the tensor itself (dlg tensors live in memory)."""
        if isinstance(dtype, str):
            if dtype != "cpu":
                raise DlgValueError(f"device {dtype!r}: eager dlg tensors are on the cpu; "
                                    f"use dlg.compile(..., target=...) for other targets",
                                    engine.caller_span())
            return self
        return self if dtype == self.dtype else op("cast", self, dtype=dtype)

    def cpu(self) -> Tensor:
        return self

    def float(self) -> Tensor:  # noqa: A003
        return self.to(DType.f32)

    def double(self) -> Tensor:
        return self.to(DType.f64)

    def long(self) -> Tensor:
        return self.to(DType.i64)

    def int(self) -> Tensor:  # noqa: A003
        return self.to(DType.i32)

    def bool(self) -> Tensor:  # noqa: A003
        return self.to(DType.bool)

    def contiguous(self) -> Tensor:
        return self

    def clone(self) -> Tensor:
        return op("mul", self, ones_like_scalar(self, 1))

    # -- arithmetic --------------------------------------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return binary("add", self, other)

    def __radd__(self, other: Any) -> Tensor:
        return binary("add", other, self)

    def __sub__(self, other: Any) -> Tensor:
        return binary("sub", self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return binary("sub", other, self)

    def __mul__(self, other: Any) -> Tensor:
        return binary("mul", self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return binary("mul", other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return binary("div", self, other, floats=True)

    def __rtruediv__(self, other: Any) -> Tensor:
        return binary("div", other, self, floats=True)

    def __pow__(self, other: Any) -> Tensor:
        return binary("pow", self, other, floats=True)

    def __rpow__(self, other: Any) -> Tensor:
        return binary("pow", other, self, floats=True)

    def __matmul__(self, other: Any) -> Tensor:
        return binary("matmul", self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return binary("matmul", other, self)

    def __neg__(self) -> Tensor:
        return op("neg", self)

    def __abs__(self) -> Tensor:
        return op("abs", self)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return binary("eq", self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return binary("ne", self, other)

    def __lt__(self, other: Any) -> Tensor:
        return binary("lt", self, other)

    def __le__(self, other: Any) -> Tensor:
        return binary("le", self, other)

    def __gt__(self, other: Any) -> Tensor:
        return binary("gt", self, other)

    def __ge__(self, other: Any) -> Tensor:
        return binary("ge", self, other)

    def __and__(self, other: Any) -> Tensor:
        return binary("logical_and", self, other)

    def __or__(self, other: Any) -> Tensor:
        return binary("logical_or", self, other)

    def __invert__(self) -> Tensor:
        return op("logical_not", self)

    # in place: only where no gradient is recorded (PyTorch refuses the rest too)
    def _inplace(self, result: Tensor) -> Tensor:
        if engine.grad_enabled() and (self.requires_grad or result.requires_grad):
            raise DlgValueError("in-place operations on tensors that require grad are not "
                                "supported; use `with dlg.no_grad():` or the out-of-place "
                                "form", engine.caller_span())
        np.copyto(self.numpy_view(), np.broadcast_to(result.numpy_view(), self.shape),
                  casting="unsafe")
        return self

    def add_(self, other: Any, alpha: float = 1) -> Tensor:
        return self._inplace(self + other * alpha if alpha != 1 else self + other)

    def sub_(self, other: Any, alpha: float = 1) -> Tensor:
        return self._inplace(self - other * alpha if alpha != 1 else self - other)

    def mul_(self, other: Any) -> Tensor:
        return self._inplace(self * other)

    def div_(self, other: Any) -> Tensor:
        return self._inplace(self / other)

    def zero_(self) -> Tensor:
        self._value[...] = 0
        return self

    def fill_(self, value: Any) -> Tensor:
        self._value[...] = value
        return self

    def copy_(self, other: Any) -> Tensor:
        return self._inplace(other if isinstance(other, Tensor) else Tensor(other))

    # -- methods -----------------------------------------------------------------------------------
    def view(self, *shape: Any) -> Tensor:
        return op("reshape", self, shape=_resolve_shape(_flat(shape), self.numel()))

    reshape = view

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return op("flatten", self, start_axis=start_dim, end_axis=end_dim)

    def permute(self, *dims: Any) -> Tensor:
        return op("transpose", self, perm=tuple(_flat(dims)))

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        perm = list(range(self.ndim))
        a, b = _axis(dim0, self.ndim), _axis(dim1, self.ndim)
        perm[a], perm[b] = perm[b], perm[a]
        return op("transpose", self, perm=tuple(perm))

    def t(self) -> Tensor:
        return self if self.ndim < 2 else self.transpose(0, 1)

    @property
    def T(self) -> Tensor:  # noqa: N802
        return op("transpose", self, perm=tuple(reversed(range(self.ndim))))

    def unsqueeze(self, dim: int) -> Tensor:
        return op("unsqueeze", self, axes=(dim,))

    def squeeze(self, dim: int | None = None) -> Tensor:
        if dim is not None and self.shape[_axis(dim, self.ndim)] != 1:
            return self  # PyTorch leaves a dim that is not 1
        return op("squeeze", self, axes=None if dim is None else (dim,))

    def expand(self, *shape: Any) -> Tensor:
        sizes = [d if d != -1 else self.shape[i - len(_flat(shape)) + self.ndim]
                 for i, d in enumerate(_flat(shape))]
        return op("broadcast_to", self, shape=tuple(sizes))

    def sum(self, dim: Any = None, keepdim: bool = False) -> Tensor:  # noqa: A003
        x = self.long() if self.dtype == DType.bool else self  # PyTorch counts booleans
        return op("reduce_sum", x, axes=dim, keepdims=keepdim)

    def mean(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return op("reduce_mean", self, axes=dim, keepdims=keepdim)

    def prod(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return op("reduce_prod", self, axes=dim, keepdims=keepdim)

    def max(self, dim: int | None = None, keepdim: bool = False) -> Any:  # noqa: A003
        if dim is None:
            return op("reduce_max", self)
        return MaxResult(op("reduce_max", self, axes=(dim,), keepdims=keepdim),
                         op("argmax", self, axis=dim, keepdims=keepdim))

    def min(self, dim: int | None = None, keepdim: bool = False) -> Any:  # noqa: A003
        if dim is None:
            return op("reduce_min", self)
        return MaxResult(op("reduce_min", self, axes=(dim,), keepdims=keepdim),
                         op("argmin", self, axis=dim, keepdims=keepdim))

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return op("argmax", self, axis=dim, keepdims=keepdim)

    def argmin(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return op("argmin", self, axis=dim, keepdims=keepdim)

    def softmax(self, dim: int) -> Tensor:
        return op("softmax", self, axis=dim)

    def log_softmax(self, dim: int) -> Tensor:
        return op("log_softmax", self, axis=dim)

    def matmul(self, other: Tensor) -> Tensor:
        return binary("matmul", self, other)

    def pow(self, exponent: Any) -> Tensor:
        return self ** exponent

    def __getitem__(self, items: Any) -> Tensor:
        return index(self, items)


def _unary_method(name: str) -> Any:
    return lambda self: op(name, self)


for _name in ("relu", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "abs", "neg", "sin",
              "cos", "floor", "ceil", "sign"):
    setattr(Tensor, _name, _unary_method(_name))


# ---- making and applying ops ---------------------------------------------------------------------
def op(name: str, *inputs: Tensor, **attrs: Any) -> Any:
    """Apply registry op `name` (eagerly, or into the trace); a tuple for multi-output ops."""
    outs = engine.apply(REGISTRY[name], inputs, attrs)
    tensors = tuple(Tensor(value, record=record) if not isinstance(value, Value)
                    else Tensor.traced(value, t) for value, t, record in outs)
    return tensors if len(tensors) != 1 or name == "split" else tensors[0]


def binary(name: str, a: Any, b: Any, floats: bool = False) -> Tensor:
    """A binary op after PyTorch's promotion (Python numbers take the tensor's dtype)."""
    ta = a if isinstance(a, Tensor) else None
    tb = b if isinstance(b, Tensor) else None
    dtype = _result_dtype(ta, tb, a, b)
    if floats and not dtype.is_float:
        dtype = DType.f32
    a = ta.to(dtype) if ta is not None else Tensor(a, dtype=dtype)
    b = tb.to(dtype) if tb is not None else Tensor(b, dtype=dtype)
    return op(name, a, b)


def _result_dtype(ta: Tensor | None, tb: Tensor | None, a: Any, b: Any) -> DType:
    if ta is not None and tb is not None:
        return max(ta.dtype, tb.dtype, key=_PROMOTION.index)
    t, scalar = (ta, b) if ta is not None else (tb, a)
    assert t is not None
    if isinstance(scalar, (float, np.floating)) and not t.dtype.is_float:
        return DType.f32
    return t.dtype


def ones_like_scalar(t: Tensor, value: float) -> Tensor:
    return Tensor(np.asarray(value, t.dtype.np))


def _as_array(value: Any, dtype: DType | None) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value._value
    if dtype is not None:
        return np.asarray(value, dtype.np)
    array = np.asarray(value)
    if array.dtype == np.float64 and not isinstance(value, np.ndarray):
        array = array.astype(np.float32)  # Python floats make float32 tensors, as in PyTorch
    if array.dtype.kind == "i" and array.dtype != np.int32:
        array = array.astype(np.int64)
    try:
        DType.of(array)
    except KeyError:
        raise DlgTypeError(f"dtype {array.dtype} is not supported", engine.caller_span()) from None
    return array


def _axis(dim: int, ndim: int) -> int:
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise DlgShapeError(f"dimension {dim} is out of range for a {ndim}-d tensor",
                            engine.caller_span())
    return dim % max(ndim, 1)


def _flat(items: Sequence[Any]) -> list[Any]:
    if len(items) == 1 and isinstance(items[0], (tuple, list)):
        return list(items[0])
    return [int(i) if isinstance(i, Tensor) else i for i in items]


def _resolve_shape(shape: list[Any], size: Any) -> tuple[Any, ...]:
    """-1 resolved; dims may be symbolic while tracing (x.view(x.size(0), -1))."""
    if sum(1 for d in shape if isinstance(d, int) and d == -1) > 1:
        raise DlgShapeError(f"only one dimension can be -1, got {shape}", engine.caller_span())
    known = numel([d for d in shape if not (isinstance(d, int) and d == -1)])
    rest = exact_div(size, known) if known != 0 else None
    if rest is None or (len([d for d in shape if isinstance(d, int) and d == -1]) == 0
                        and rest != 1):
        raise DlgShapeError(f"shape {[str(d) for d in shape]} is invalid for input of size "
                            f"{size}", engine.caller_span())
    return tuple(rest if isinstance(d, int) and d == -1 else d for d in shape)


def index(x: Tensor, items: Any) -> Tensor:
    """`x[items]` (dlg.functions.indexing), errors located at the user's line."""
    try:
        return indexing.index(_EAGER, x, items if isinstance(items, tuple) else (items,))
    except DlgError as e:
        raise e.with_span(engine.caller_span()) from None


class _EagerFront:
    """The eager door as a `dlg.functions` Front (interim, until the shared one lands)."""

    training = False

    def is_tensor(self, value: Any) -> bool:
        return isinstance(value, Tensor)

    def type_of(self, x: Tensor) -> TensorType:
        return x.type

    def lift(self, value: Any, dtype: DType) -> Tensor:
        return Tensor(value, dtype=dtype)

    def emit(self, opdef: Any, *inputs: Tensor, **attrs: Any) -> Any:
        return op(opdef.name, *inputs, **attrs)


_EAGER = _EagerFront()
