"""The `dlg.Tensor` methods that PyTorch programs call beyond dlg.functions' names: dtype and
device conversions (`to`, `float`, `type_as`, ...), in-place updates (`add_`, `fill_`,
`normal_`, ...), `new_*` creation, the `*_as` family, torch's argument orders for `split` and
`where`, and size queries. Each is attached to `Tensor` by `@method` when `dlg` is imported
(by `functional`). dlg's own code reads a tensor's dtype-and-shape record as `x.tensor_type`, so
that `x.type` is torch's method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dlg import foreign
from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.frontend import engine, init, inplace, selection, versions
from dlg.frontend.device import CPU
from dlg.frontend.factory import check_memory_format, factory, leaf, on_cpu
from dlg.frontend.methods import binary, deprecated_alpha, promote
from dlg.frontend.sampling import TYPE_NAMES
from dlg.frontend.tensor import Tensor, call, checked, foreign_array, index, op
from dlg.functions.args import int_scalar
from dlg.functions.creation import dtype_arg
from dlg.functions.indexing import is_basic
from dlg.functions.shape import split_sizes
from dlg.ir.dtypes import DType, bfloat16
from dlg.ir.ops.elementwise import WHERE


def method(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Attach `fn` to Tensor under its name."""
    setattr(Tensor, fn.__name__, fn)
    return fn


# ---- dtype, device and memory format -----------------------------------------------------------
@method
def to(self: Tensor, *args: Any, dtype: Any = None, device: Any = None, non_blocking: bool = False,
       copy: bool = False, memory_format: Any = None) -> Tensor:
    """x.to(dtype), x.to(other) (other's dtype), x.to("cpu"), x.to("cpu", dtype), each followed
    by torch's optional non_blocking and copy: a new tensor only when the dtype changes (or
    `copy`)."""
    leading = list(args)
    while len(leading) > max(1, len(args) - 2) and isinstance(leading[-1], bool):
        leading.pop()  # torch's positional non_blocking, copy
    flags = args[len(leading):]
    if len(flags) == 2:
        copy = flags[1]
    for a in leading:
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif isinstance(a, str):
            device = a
        else:
            dtype = a
    on_cpu(device)
    check_memory_format(memory_format, self)
    if dtype is None or dtype is self.dtype:  # the common case (binary ops promote with `to`)
        return self.clone() if copy else self
    return op("cast", self, dtype=checked(dtype_arg, dtype, "to(): dtype"))


def type_name_or_cast(self: Tensor, dtype: Any = None, non_blocking: bool = False,
                      **kwargs: Any) -> Any:
    """torch's Tensor.type: with no dtype the tensor's type name (`dlg.FloatTensor`), else a
    cast as `x.to(dtype)` by a dtype, a legacy constructor (`dlg.LongTensor`) or a type name
    (`'torch.DoubleTensor'`): the Quickstart's `(pred.argmax(1) == y).type(torch.float)`."""
    if dtype is None:
        return f"dlg.{TYPE_NAMES[self.dtype]}"
    if isinstance(dtype, str):
        dtype = _dtype_named(dtype)
    return self.to(getattr(dtype, "dtype", dtype), non_blocking=non_blocking, **kwargs)


Tensor.type = type_name_or_cast  # type: ignore[attr-defined]  # not `@method`: `type` stays builtin


def _dtype_named(name: str) -> DType:
    """The dtype of a tensor type name as torch spells it (`torch.FloatTensor`) or dlg does."""
    base = name.removeprefix("torch.").removeprefix("dlg.")
    if base.startswith("cuda."):
        raise DlgValueError(f"x.type({name!r}): dlg's eager tensors live on the cpu; "
                            f"dlg.compile(model, target='cuda') runs a model on a GPU",
                            engine.caller_span())
    for dtype, type_name in TYPE_NAMES.items():
        if base == type_name:
            return dtype
    raise DlgValueError(f"x.type({name!r}): not a tensor type name such as 'torch.FloatTensor' "
                        f"or 'dlg.LongTensor'", engine.caller_span())


@method
def cpu(self: Tensor, memory_format: Any = None) -> Tensor:
    check_memory_format(memory_format, self)
    return self


@method
def cuda(self: Tensor, device: Any = None, non_blocking: bool = False,
         memory_format: Any = None) -> Tensor:
    """Refused, saying where the GPU is: eager tensors live on the CPU."""
    on_cpu("cuda" if device is None else f"cuda:{device}" if isinstance(device, int) else device)
    return self


Tensor.device = property(lambda self: CPU,  # type: ignore[attr-defined]
                         doc="Where the tensor lives: eager dlg runs on the cpu.")


def _conversion(name: str, dtype: DType) -> None:
    def convert(self: Tensor, memory_format: Any = None) -> Tensor:
        check_memory_format(memory_format, self)
        return self.to(dtype)
    convert.__name__ = convert.__qualname__ = name
    convert.__doc__ = f"The tensor as {dtype!r}."
    method(convert)


for _name, _dtype in {"float": DType.f32, "double": DType.f64, "half": DType.f16,
                      "long": DType.i64, "int": DType.i32, "bool": DType.bool,
                      "byte": DType.u8, "char": DType.i8, "short": DType.i16}.items():
    _conversion(_name, _dtype)
_conversion("bfloat16", bfloat16)  # type: ignore[arg-type]  (to() says dlg has none)


@method
def type_as(self: Tensor, other: Tensor) -> Tensor:
    return self.to(other.dtype)


@method
def is_floating_point(self: Tensor) -> bool:
    return self.dtype.is_float


@method
def element_size(self: Tensor) -> int:
    """Bytes per element."""
    return self.dtype.itemsize


@method
def nelement(self: Tensor) -> Any:
    return self.numel()


@method
def contiguous(self: Tensor, memory_format: Any = None) -> Tensor:
    check_memory_format(memory_format, self)
    return self


@method
def is_contiguous(self: Tensor) -> bool:
    """Always: eager tensors are dense arrays, and views are copies."""
    return True


@method
def clone(self: Tensor, memory_format: Any = None) -> Tensor:
    """A copy (a cast to its own dtype, so the gradient flows back)."""
    check_memory_format(memory_format, self)
    return op("cast", self, dtype=self.dtype)


# ---- shapes and functions in PyTorch's argument order ------------------------------------------
@method
def view_as(self: Tensor, other: Tensor) -> Tensor:
    return call("view", self, other.shape)


@method
def reshape_as(self: Tensor, other: Tensor) -> Tensor:
    return call("reshape", self, other.shape)


@method
def expand_as(self: Tensor, other: Tensor) -> Tensor:
    return call("expand", self, other.shape)


@method
def split(self: Tensor, split_size: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """torch's Tensor.split: parts of `split_size` elements, or of each listed size (the
    keyword is `split_size` here, `split_size_or_sections` in torch.split, as in torch)."""
    return checked(split_sizes, self, split_size, dim)


@method
def narrow(self: Tensor, dim: Any, start: Any, length: Any) -> Tensor:
    """torch's narrow: `start` an int or a 0-d integer tensor (its value, read eagerly)."""
    if isinstance(start, Tensor):
        if start.ndim or not start.dtype.is_int:
            raise DlgTypeError(f"narrow: start must be an int or a 0-d integer tensor, got "
                               f"{start.tensor_type}", engine.caller_span())
        start = int(start.item())
    return call("narrow", self, dim, start, length)


def _matrix_transpose(self: Tensor) -> Tensor:
    """The last two axes swapped (x.mT; x.mH too, as dlg's tensors are real)."""
    if self.ndim < 2:
        raise DlgShapeError(f"x.mT needs a matrix or a batch of matrices, got {self.tensor_type}",
                            engine.caller_span())
    return call("transpose", self, -2, -1)


Tensor.mT = Tensor.mH = property(_matrix_transpose)  # type: ignore[attr-defined]


@method
def where(self: Tensor, condition: Any, y: Any) -> Tensor:
    """x.where(condition, y) is dlg.where(condition, x, y)."""
    return call("where", condition, *promote(WHERE, self, y))


def _with_other(name: str, binary_name: str) -> Callable[..., Any]:
    """x.max(other) as torch's binary overload (`maximum`, promoted); x.max() and x.max(dim,
    keepdim) stay the reduction. Also dlg.max/dlg.min."""
    reduction = vars(Tensor)[name]

    def extremum(self: Tensor, dim: Any = None, keepdim: bool = False, other: Any = None) -> Any:
        if isinstance(dim, Tensor):
            dim, other = None, dim
        if other is not None:
            return binary(binary_name, self, other)
        return reduction(self, dim, keepdim)
    extremum.__name__ = extremum.__qualname__ = name
    extremum.__doc__ = reduction.__doc__
    return method(extremum)


max_ = _with_other("max", "maximum")
min_ = _with_other("min", "minimum")


# ---- new tensors like this one -----------------------------------------------------------------
def _new(name: str) -> None:
    """x.new_<name>(size, ..., dtype=x.dtype, device=, requires_grad=, ...): dlg.<name>."""
    make = factory(name)

    def new(self: Tensor, *args: Any, dtype: Any = None, **options: Any) -> Tensor:
        return make(*args, dtype=self.dtype if dtype is None else dtype, **options)
    new.__name__ = new.__qualname__ = f"new_{name}"
    new.__doc__ = f"dlg.{name}(...) of this tensor's dtype unless given."
    method(new)


for _name in ("zeros", "ones", "empty", "full"):
    _new(_name)


@method
def new_tensor(self: Tensor, data: Any, dtype: Any = None, device: Any = None,
               requires_grad: bool = False, layout: Any = None, pin_memory: bool = False
               ) -> Tensor:
    """A tensor of `data` (a copy), of this tensor's dtype unless given."""
    dtype = checked(dtype_arg, dtype or self.dtype, "new_tensor(): dtype")
    value = data.numpy_view() if isinstance(data, Tensor) else data
    return leaf(Tensor.of(np.array(value, dtype.np)), requires_grad, device, layout, pin_memory)


# ---- in place (frontend/inplace.py: recorded, traced, or NumPy writes) --------------------------
_TRUE = Tensor.of(np.array(True))


def traced_fill(self: Tensor, draw: Callable[[Tensor], Tensor], *reads: Any) -> Tensor | None:
    """A random in-place fill of a traced tensor: `draw(self)` (a tensor of rand_like/randn_like,
    drawn at every run of the graph) rebound as self's new value; None for an eager tensor."""
    tracer = engine.current_tracer()
    if tracer is None or not (self.graph_value is not None or tracer.owns(self) or any(
            isinstance(r, Tensor) and r.graph_value is not None for r in reads)):
        return None
    return inplace.update(self, lambda s: draw(s.detach()), *reads)


def writable(self: Tensor) -> np.ndarray:
    """x's array, for a write no gradient sees (random fills): refused where one is recorded."""
    if engine.grad_enabled() and self.requires_grad:
        raise DlgValueError(inplace.LEAF_ERROR if self.is_leaf else
                            "random in-place fills (normal_, uniform_) of a tensor whose "
                            "gradient is recorded; draw a new tensor instead",
                            engine.caller_span())
    versions.written(self)
    return self.numpy_view()


@method
def add_(self: Tensor, other: Any, alpha: float = 1) -> Tensor:
    other, alpha = deprecated_alpha("add_", other, alpha)
    return inplace.update(self, lambda s: s + other * alpha if alpha != 1 else s + other, other)


@method
def sub_(self: Tensor, other: Any, alpha: float = 1) -> Tensor:
    other, alpha = deprecated_alpha("sub_", other, alpha)
    return inplace.update(self, lambda s: s - other * alpha if alpha != 1 else s - other, other)


@method
def mul_(self: Tensor, other: Any) -> Tensor:
    return inplace.update(self, lambda s: s * other, other)


@method
def div_(self: Tensor, other: Any) -> Tensor:
    return inplace.update(self, lambda s: s / other, other)


def _augmented(in_place: Callable[[Tensor, Any], Tensor]) -> Callable[[Tensor, Any], Tensor]:
    """`x += y` and its kin: in place, as in torch (views of x and other names for it see the
    change, a recorded gradient follows it; on a leaf that requires grad, torch's error)."""
    def operator(self: Tensor, other: Any) -> Tensor:
        return in_place(self, other)
    operator.__name__ = f"__i{in_place.__name__.strip('_')}__"
    return operator


Tensor.__iadd__ = _augmented(add_)  # type: ignore[attr-defined]
Tensor.__isub__ = _augmented(sub_)  # type: ignore[attr-defined]
Tensor.__imul__ = _augmented(mul_)  # type: ignore[attr-defined]
Tensor.__itruediv__ = _augmented(div_)  # type: ignore[attr-defined]


def _in_place(name: str) -> None:
    """x.<name>_(...): x.<name>(...) written into x."""
    out_of_place = getattr(Tensor, name)

    def update(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return inplace.update(self, lambda s: out_of_place(s, *args, **kwargs), *args,
                              *kwargs.values())
    update.__name__ = update.__qualname__ = f"{name}_"
    update.__doc__ = f"x.{name}(...) written into x."
    method(update)


for _name in ("scatter", "scatter_add", "scatter_reduce", "masked_fill", "index_fill",
              "index_add", "index_reduce", "nan_to_num", "clamp", "clip", "clamp_min",
              "clamp_max", "relu",
              "sigmoid", "tanh", "exp", "exp2", "log", "log1p", "log2", "log10", "sqrt",
              "rsqrt", "abs", "neg", "reciprocal", "square", "sin", "cos", "tan", "sinh",
              "cosh", "atan", "erf", "floor", "ceil", "round", "trunc", "frac", "sign", "sgn",
              "pow", "fmod", "remainder", "lerp", "hypot", "atan2", "tril", "triu", "cumsum",
              "cumprod", "addmm", "baddbmm", "addcmul", "addcdiv", "logical_not", "eq", "ne",
              "lt", "le", "gt", "ge", "floor_divide", "true_divide", "divide", "xlogy",
              "asin", "acos", "atanh", "asinh", "acosh", "arcsin", "arccos", "arctanh",
              "arcsinh", "arccosh", "sinc", "deg2rad", "rad2deg", "expm1", "erfc", "erfinv",
              "logit", "lgamma", "digamma", "polygamma", "mvlgamma", "i0", "copysign", "ldexp",
              "gcd", "lcm", "absolute", "negative", "fix", "multiply", "subtract", "greater",
              "greater_equal", "less", "less_equal", "not_equal", "renorm", "logical_and",
              "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor",
              "bitwise_not", "bitwise_left_shift", "bitwise_right_shift", "heaviside",
              "nextafter", "addmv", "addr", "addbmm", "arctan", "arctan2", "index_copy",
              "masked_scatter"):
    if hasattr(Tensor, _name):
        _in_place(_name)


@method
def copy_(self: Tensor, other: Any, non_blocking: bool = False) -> Tensor:
    """other's values (broadcast, cast) written into x; other gets x's gradient."""
    src = other if isinstance(other, Tensor) else Tensor.of(other)
    if not _recorded_or_traced(self, src):
        versions.written(self)
        np.copyto(self.numpy_view(), np.broadcast_to(src.numpy_view(), self.shape),
                  casting="unsafe")
        return self
    return inplace.update(self, lambda s: call("where", _TRUE, src, s), src)


@method
def fill_(self: Tensor, value: Any) -> Tensor:
    """Every element set to `value` (a number or a 0-d tensor)."""
    if isinstance(value, Tensor) and value.ndim:
        raise DlgValueError(f"fill_: value must be a number or a 0-d tensor, got "
                            f"{value.tensor_type}", engine.caller_span())
    if self.dtype.is_int and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = checked(lambda _, v: int_scalar(v, self.dtype), value)  # 300 in uint8: refused
    if not _recorded_or_traced(self, value):
        versions.written(self)
        self.numpy_view()[...] = value.item() if isinstance(value, Tensor) else value
        return self
    return inplace.update(self, lambda s: call("where", _TRUE, value, s), value)


@method
def fill_diagonal_(self: Tensor, fill_value: Any, wrap: bool = False) -> Tensor:
    """torch's: the main diagonal (of a matrix, or of a tensor whose dims are all equal) set to
    `fill_value`; with `wrap`, a tall matrix's diagonal starts again after every cols + 1 rows,
    as np.fill_diagonal's. A masked_fill_ over positions compared by arange, so it records a
    gradient and traces, sizes symbolic too."""
    shape = self.shape
    if len(shape) < 2 or len(shape) > 2 and len(set(shape)) > 1:
        raise DlgShapeError(f"fill_diagonal_: the tensor must have 2 dimensions, or more all of "
                            f"equal length, got {self.tensor_type}", engine.caller_span())
    at = [call("arange", self.size(d)).reshape([-1 if k == d else 1 for k in range(len(shape))])
          for d in range(len(shape))]
    if wrap and len(shape) == 2:  # position r * cols + c a multiple of cols + 1: c = r mod it
        mask = (at[1] - at[0]) % (self.size(1) + 1) == 0
    else:
        mask = at[0] == at[1]
        for later in at[2:]:
            mask = mask & (at[0] == later)
    return self.masked_fill_(mask, fill_value)


def _recorded_or_traced(x: Tensor, value: Any) -> bool:
    """Whether writing `value` into x is more than a NumPy write."""
    return engine.current_tracer() is not None or engine.grad_enabled() and (
        x.requires_grad or isinstance(value, Tensor) and value.requires_grad)


@method
def zero_(self: Tensor) -> Tensor:
    return fill_(self, 0)


for _selecting in (selection.nonzero, selection.argwhere, selection.masked_select,
                   selection.unique, selection.unique_consecutive, selection.bincount):
    method(_selecting)


@method
def __getitem__(self: Tensor, items: Any) -> Tensor:
    """`x[items]`: dlg.functions' indexing, boolean masks with data read as the positions of
    their true elements (frontend/selection.py)."""
    items = items if isinstance(items, tuple) else (items,)
    if all(map(is_basic, items)):  # ints and slices: no masks or foreign arrays to read
        return index(self, items)
    items = _own_items(items)
    return index(self, selection.mask_positions(items, self.tensor_type.shape))


def _own_items(items: tuple[Any, ...]) -> tuple[Any, ...]:
    """Index items with another library's arrays (a torch.randperm's) as NumPy's."""
    return tuple(foreign_array(i) if foreign.is_foreign(i) else i for i in items)


@method
def __setitem__(self: Tensor, items: Any, value: Any) -> None:
    """`x[items] = value` (torch's index_put_): tensor indices and masks as in NumPy, the value
    broadcast and cast to x's dtype; a NumPy assignment where no gradient is recorded, else
    `inplace.put` (value gets the gradient of what it fills), traced too."""
    _refuse_byte_masks(items if isinstance(items, tuple) else (items,))
    if foreign.is_foreign(value):  # a torch tensor's values
        value = foreign_array(value)
    items = _own_items(items) if isinstance(items, tuple) else _own_items((items,))[0]
    source = value if isinstance(value, Tensor) else None
    if _recorded_or_traced(self, value):
        inplace.update(self, lambda s: inplace.put(s, items, value), value,
                       *(items if isinstance(items, tuple) else (items,)))
        return
    target = self.numpy_view()
    key = tuple(_numpy_index(k) for k in items) if isinstance(items, tuple) else _numpy_index(
        items)
    versions.written(self)
    try:
        target[key] = source.numpy_view() if source is not None else value
    except (IndexError, ValueError, TypeError) as e:
        raise DlgValueError(f"x[...] = value: {e} (x: {self.tensor_type})",
                            engine.caller_span()) from None


def _refuse_byte_masks(items: tuple[Any, ...]) -> None:
    """torch refuses a uint8 mask in an assignment (x[m] reads one as a bool mask); NumPy would
    take its bytes as positions."""
    for k in items:
        if isinstance(k, (Tensor, np.ndarray)) and k.dtype in (DType.u8, np.uint8):
            raise DlgTypeError("x[mask] = value with a uint8 mask: torch assigns through bool "
                               "masks only; use mask.bool() (or mask != 0)", engine.caller_span())


def _numpy_index(item: Any) -> Any:
    """An index item as NumPy reads it: tensors as their arrays."""
    return item.numpy_view() if isinstance(item, Tensor) else item


@method
def normal_(self: Tensor, mean: float = 0.0, std: float = 1.0, *,
            generator: Any = None) -> Tensor:
    """Samples of N(mean, std^2) from dlg's generator (dlg.manual_seed), or `generator`."""
    with engine.drawing_from(generator):
        traced = traced_fill(self, lambda s: call("randn_like", s) * std + mean)
    if traced is not None:
        return traced
    writable(self)
    with engine.drawing_from(generator):
        return init.normal_(self, mean, std)


@method
def uniform_(self: Tensor, a: float = 0.0, b: float = 1.0, *,
             generator: Any = None) -> Tensor:
    """Samples of U(a, b) from dlg's generator, or `generator`."""
    with engine.drawing_from(generator):
        traced = traced_fill(self, lambda s: call("rand_like", s) * (b - a) + a)
    if traced is not None:
        return traced
    writable(self)
    with engine.drawing_from(generator):
        return init.uniform_(self, a, b)
