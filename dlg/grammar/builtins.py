"""The functions of the .dlg language, with PyTorch-style names and keywords.

Each builtin takes the elaborator `E` and the evaluated arguments. On tensors it emits IR through
the op library; on static values (dims, attributes) the math ones compute in Python, so
`1 / sqrt(in_features)` is a number and `sqrt(x)` is a node.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.grammar.values import Builtin, Tensor, describe
from dlg.ir.dtypes import DType
from dlg.ir.shapes import Dim, Sym, exact_div, numel
from dlg.ir.train_spec import (
    OPTIMIZER_DEFAULTS,
    SCHEDULE_DEFAULTS,
    make_optimizer,
    make_schedule,
)

BUILTINS: dict[str, Any] = {d.value: d for d in DType}


def builtin(name: str, *aliases: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        for n in (name, *aliases):
            BUILTINS[n] = Builtin(n, fn)
        return fn
    return register


def _tensor(value: Any, what: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise DlgTypeError(f"{what} must be a tensor, got {describe(value)}")
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _axes(axis: Any) -> tuple[int, ...] | None:
    if axis is None:
        return None
    if isinstance(axis, int) and not isinstance(axis, bool):
        return (axis,)
    if isinstance(axis, tuple) and all(isinstance(a, int) and not isinstance(a, bool)
                                       for a in axis):
        return axis
    raise DlgTypeError(f"axis must be an int or a tuple of ints, got {describe(axis)}")


def _shape_arg(shape: tuple[Any, ...]) -> tuple[Dim, ...]:
    """zeros(2, 3) and zeros((2, 3)) both mean shape (2, 3)."""
    if len(shape) == 1 and isinstance(shape[0], tuple):
        shape = shape[0]
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, Sym)):
            raise DlgTypeError(f"a shape holds ints or dims, got {describe(d)}")
    return tuple(shape)


# ---- elementwise math: static numbers compute in Python, tensors emit ops ----------------------
def _unary(name: str, op: str, static: Callable[[float], float] | None) -> None:
    def fn(E: Any, x: Any) -> Any:
        if _is_number(x) and static is not None:
            try:
                return static(x)
            except (ValueError, OverflowError) as err:
                raise DlgTypeError(f"{name}({x}): {err}") from None
        return E.emit(op, _tensor(x, f"{name}'s argument"))
    BUILTINS[name] = Builtin(name, fn)


for _name, _static in [("abs", abs), ("exp", math.exp), ("log", math.log), ("sqrt", math.sqrt),
                       ("rsqrt", lambda v: 1 / math.sqrt(v)), ("tanh", math.tanh),
                       ("sin", math.sin), ("cos", math.cos), ("floor", math.floor),
                       ("ceil", math.ceil), ("sigmoid", lambda v: 1 / (1 + math.exp(-v))),
                       ("relu", lambda v: max(v, 0)), ("sign", lambda v: (v > 0) - (v < 0)),
                       ("neg", lambda v: -v), ("logical_not", None)]:
    _unary(_name, _name, _static)


@builtin("gelu")
def _gelu(E: Any, x: Any, approximate: str = "none") -> Tensor:
    return E.emit("gelu", _tensor(x, "gelu's argument"), approximate=approximate)


@builtin("leaky_relu")
def _leaky_relu(E: Any, x: Any, negative_slope: float = 0.01) -> Tensor:
    return E.emit("leaky_relu", _tensor(x, "leaky_relu's argument"), negative_slope=negative_slope)


def _binary(name: str, op: str) -> None:
    def fn(E: Any, x: Any, y: Any) -> Tensor:
        like = x if isinstance(x, Tensor) else _tensor(y, f"{name}'s arguments")
        return E.emit(op, E.as_tensor(x, like), E.as_tensor(y, like))
    BUILTINS[name] = Builtin(name, fn)


for _name in ("maximum", "minimum", "pow", "logical_and", "logical_or", "matmul", "add", "sub",
              "mul", "div", "eq", "ne", "lt", "le", "gt", "ge"):
    _binary(_name, _name)


@builtin("where")
def _where(E: Any, cond: Any, x: Any, y: Any) -> Tensor:
    like = x if isinstance(x, Tensor) else y if isinstance(y, Tensor) else None
    if like is None:
        raise DlgTypeError("where(cond, x, y) needs x or y to be a tensor")
    return E.emit("where", _tensor(cond, "where's condition"), E.as_tensor(x, like),
                  E.as_tensor(y, like))


@builtin("cast")
def _cast(E: Any, x: Any, dtype: Any) -> Tensor:
    if not isinstance(dtype, DType):
        raise DlgTypeError(f"cast needs a dtype such as f32, got {describe(dtype)}")
    return E.emit("cast", _tensor(x, "cast's argument"), dtype=dtype)


# ---- reductions -----------------------------------------------------------------------------
def _reduction(name: str, op: str, static: Callable[..., Any] | None) -> None:
    def fn(E: Any, x: Any, *rest: Any, axis: Any = None, keepdims: bool = False) -> Any:
        if not isinstance(x, Tensor):
            if static is None or isinstance(x, bool):
                raise DlgTypeError(f"{name} needs a tensor, got {describe(x)}")
            return static(x, *rest) if rest else static(x)
        if rest:
            raise DlgTypeError(f"{name}(x, axis=...) takes the axis as a keyword")
        return E.emit(op, x, axes=_axes(axis), keepdims=keepdims)
    BUILTINS[name] = Builtin(name, fn)


_reduction("sum", "reduce_sum", sum)
_reduction("mean", "reduce_mean", None)
_reduction("max", "reduce_max", max)
_reduction("min", "reduce_min", min)
_reduction("prod", "reduce_prod", math.prod)


def _arg(op: str) -> None:
    def fn(E: Any, x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return E.emit(op, _tensor(x, f"{op}'s argument"), axis=axis, keepdims=keepdims)
    BUILTINS[op] = Builtin(op, fn)


_arg("argmax")
_arg("argmin")


@builtin("logsumexp")
def _logsumexp(E: Any, x: Any, axis: Any = -1, keepdims: bool = False) -> Tensor:
    return E.emit("logsumexp", _tensor(x, "logsumexp's argument"), axes=_axes(axis),
                  keepdims=keepdims)


# ---- shapes and movement ---------------------------------------------------------------------
@builtin("shape")
def _shape(E: Any, x: Any, axis: int | None = None) -> Any:
    dims = _tensor(x, "shape's argument").type.shape
    return dims if axis is None else dims[axis]


@builtin("reshape", "view")
def _reshape(E: Any, x: Any, *shape: Any) -> Tensor:
    x = _tensor(x, "reshape's argument")
    dims = list(_shape_arg(shape) if shape else ())
    holes = [i for i, d in enumerate(dims) if d == -1]
    if len(holes) > 1:
        raise DlgShapeError("reshape: only one dim can be -1")
    if holes:
        known = numel([d for d in dims if d != -1])
        rest = exact_div(numel(x.type.shape), known) if known != 0 else None
        if rest is None:
            raise DlgShapeError(f"reshape: cannot reshape {x.type} to "
                                f"[{', '.join(str(d) for d in dims)}]: {numel(x.type.shape)} "
                                f"elements do not divide by {known}")
        dims[holes[0]] = rest
    for d in dims:
        if isinstance(d, int) and d < 0:
            raise DlgShapeError(f"reshape: bad dim {d}")
    return E.emit("reshape", x, shape=tuple(dims))


@builtin("flatten")
def _flatten(E: Any, x: Any, start_axis: int = 1, end_axis: int = -1) -> Tensor:
    return E.emit("flatten", _tensor(x, "flatten's argument"), start_axis=start_axis,
                  end_axis=end_axis)


@builtin("permute")
def _permute(E: Any, x: Any, *dims: Any) -> Tensor:
    perm = dims[0] if len(dims) == 1 and isinstance(dims[0], tuple) else dims
    return E.emit("transpose", _tensor(x, "permute's argument"), perm=tuple(perm))


@builtin("transpose")
def _transpose(E: Any, x: Any, dim0: int = -2, dim1: int = -1) -> Tensor:
    x = _tensor(x, "transpose's argument")
    rank = x.type.rank
    perm = list(range(rank))
    for d in (dim0, dim1):
        if not -rank <= d < rank:
            raise DlgShapeError(f"transpose: axis {d} is out of range for {x.type}")
    perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
    return E.emit("transpose", x, perm=tuple(perm))


@builtin("T")
def _matrix_t(E: Any, x: Any) -> Tensor:
    """T(w): swap the last two axes (w.T for a matrix), as in `x @ T(weight)`."""
    x = _tensor(x, "T's argument")
    if x.type.rank < 2:
        raise DlgShapeError(f"T needs a tensor of rank >= 2, got {x.type}")
    return _transpose(E, x, -2, -1)


@builtin("squeeze")
def _squeeze(E: Any, x: Any, axis: Any = None) -> Tensor:
    return E.emit("squeeze", _tensor(x, "squeeze's argument"), axes=_axes(axis))


@builtin("unsqueeze")
def _unsqueeze(E: Any, x: Any, axis: Any) -> Tensor:
    return E.emit("unsqueeze", _tensor(x, "unsqueeze's argument"), axes=_axes(axis))


@builtin("broadcast_to", "expand")
def _broadcast_to(E: Any, x: Any, *shape: Any) -> Tensor:
    return E.emit("broadcast_to", _tensor(x, "broadcast_to's argument"), shape=_shape_arg(shape))


def _tensors(xs: Any, what: str) -> list[Tensor]:
    if not isinstance(xs, tuple) or not xs:
        raise DlgTypeError(f"{what} takes a tuple of tensors, e.g. {what}((a, b), axis=0)")
    return [_tensor(x, f"each item of {what}") for x in xs]


@builtin("concat", "cat")
def _concat(E: Any, xs: Any, axis: int = 0) -> Tensor:
    return E.emit("concat", *_tensors(xs, "concat"), axis=axis)


@builtin("stack")
def _stack(E: Any, xs: Any, axis: int = 0) -> Tensor:
    return E.emit("stack", *_tensors(xs, "stack"), axis=axis)


@builtin("split", "chunk")
def _split(E: Any, x: Any, sections: Any, axis: int = 0) -> tuple[Tensor, ...]:
    """split(x, 4, axis=1): 4 equal parts; split(x, (2, 3)): parts of those sizes."""
    x = _tensor(x, "split's argument")
    rank = x.type.rank
    if not -rank <= axis < rank:
        raise DlgShapeError(f"split: axis {axis} is out of range for {x.type}")
    dim = x.type.shape[axis]
    if isinstance(sections, int) and not isinstance(sections, bool):
        if sections <= 0 or not isinstance(dim, int) or dim % sections:
            raise DlgShapeError(f"split: axis {axis} of {x.type} does not divide into "
                                f"{sections} equal parts")
        sizes = (dim // sections,) * sections
    else:
        sizes = sections
    return E.emit("split", x, axis=axis, sizes=tuple(sizes))


@builtin("pad")
def _pad(E: Any, x: Any, pads: Any, value: float = 0.0) -> Tensor:
    return E.emit("pad", _tensor(x, "pad's argument"), pads=pads, value=value)


@builtin("take", "index_select")
def _take(E: Any, x: Any, indices: Any, axis: int = 0) -> Tensor:
    return E.emit("take", _tensor(x, "take's argument"), _tensor(indices, "take's indices"),
                  axis=axis)


# ---- creation -------------------------------------------------------------------------------
@builtin("full")
def _full(E: Any, shape: Any, value: Any, dtype: DType = DType.f32) -> Tensor:
    return E.emit("full", shape=_shape_arg((shape,)), value=float(value), dtype=dtype)


@builtin("zeros")
def _zeros(E: Any, *shape: Any, dtype: DType = DType.f32) -> Tensor:
    return E.emit("full", shape=_shape_arg(shape), value=0.0, dtype=dtype)


@builtin("ones")
def _ones(E: Any, *shape: Any, dtype: DType = DType.f32) -> Tensor:
    return E.emit("full", shape=_shape_arg(shape), value=1.0, dtype=dtype)


@builtin("zeros_like")
def _zeros_like(E: Any, x: Any) -> Tensor:
    t = _tensor(x, "zeros_like's argument").type
    return E.emit("full", shape=t.shape, value=0.0, dtype=t.dtype)


@builtin("arange")
def _arange(E: Any, start: Any, stop: Any = None, step: Any = 1, dtype: DType = DType.i64
            ) -> Tensor:
    if stop is None:
        start, stop = 0, start
    return E.emit("arange", start=start, stop=stop, step=step, dtype=dtype)


@builtin("rand")
def _rand(E: Any, *shape: Any, dtype: DType = DType.f32) -> Tensor:
    return E.emit("random_uniform", shape=_shape_arg(shape), dtype=dtype)


@builtin("randn")
def _randn(E: Any, *shape: Any, dtype: DType = DType.f32) -> Tensor:
    return E.emit("random_normal", shape=_shape_arg(shape), dtype=dtype)


# ---- static helpers -------------------------------------------------------------------------
@builtin("range")
def _range(E: Any, *args: Any) -> tuple[int, ...]:
    if not 1 <= len(args) <= 3 or not all(isinstance(a, int) and not isinstance(a, bool)
                                           for a in args):
        raise DlgTypeError("range takes 1 to 3 ints")
    return tuple(range(*args))


@builtin("ntuple")
def _ntuple(E: Any, value: Any, n: int) -> tuple[Any, ...]:
    """ntuple(3, 2) == (3, 3); a tuple of length n passes through (PyTorch's _pair)."""
    if isinstance(value, tuple):
        if len(value) != n:
            raise DlgTypeError(f"expected {n} values, got {len(value)}")
        return value
    return (value,) * n


@builtin("numel")
def _numel(E: Any, x: Any, axis: Any = None, dtype: DType = DType.f32) -> Tensor:
    """The element count over `axis` as a scalar tensor (works for symbolic dims)."""
    return E.emit("numel", _tensor(x, "numel's argument"), axes=_axes(axis), dtype=dtype)


@builtin("len")
def _len(E: Any, value: Any) -> int:
    if isinstance(value, tuple):
        return len(value)
    if isinstance(value, Tensor) and value.type.rank:
        return value.type.shape[0]
    raise DlgTypeError(f"len needs a tuple or a tensor, got {describe(value)}")


@builtin("int")
def _int(E: Any, value: Any) -> int:
    if not _is_number(value):
        raise DlgTypeError(f"int needs a number, got {describe(value)}")
    return int(value)


@builtin("float")
def _float(E: Any, value: Any) -> float:
    if not _is_number(value):
        raise DlgTypeError(f"float needs a number, got {describe(value)}")
    return float(value)


# ---- neural-network functions ------------------------------------------------------------------
def _pair(v: Any, n: int, what: str) -> tuple[int, ...]:
    if isinstance(v, int) and not isinstance(v, bool):
        return (v,) * n
    if isinstance(v, tuple) and len(v) == n and all(isinstance(i, int) for i in v):
        return v
    raise DlgTypeError(f"{what} must be an int or a tuple of {n} ints, got {describe(v)}")


def _conv(nd: int) -> Callable[..., Tensor]:
    def fn(E: Any, x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
        name = f"conv{nd}d"
        attrs: dict[str, Any] = {"stride": _pair(stride, nd, "stride"),
                                     "dilation": _pair(dilation, nd, "dilation"), "groups": groups}
        if isinstance(padding, str):
            attrs["auto_pad"] = padding  # PyTorch's "same" / "valid"
        else:
            attrs["padding"] = _pair(padding, nd, "padding")
        args = [_tensor(x, f"{name}'s input"), _tensor(weight, f"{name}'s weight")]
        if bias is not None:
            return E.emit(name, *args, _tensor(bias, f"{name}'s bias"), **attrs)
        return E.emit(f"{name}_nobias", *args, **attrs)
    return fn


BUILTINS["conv1d"] = Builtin("conv1d", _conv(1))
BUILTINS["conv2d"] = Builtin("conv2d", _conv(2))


def _pool(kind: str, nd: int) -> Callable[..., Tensor]:
    def fn(E: Any, x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
           ceil_mode: bool = False, **extra: Any) -> Tensor:
        name = f"{kind}_pool{nd}d"
        kernel = _pair(kernel_size, nd, "kernel_size")
        step = kernel if stride is None else _pair(stride, nd, "stride")
        attrs = {"kernel": kernel, "stride": step,
                     "padding": _pair(padding, nd, "padding"), "ceil_mode": ceil_mode}
        allowed = {"max": ("dilation",), "avg": ("count_include_pad",)}[kind]
        for key, value in extra.items():
            if key not in allowed:
                raise DlgTypeError(f"{name}() has no argument {key!r}")
            attrs[key] = _pair(value, nd, key) if key == "dilation" else value
        return E.emit(f"{kind}_pool", _tensor(x, f"{name}'s input"), **attrs)
    return fn


for _kind in ("max", "avg"):
    for _nd in (1, 2):
        BUILTINS[f"{_kind}_pool{_nd}d"] = Builtin(f"{_kind}_pool{_nd}d", _pool(_kind, _nd))


@builtin("softmax")
def _softmax(E: Any, x: Any, axis: int = -1) -> Tensor:
    return E.emit("softmax", _tensor(x, "softmax's argument"), axis=axis)


@builtin("log_softmax")
def _log_softmax(E: Any, x: Any, axis: int = -1) -> Tensor:
    return E.emit("log_softmax", _tensor(x, "log_softmax's argument"), axis=axis)


@builtin("dropout")
def _dropout(E: Any, x: Any, p: float = 0.5) -> Tensor:
    return E.emit("dropout", _tensor(x, "dropout's argument"), p=p, training=E.training)


@builtin("batch_norm")
def _batch_norm(E: Any, x: Any, mean: Any, var: Any, weight: Any, bias: Any, eps: float = 1e-5
                ) -> Tensor:
    """Normalise with the given statistics over channel axis 1 (PyTorch's F.batch_norm, eval)."""
    args = [_tensor(v, f"batch_norm's {what}") for v, what in
            ((x, "input"), (mean, "mean"), (var, "variance"), (weight, "weight"), (bias, "bias"))]
    return E.emit("batch_norm", *args, eps=eps)


@builtin("layer_norm")
def _layer_norm(E: Any, x: Any, normalized_shape: Any, weight: Any = None, bias: Any = None,
                eps: float = 1e-5) -> Tensor:
    shape = normalized_shape if isinstance(normalized_shape, tuple) else (normalized_shape,)
    affine = [_tensor(v, "layer_norm's weight and bias") for v in (weight, bias) if v is not None]
    if len(affine) == 1:
        raise DlgTypeError("layer_norm takes both weight and bias, or neither")
    return E.emit("layer_norm", _tensor(x, "layer_norm's input"), *affine,
                  normalized_shape=_shape_arg((shape,)), eps=eps)


@builtin("linear")
def _linear(E: Any, x: Any, weight: Any, bias: Any = None) -> Tensor:
    args = [_tensor(x, "linear's input"), _tensor(weight, "linear's weight")]
    if bias is None:
        return E.emit("linear_nobias", *args)
    return E.emit("linear", *args, _tensor(bias, "linear's bias"))


@builtin("embedding")
def _embedding(E: Any, indices: Any, weight: Any) -> Tensor:
    return E.emit("embedding", _tensor(weight, "embedding's weight"),
                  _tensor(indices, "embedding's indices"))


@builtin("one_hot")
def _one_hot(E: Any, indices: Any, num_classes: int, dtype: DType = DType.f32) -> Tensor:
    return E.emit("one_hot", _tensor(indices, "one_hot's indices"), num_classes=num_classes,
                  dtype=dtype)


def _loss(name: str, params: tuple[str, ...]) -> None:
    def fn(E: Any, input: Any, target: Any, **attrs: Any) -> Tensor:
        for key in attrs:
            if key not in params:
                raise DlgTypeError(f"{name}() has no argument {key!r} (it takes "
                                   f"{', '.join(params)})")
        return E.emit(name, _tensor(input, f"{name}'s input"), _tensor(target, f"{name}'s target"),
                      **attrs)
    BUILTINS[name] = Builtin(name, fn)


_loss("cross_entropy", ("reduction", "label_smoothing"))
_loss("nll_loss", ("reduction",))
_loss("mse_loss", ("reduction",))
_loss("l1_loss", ("reduction",))
_loss("binary_cross_entropy", ("reduction",))
_loss("binary_cross_entropy_with_logits", ("reduction",))


# ---- optimizers (train sections) ----------------------------------------------------------------
def _train_builtin(name: str, make: Any) -> None:
    def fn(E: Any, **hyper: Any) -> Any:
        return make(name, hyper, E.user_span)
    BUILTINS[name] = Builtin(name, fn)


for _name in OPTIMIZER_DEFAULTS:
    _train_builtin(_name, make_optimizer)
for _name in SCHEDULE_DEFAULTS:
    _train_builtin(_name, make_schedule)
