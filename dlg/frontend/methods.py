"""The operators and methods of `dlg.Tensor` that are user-facing functions of `dlg.functions`:
every elementwise op of the registry (`x.exp()`, `x.maximum(y)`), the reductions and shape
functions (`x.sum(dim)`, `x.softmax(dim)`, `x.view(...)`), and `+ - * / ** @ == < & | << ~`...
Binary ones promote first as PyTorch does (`promote`), a frontend choice: .dlg refuses an int
tensor meeting a float instead. Imported by `dlg.frontend.functional`, so every `import dlg`
attaches them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.amp import _user_stacklevel
from dlg.frontend.engine import caller_span
from dlg.frontend.tensor import (
    DIRECT,
    Tensor,
    all_tensors,
    apply,
    as_argument,
    call,
    checked,
    foreign_tensors,
)
from dlg.functions.args import int_scalar, is_number, is_static
from dlg.functions.elementwise import ELEMENTWISE, takes_ints
from dlg.ir.dtypes import DType, promote_types
from dlg.ir.ops import REGISTRY
from dlg.ir.ops.opdef import OpDef, Trait
from dlg.ir.shapes import Sym
from dlg.ir.types import TensorType


def common_dtype(dtypes: Any) -> DType:
    """torch.promote_types over `dtypes` (at least one): uint8 and int8 meet at int16."""
    out, *rest = dtypes
    for d in rest:
        out = promote_types(out, d)
    return out


def binary(name: str, a: Any, b: Any, **attrs: Any) -> Tensor:
    """A binary function after PyTorch's promotion: tensors go to the common dtype (f32 for an
    op that takes only floats, such as true division); Python numbers stay weak."""
    opdef = REGISTRY[name]
    same = None if attrs else _floats_already(a, b)
    if same is not None:  # the common case: neither the integer power nor bools below
        return apply(opdef, *same) if name in DIRECT else call(name, *same)
    if name == "pow" and (whole := _int_pow(a, b)) is not None:
        return whole
    if name in _BOOLEAN and _both_bool(a, b):
        return _boolean(name, a, b)
    same = None if attrs else _ints_already(opdef, a, b)
    return call(name, *(same or promote(opdef, a, b)), **attrs)


_BOOLEAN = {"add": "logical_or", "mul": "logical_and", "sub": None}


def _both_bool(a: Any, b: Any) -> bool:
    kinds = [v.dtype == DType.bool if isinstance(v, Tensor) else isinstance(v, (bool, np.bool_))
             for v in (a, b)]
    return all(kinds) and any(isinstance(v, Tensor) for v in (a, b))


def _boolean(name: str, a: Any, b: Any) -> Tensor:
    """Two bools add as `or` and multiply as `and`, staying bool (torch's rule); subtracting
    them is torch's error."""
    if _BOOLEAN[name] is None:
        raise DlgTypeError("subtracting two bool tensors is not supported (torch's rule); use "
                           "logical_xor(a, b) or a ^ b", caller_span())
    return call(_BOOLEAN[name], *(v if isinstance(v, Tensor) else Tensor.of(np.bool_(v))
                                  for v in (a, b)))


def _int_pow(a: Any, b: Any) -> Tensor | None:
    """An integer tensor to an integer power stays an integer tensor, as in torch (3 ** 2 is 9
    in i64): computed in f64, exact below 2^53, then cast back; None unless both are ints."""
    tensors = [v.dtype for v in (a, b) if isinstance(v, Tensor)]
    if not tensors or not all(d.is_int for d in tensors) or not all(
            isinstance(v, Tensor) or (is_number(v) and isinstance(v, (int, np.integer))
                                      and not isinstance(v, bool)) for v in (a, b)):
        return None
    if isinstance(b, (int, np.integer)) and b < 0:
        raise DlgTypeError("integers to negative integer powers are not allowed (torch's rule); "
                           "use a float tensor", caller_span())
    wide = [v.to(DType.f64) if isinstance(v, Tensor) else float(v) for v in (a, b)]
    return call("pow", *wide).to(common_dtype(tensors))


def _floats_already(a: Any, b: Any) -> tuple[Tensor, Tensor] | None:
    """(a, b) when `promote` would change nothing but lift a Python number: two float tensors
    of one dtype, a float tensor meeting an int or a float (the common cases, so that an
    operator skips its general rules); None otherwise."""
    if isinstance(a, Tensor):
        dtype = a.tensor_type.dtype
        if dtype not in _FLOATS:
            return None
        if isinstance(b, Tensor):
            return (a, b) if b.tensor_type.dtype is dtype else None
        return (a, _scalar(b, dtype)) if b.__class__ is float or b.__class__ is int else None
    if isinstance(b, Tensor) and (a.__class__ is float or a.__class__ is int):
        dtype = b.tensor_type.dtype
        return (_scalar(a, dtype), b) if dtype in _FLOATS else None
    return None


def _ints_already(opdef: OpDef, a: Any, b: Any) -> tuple[Tensor, Tensor] | None:
    """(a, b) when both are tensors of one dtype that the op takes (integers of one dtype)."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        dtype = a.tensor_type.dtype
        return (a, b) if b.tensor_type.dtype is dtype and takes_ints(opdef) else None
    return None


_FLOATS = frozenset(d for d in DType if d.is_float)
SCALARS_KEPT = 1024  # lifted Python numbers kept (a loop's `x * 0.5`, `1 - p` lift the same ones)
_scalars: dict[tuple[type, float, DType], Tensor] = {}


def _scalar(value: float, dtype: DType) -> Tensor:
    """A Python number as a 0-d tensor of `dtype`, made once per (class, value, dtype): nothing
    writes into a lifted number, and making one cost a fifth of a small op."""
    key = (value.__class__, value, dtype)
    found = _scalars.get(key)
    if found is None:
        if len(_scalars) >= SCALARS_KEPT:
            _scalars.clear()
        found = _scalars[key] = Tensor.of(np.asarray(value, dtype.np))
    return found


def binary_function(name: str, spelling: str | None = None) -> Callable[..., Tensor]:
    """`dlg.maximum(a, b)` and the like: `binary` under the op's name (or another spelling of
    it, `dlg.greater`)."""
    def fn(a: Any, b: Any, **attrs: Any) -> Tensor:
        return binary(name, a, b, **attrs)
    fn.__name__ = fn.__qualname__ = spelling or name
    return fn


# torch's other spellings of binary ops, promoted as the ops are
BINARY_ALIASES = {"multiply": "mul", "subtract": "sub", "greater": "gt", "greater_equal": "ge",
                  "less": "lt", "less_equal": "le", "not_equal": "ne"}


def lift(value: Any) -> Tensor:
    """A value as a tensor; a symbolic size (`x.shape[0]` while tracing) as the graph's i64
    scalar of it, as torch's tracers keep a size an int that follows the batch."""
    if isinstance(value, Sym):
        tracer = engine.current_tracer()
        if tracer is None:
            raise DlgValueError(f"the symbolic size {value} is used outside its dlg.trace call",
                                caller_span())
        return Tensor.traced(tracer.dim_value(value), TensorType(DType.i64, ()))
    return Tensor.of(value)


def promote(opdef: OpDef, *values: Any) -> list[Any]:
    """`values` at PyTorch's common dtype: tensors cast, numbers (and arrays) left to meet
    them; a number of a higher kind than the tensors (a float meeting ints) lifts their dtype
    to that kind's default."""
    values = [v if isinstance(v, Tensor) or is_static(v) else lift(v) for v in values]
    tensors = [v for v in values if isinstance(v, Tensor)]
    if not tensors:
        return values
    dtype = _tensors_dtype(tensors)
    for v in values:
        kind = 2 if isinstance(v, (float, np.floating)) else 1 if is_number(v) else 0
        if kind > dtype.kind:
            dtype = (DType.bool, DType.i64, DType.f32)[kind]
    if not dtype.is_inexact and not takes_ints(opdef):
        dtype = DType.f32
    return [v.to(dtype) if isinstance(v, Tensor) else
            int(v) if isinstance(v, (bool, np.bool_)) and dtype != DType.bool else v
            for v in values]


def _tensors_dtype(tensors: list[Tensor]) -> DType:
    """torch's rule for tensors: those with dims decide; a 0-d one counts only when its kind
    (bool < int < float) is above theirs (f32[2] + f64[] is f32, i32[2] + f64[] is f64)."""
    shaped = [t.dtype for t in tensors if t.tensor_type.rank]
    scalars = [t.dtype for t in tensors if not t.tensor_type.rank]
    dtype = common_dtype(shaped or scalars)
    higher = [d for d in scalars if d.kind > dtype.kind]
    if any(d.is_complex for d in higher):  # f64[2] * 1j is complex128, i64[2] * 1j complex64
        return dtype.to_complex if dtype.is_float else DType.c64
    return common_dtype(higher) if higher else dtype


def joined(name: str) -> Callable[..., Tensor]:
    """torch.cat/stack: the tensors at their common dtype first (an int tensor joining floats
    becomes float), as torch promotes them."""
    def join(tensors: Any, dim: int = 0, *, axis: int | None = None) -> Tensor:
        tensors = foreign_tensors(tensors)  # torch tensors among them: dlg's
        parts = tensors
        if (isinstance(tensors, (list, tuple)) and tensors and all_tensors(tensors)
                and len({t.tensor_type.dtype for t in tensors}) > 1):
            dtype = common_dtype(t.dtype for t in tensors)
            parts = [t if t.dtype is dtype else t.to(dtype) for t in tensors]
        return call(name, parts, dim if axis is None else axis)
    join.__name__ = join.__qualname__ = name
    return join


def _method(name: str) -> Callable[..., Any]:
    def method(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        return call(name, self, *args, **kwargs)
    method.__name__ = name
    return method


def _binary_method(name: str, reflected: bool = False) -> Callable[..., Tensor]:
    if reflected:
        return lambda self, other: binary(name, other, self)
    return lambda self, other: binary(name, self, other)


for _name in ("view", "reshape", "permute", "transpose", "unsqueeze", "squeeze", "expand", "sum",
              "mean", "prod", "argmax", "argmin", "softmax", "log_softmax", "chunk", "tensor_split",
              "unbind", "narrow", "movedim", "swapaxes", "swapdims", "unflatten", "repeat", "tile",
              "masked_fill", "tril", "triu",
              "sort", "argsort", "msort", "topk", "kthvalue", "cumsum", "cumprod", "flip",
              *(n for n, f in ELEMENTWISE.items() if Trait.UNARY in REGISTRY[n].traits)):
    if _name not in vars(Tensor):
        setattr(Tensor, _name, _method(_name))
for _name in ("gather", "scatter", "scatter_add", "scatter_reduce", "index_select", "index_add",
              "index_fill", "index_reduce", "take_along_dim", "select"):
    setattr(Tensor, _name, _method(_name))
for _name in (*(n for n in ELEMENTWISE if Trait.BINARY in REGISTRY[n].traits), "matmul"):
    if _name not in vars(Tensor):
        setattr(Tensor, _name, _binary_method(_name))
for _dunder, _name in {"add": "add", "sub": "sub", "mul": "mul", "truediv": "div",
                       "pow": "pow", "matmul": "matmul"}.items():
    setattr(Tensor, f"__{_dunder}__", _binary_method(_name))
    setattr(Tensor, f"__r{_dunder}__", _binary_method(_name, reflected=True))
for _dunder, _name in {"eq": "eq", "ne": "ne", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge"
                       }.items():
    setattr(Tensor, f"__{_dunder}__", _binary_method(_name))
Tensor.__neg__ = _method("neg")  # type: ignore[method-assign]
Tensor.__abs__ = _method("abs")  # type: ignore[method-assign]
Tensor.logical_xor = _method("logical_xor")  # type: ignore[attr-defined]


# NumPy's ufuncs that dlg computes itself when a tensor is among their operands (NumPy's name:
# dlg's), so `np.float32(0.5) * t` and `np.exp(t)` are tensors that keep their gradient
_NUMPY_BINARY = {"add": "add", "subtract": "sub", "multiply": "mul", "true_divide": "div",
                 "divide": "div", "power": "pow", "matmul": "matmul", "maximum": "maximum",
                 "minimum": "minimum", "greater": "gt", "greater_equal": "ge", "less": "lt",
                 "less_equal": "le", "equal": "eq", "not_equal": "ne",
                 "floor_divide": "floor_divide", "remainder": "remainder",
                 "bitwise_and": "bitwise_and", "bitwise_or": "bitwise_or",
                 "bitwise_xor": "bitwise_xor", "left_shift": "bitwise_left_shift",
                 "right_shift": "bitwise_right_shift"}
_NUMPY_UNARY = {"negative": "neg", "absolute": "abs", "arctan": "atan", "invert": "bitwise_not"}


def _array_ufunc(self: Tensor, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
    """A NumPy ufunc meeting a tensor: dlg's op of that name where there is one (a Python
    operator with a NumPy scalar on the left lands here), else NumPy's on the arrays."""
    name = ufunc.__name__
    if method == "__call__" and not kwargs:
        if len(inputs) == 2 and name in _NUMPY_BINARY:
            return binary(_NUMPY_BINARY[name], *inputs)
        unary = _NUMPY_UNARY.get(name, name)
        if len(inputs) == 1 and unary in ELEMENTWISE and Trait.UNARY in REGISTRY[unary].traits:
            return call(unary, *inputs)
    arrays = [v.numpy_view() if isinstance(v, Tensor) else v for v in inputs]
    return getattr(ufunc, method)(*arrays, **kwargs)


Tensor.__array_ufunc__ = _array_ufunc  # type: ignore[attr-defined]


def _bitwise_operator(logical: str, bitwise: str, reflected: bool = False
                      ) -> Callable[[Tensor, Any], Tensor]:
    """& | ^ as in PyTorch: on bools the logical function, on integers (promoted first) the
    bitwise one; floats are refused by the op, as torch has no bitwise float."""
    def operator(self: Tensor, other: Any) -> Tensor:
        a, b = (other, self) if reflected else (self, other)
        if _both_bool(a, b):
            return call(logical, a, b)
        return binary(bitwise, a, b)
    operator.__name__ = bitwise
    return operator


def _invert(self: Tensor) -> Tensor:
    """~x: logical_not on bools, bitwise_not on integers."""
    return call("logical_not" if self.dtype == DType.bool else "bitwise_not", self)


for _dunder, _logical in (("and", "logical_and"), ("or", "logical_or"), ("xor", "logical_xor")):
    setattr(Tensor, f"__{_dunder}__", _bitwise_operator(_logical, f"bitwise_{_dunder}"))
    setattr(Tensor, f"__r{_dunder}__", _bitwise_operator(_logical, f"bitwise_{_dunder}", True))
Tensor.__invert__ = _invert  # type: ignore[attr-defined]
for _dunder, _name in (("lshift", "bitwise_left_shift"), ("rshift", "bitwise_right_shift")):
    setattr(Tensor, f"__{_dunder}__", _binary_method(_name))
    setattr(Tensor, f"__r{_dunder}__", _binary_method(_name, reflected=True))


# ---- math: reductions, products, PyTorch's arithmetic arguments (dlg/functions) ---------------
for _name in ("amax", "amin", "std", "var", "norm", "all", "any", "logsumexp", "count_nonzero",
              "mm", "bmm", "mv", "dot", "outer", "isclose"):
    setattr(Tensor, _name, _method(_name))


def deprecated_alpha(name: str, other: Any, alpha: Any) -> tuple[Any, Any]:
    """(other, alpha), taking torch's deprecated overload `x.add_(Number alpha, Tensor other)`
    (old tutorials' `p.data.add_(-learning_rate, p.grad.data)`) with torch's warning."""
    if isinstance(alpha, Tensor) and is_number(other):
        warnings.warn(f"This overload of {name} is deprecated:\n\t{name}(Number alpha, Tensor "
                      f"other)\nConsider using one of the following signatures instead:\n\t"
                      f"{name}(Tensor other, *, Number alpha = 1)", UserWarning,
                      stacklevel=_user_stacklevel())
        return alpha, other
    return other, alpha


def _alpha_method(name: str) -> Callable[..., Tensor]:
    def method(self: Tensor, other: Any, alpha: Any = 1) -> Tensor:
        other, alpha = deprecated_alpha(name, other, alpha)
        return binary(name, self, other, alpha=alpha)
    method.__name__ = name
    return method


def divide(a: Any, b: Any, rounding_mode: str | None = None) -> Tensor:
    """torch.div: promoted as PyTorch does (true division makes floats of ints, a rounded one
    keeps them)."""
    opdef = REGISTRY["div" if rounding_mode is None else "floor_divide"]
    return call("div", *promote(opdef, a, b), rounding_mode=rounding_mode)


def clamp(x: Any, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
    """torch.clamp: x and tensor or number bounds promoted to one dtype first."""
    given = [v for v in (min, max) if v is not None]
    if isinstance(x, Tensor) and x.dtype.is_int:  # torch checks int bounds against x's range
        for v in given:
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                checked(lambda _, v: int_scalar(v, x.dtype), v)
    x, *bounds = promote(REGISTRY["maximum"], x, *given)
    rest = iter(bounds)
    low = None if min is None else next(rest)
    return call("clamp", x, low, None if max is None else next(rest))


def mean(x: Any, *args: Any, dtype: DType | None = None, **kwargs: Any) -> Tensor:
    """torch.mean refuses integer and bool tensors unless `dtype` says what to average in
    (.dlg's mean averages them as f32, as the accuracy metric of a train section does)."""
    if isinstance(x, Tensor) and dtype is None and not x.dtype.is_inexact:
        raise DlgTypeError(f"mean: the input must be a float tensor (or give dtype=), got "
                           f"{x.tensor_type}", caller_span())
    return call("mean", x, *args, dtype=dtype, **kwargs)


def python_bool(name: str) -> Callable[..., bool]:
    """allclose and equal give a Python bool, as in PyTorch."""
    def fn(a: Any, b: Any, *args: Any, **kwargs: Any) -> bool:
        return bool(call(name, a, b, *args, **kwargs))
    fn.__name__ = fn.__qualname__ = name
    return fn


def _clamp_(self: Tensor, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
    return self.copy_(clamp(self, min, max))


Tensor.add, Tensor.sub = _alpha_method("add"), _alpha_method("sub")  # type: ignore[method-assign]
Tensor.div = Tensor.divide = divide  # type: ignore[method-assign]
Tensor.true_divide = lambda self, other: divide(self, other)  # type: ignore[attr-defined]
Tensor.clamp = Tensor.clip = clamp  # type: ignore[attr-defined]
Tensor.clamp_ = Tensor.clip_ = _clamp_  # type: ignore[attr-defined]
Tensor.mean = mean  # type: ignore[method-assign]
Tensor.allclose, Tensor.equal = python_bool("allclose"), python_bool("equal")  # type: ignore
for _dunder, _name in {"floordiv": "floor_divide", "mod": "remainder"}.items():
    setattr(Tensor, f"__{_dunder}__", _binary_method(_name))
    setattr(Tensor, f"__r{_dunder}__", _binary_method(_name, reflected=True))


# ---- more of torch's math (dlg/functions: arrange, diagonals, products, pointwise, statistics) --
def repeat_interleave(x: Any, repeats: Any, dim: int | None = None, *,
                      output_size: int | None = None) -> Tensor:
    """torch.repeat_interleave: a tensor of repeats is read here, eagerly (its values shape
    the result), and passed on as a list."""
    repeats = as_argument(repeats)  # a NumPy or torch array of repeats as a tensor
    if isinstance(repeats, Tensor):
        if repeats.graph_value is not None:
            raise DlgValueError("repeat_interleave: a tensor of repeats shapes the result, so "
                                "it is read eagerly; while tracing, give repeats as a list of "
                                "ints", caller_span())
        repeats = repeats.tolist()
    return call("repeat_interleave", x, repeats, dim, output_size=output_size)


for _name in ("roll", "rot90", "diff", "diag", "diagonal", "diag_embed", "addmm",
              "addmv", "baddbmm", "addbmm", "kron", "cross", "lerp", "hypot", "atan2", "arctan2",
              "arctan", "logaddexp", "logaddexp2", "xlogy", "heaviside", "signbit", "sgn",
              "clamp_min", "clamp_max", "float_power", "nansum", "nanmean", "median", "cummax",
              "cummin", "nanmedian", "diagflat", "nan_to_num", "trace", "aminmax", "logcumsumexp",
              "histc", "histogram", "tan", "asin", "acos", "atanh", "asinh", "acosh", "arcsin",
              "arccos", "arctanh", "arcsinh", "arccosh", "sinc", "deg2rad", "rad2deg", "expm1",
              "erfc", "erfinv", "logit", "lgamma", "digamma", "mvlgamma", "i0", "copysign", "fmax",
              "fmin", "ldexp", "isposinf", "isneginf", "isreal", "positive", "addcmul",
              "addcdiv", "gcd", "lcm", "absolute", "negative", "fix", "moveaxis", "ravel",
              "fliplr", "flipud", "hsplit", "vsplit", "dsplit", "split_with_sizes",
              "broadcast_to", "addr", "ger", "inner", "vdot", "dist", "select_scatter",
              "slice_scatter", "diagonal_scatter", "index_copy", "masked_scatter", "quantile",
              "nanquantile", "mode", "cov", "corrcoef", "frexp", "nextafter", "renorm"):
    setattr(Tensor, _name, _method(_name))
Tensor.repeat_interleave = repeat_interleave  # type: ignore[attr-defined]
for _alias, _name in BINARY_ALIASES.items():
    setattr(Tensor, _alias, getattr(Tensor, _name))


def polygamma(self: Tensor, n: int) -> Tensor:
    """x.polygamma(n) is torch.polygamma(n, x)."""
    return call("polygamma", n, self)


Tensor.polygamma = polygamma  # type: ignore[attr-defined]


def unfold(self: Tensor, dimension: int, size: int, step: int) -> Tensor:
    """torch's Tensor.unfold: every window of `size` elements along `dimension`, `step` apart,
    as a new last axis ([B, C, 16] -> unfold(2, 4, 4) -> [B, C, 4, 4]; ViT's patchify). Not
    F.unfold (im2col). A composite: index_select of the windows' positions, then reshape."""
    span = caller_span()
    for v, what in ((dimension, "dimension"), (size, "size"), (step, "step")):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise DlgTypeError(f"unfold: {what} must be an int, got {type(v).__name__}", span)
    rank = max(self.ndim, 1)
    if not -rank <= dimension < rank:
        raise DlgShapeError(f"unfold: dimension {dimension} is out of range for a tensor of "
                            f"{self.ndim} dims", span)
    x = self.reshape(1) if self.ndim == 0 else self
    axis = dimension % rank
    length = x.shape[axis]
    if not isinstance(length, int):
        raise DlgShapeError(f"unfold: dimension {dimension} has the symbolic size {length}; "
                            f"the windows need a fixed size", span)
    if step <= 0:
        raise DlgValueError(f"unfold: step is {step} but must be > 0", span)
    if not 0 <= size <= length:
        raise DlgValueError(f"unfold: maximum size for tensor at dimension {axis} is {length} "
                            f"but size is {size}", span)
    count = (length - size) // step + 1
    positions = (np.arange(count)[:, None] * step + np.arange(size)).reshape(-1)
    windows = call("index_select", x, axis, Tensor.of(positions.astype(np.int64)))
    out = call("movedim", call("unflatten", windows, axis, (count, size)), axis + 1, -1)
    return out.reshape(-1) if self.ndim == 0 else out  # a 0-d tensor's windows are one axis


Tensor.unfold = unfold  # type: ignore[attr-defined]
