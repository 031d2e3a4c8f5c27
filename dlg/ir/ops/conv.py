"""Convolution: the `conv` primitive (1-D, 2-D or 3-D, explicit asymmetric padding, groups, no
bias; PyTorch's cross-correlation), its gradient, and the `conv1d`/`conv2d`/`conv3d` composites.

`conv2d(x, w, b)` (and its 1-D and 3-D kin) takes a bias; `conv2d_nobias(x, w)` does not.
Padding is `padding` (ints, symmetric per spatial dim) or `auto_pad="same"|"valid"` (an
attribute holds one kind, so the PyTorch strings travel in their own attribute, as in ONNX);
"same" needs stride 1 and puts the odd pad on the high side, like PyTorch. `conv` is a primitive
because codegen gives it a real kernel.

Gradient (as graph ops): the input's is a convolution of the gradient, zeros interleaved for the
stride (or, without dilation, one convolution per phase of the stride: `_phases`), with the
weights flipped and their in/out channels swapped per group; the weight's is
the `conv_weight_grad` primitive, a sum over the batch and the output positions (as a
convolution it would need the symbolic batch as a channel dim), so the compiler gives it a loop
nest of its own with affine indices.
"""

from __future__ import annotations

from math import prod

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dlg.errors import DlgAttributeError, DlgShapeError
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import (
    FLOATS,
    SPATIAL_RANKS,
    check_lengths,
    concrete_dims,
    interleave_zeros,
    pad_or_crop,
    padded,
    require_dtype,
    same_dtype,
    spatial_names,
    working_dtype,
)
from dlg.ir.ops.opdef import Attr, Trait, defop
from dlg.ir.types import TensorType


# ---- convolution ------------------------------------------------------------------------------
def _conv_infer(x: TensorType, w: TensorType, *, stride: tuple[int, ...],
                padding: tuple[tuple[int, int], ...], dilation: tuple[int, ...], groups: int,
                op: str = "conv") -> TensorType:
    require_dtype(op, x, FLOATS)
    same_dtype(op, x, w)
    nd = x.rank - 2
    if nd not in SPATIAL_RANKS or w.rank != x.rank:
        raise DlgShapeError(f"{op}: expects input [N, C_in, *spatial] and weight "
                            f"[C_out, C_in/groups, *kernel] with 1 to 3 spatial dims, got "
                            f"input {x} and weight {w}")
    check_lengths(op, nd, stride=stride, padding=padding, dilation=dilation)
    if min(stride) < 1 or min(dilation) < 1 or groups < 1 or min(min(p) for p in padding) < 0:
        raise DlgAttributeError(f"{op}: stride, dilation and groups must be positive and padding "
                                f"non-negative, got stride={list(stride)}, "
                                f"dilation={list(dilation)}, groups={groups}, "
                                f"padding={[list(p) for p in padding]}")
    spatial = concrete_dims(op, x, range(1, x.rank), "input channels and spatial dims")
    c_in, spatial = spatial[0], spatial[1:]
    c_out, c_group, *kernel = concrete_dims(op, w, range(w.rank), "weight dims")
    if c_in % groups or c_out % groups or c_group * groups != c_in:
        raise DlgShapeError(f"{op}: input {x} has {c_in} channels but weight {w} with "
                            f"groups={groups} expects {c_group * groups}; C_in and C_out must "
                            f"be divisible by groups")
    out = []
    for size, k, s, (lo, hi), d in zip(spatial, kernel, stride, padding, dilation):
        span = size + lo + hi - d * (k - 1) - 1
        if span < 0:
            raise DlgShapeError(f"{op}: kernel {kernel} (dilation {list(dilation)}) is larger "
                                f"than the padded input: input {x}, weight {w}, "
                                f"padding {[list(p) for p in padding]}")
        out.append(span // s + 1)
    return TensorType(x.dtype, (x.shape[0], c_out, *out))


def _windows(x: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...],
             padding: tuple[tuple[int, int], ...], dilation: tuple[int, ...], groups: int,
             work: np.dtype) -> np.ndarray:
    """The windows a convolution reads, in the `work` dtype (`working_dtype`):
    [N, groups, C_in/groups, *out, *kernel]."""
    nd = x.ndim - 2
    n, c_in = x.shape[:2]
    xp = padded(x, padding, 0.0, work)
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    out = [(size - e) // s + 1 for size, e, s in zip(xp.shape[2:], extent, stride)]
    win = sliding_window_view(xp, extent, axis=tuple(range(2, 2 + nd)))
    win = win[(slice(None), slice(None))
              + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, stride))
              + tuple(slice(None, None, d) for d in dilation)]
    return win.reshape(n, groups, c_in // groups, *out, *kernel)


_CHUNK_BYTES = 1 << 19  # the columns of one chunk of images: about half a core's L2 cache


def _image_chunks(win: np.ndarray) -> list[slice]:
    """Slices of the batch whose columns (`_columns`) take about _CHUNK_BYTES: the columns
    of the whole batch are kernel-size times the input, so made at once they are written to
    and read back from memory, where a chunk's stay in cache (a small CNN's second layer at
    batch 64, one thread, its forward / input / weight gradients: 2.8 / 4.8 / 3.5 ms at
    once, 2.4 / 3.7 / 2.8 ms in chunks)."""
    step = max(1, _CHUNK_BYTES // max(1, prod(win.shape[1:]) * win.itemsize))
    return [slice(lo, lo + step) for lo in range(0, win.shape[0], step)]


def _columns(win: np.ndarray) -> np.ndarray:
    """The windows as one matrix per group, [groups, C_in/groups * kernel, N * out positions]
    (im2col, output positions innermost so the copy reads rows of x), so that both convolution
    refs are BLAS matrix products."""
    nd = (win.ndim - 3) // 2
    n, groups, c = win.shape[:3]
    cols = win.transpose(1, 2, *range(3 + nd, 3 + 2 * nd), 0, *range(3, 3 + nd))
    return cols.reshape(groups, c * prod(win.shape[3 + nd:]), n * prod(win.shape[3:3 + nd]))


def _conv_ref(x: np.ndarray, w: np.ndarray, *, stride: tuple[int, ...],
              padding: tuple[tuple[int, int], ...], dilation: tuple[int, ...], groups: int,
              exact: bool = True) -> np.ndarray:
    nd = x.ndim - 2
    c_out = w.shape[0]
    work = working_dtype(x.dtype, exact)
    win = _windows(x, w.shape[2:], stride, padding, dilation, groups, work)
    positions = prod(win.shape[3:3 + nd])
    wg = w.astype(work, copy=False).reshape(groups, c_out // groups, -1)
    y = np.empty((x.shape[0], groups, c_out // groups, positions), work)
    for images in _image_chunks(win):
        part = (wg @ _columns(win[images])).reshape(groups, c_out // groups, -1, positions)
        y[images] = part.transpose(2, 0, 1, 3)
    return y.reshape(x.shape[0], c_out, *win.shape[3:3 + nd]).astype(x.dtype, copy=False)


def _conv_vjp(b, n, g):
    x, w = n.inputs
    return _conv_input_grad(b, g, b.type_of(x), w, **n.attrs), \
        _conv_weight_grad(b, g, x, b.type_of(w), **n.attrs)


def _conv_input_grad(b, g, x: TensorType, w, *, stride, padding, dilation, groups):
    """dx: g's transposed convolution, its output_padding the input rows past the last window
    (the rows a strided convolution skips)."""
    kernel = b.type_of(w).shape[2:]
    extra = tuple(int(x.shape[2 + i]) + lo + hi - (int(used) - 1) * s - d * (int(k) - 1) - 1
                  for i, (used, k, s, d, (lo, hi)) in enumerate(
                      zip(b.type_of(g).shape[2:], kernel, stride, dilation, padding)))
    return conv_transpose(b, g, w, stride=stride, padding=padding, dilation=dilation,
                          groups=groups, output_padding=extra)


def conv_transpose(b, g, w, *, stride, padding, dilation, groups, output_padding):
    """conv's transpose: conv(g with stride-1 zeros between its elements, padded by the kernel
    extent less `padding` (and `output_padding` more at the high end), weights flipped with
    in/out channels swapped per group). `w` is conv's [C_out, C_in/groups, *kernel], which is
    PyTorch's transposed-convolution weight [C_in, C_out/groups, *kernel] read the other way.
    Strided without dilation it runs in phases (`_phases`): most products with the zeros are
    never made."""
    nd = len(stride)
    wt = b.type_of(w)
    c_out, c_group, *kernel = (int(d) for d in wt.shape)
    flipped = w
    for i, k in enumerate(kernel):
        flipped = b.take(flipped, b.constant(np.arange(k - 1, -1, -1), DType.i64), axis=2 + i)
    swapped = b.reshape(flipped, shape=(groups, c_out // groups, c_group, *kernel))
    swapped = b.transpose(swapped, perm=(0, 2, 1, *range(3, 3 + nd)))
    swapped = b.reshape(swapped, shape=(groups * c_group, c_out // groups, *kernel))
    pads = [(d * (k - 1) - lo, d * (k - 1) + extra - hi)
            for k, d, (lo, hi), extra in zip(kernel, dilation, padding, output_padding)]
    if max(stride) > 1 and max(dilation) == 1:
        return _phases(b, g, swapped, stride, pads, groups)
    for i, s in enumerate(stride):
        g = interleave_zeros(b, g, 2 + i, s)
    if min(min(p) for p in pads) >= 0:  # conv pads: one copy where a pad per dim made one each
        return b.conv(g, swapped, stride=(1,) * nd, padding=tuple(pads), dilation=dilation,
                      groups=groups)
    for i, (lo, hi) in enumerate(pads):
        g = pad_or_crop(b, g, 2 + i, lo, hi)
    return b.conv(g, swapped, stride=(1,) * nd, padding=((0, 0),) * nd, dilation=dilation,
                  groups=groups)


def _phases(b, g, swapped, stride, pads, groups):
    """The transposed convolution with stride s as s^nd stride-1 convolutions, one per phase of
    the output (its positions r, r + s, r + 2s, ... along each dim): a phase's outputs meet the
    zeros-interleaved input's data only through the kernel taps j = r' (mod s), so its product
    is g's elements with those taps alone, and the phases are interleaved after. The dense
    form multiplies s^nd times as many zeros as data (a stride-2 3x3 convolution's input
    gradient: 36 products per output where 9 count)."""
    nd = len(stride)
    kernel = [int(k) for k in b.type_of(swapped).shape[2:]]
    shape = b.type_of(g).shape
    lengths = [int(n) for n in shape[2:]]
    outs = [(n - 1) * s + 1 + lo + hi - k + 1
            for n, s, (lo, hi), k in zip(lengths, stride, pads, kernel)]
    rows = [-(-y // s) for y, s in zip(outs, stride)]  # each phase padded to ceil(out / s)

    def phase(r: tuple[int, ...]):
        part, taps_of = g, swapped
        for i, (ri, s, (lo, _), k, n, y) in enumerate(zip(r, stride, pads, kernel, lengths,
                                                          outs)):
            first = (lo - ri) % s
            taps = range(first, k, s)
            count = len(range(ri, y, s))
            if not taps or not count:
                zeros_shape = (shape[0], int(b.type_of(swapped).shape[0]), *rows)
                return b.full(shape=zeros_shape, value=0.0, dtype=b.type_of(g).dtype)
            shift = (ri - lo + first) // s  # g's element under the first tap, at output 0
            part = pad_or_crop(b, part, 2 + i, -shift, count + len(taps) - 1 - (n - shift))
            taps_of = b.take(taps_of, b.constant(np.array(taps), DType.i64), axis=2 + i)
        y = b.conv(part, taps_of, stride=(1,) * nd, padding=((0, 0),) * nd,
                   dilation=(1,) * nd, groups=groups)
        for i, (ri, s, m, out) in enumerate(zip(r, stride, rows, outs)):
            y = pad_or_crop(b, y, 2 + i, 0, m - len(range(ri, out, s)))
        return y

    def woven(prefix: tuple[int, ...]):
        i = len(prefix)
        if i == nd:
            return phase(prefix)
        parts = [woven((*prefix, r)) for r in range(stride[i])]
        if len(parts) == 1:
            return parts[0]
        axis = 3 + i
        joined = b.stack(*parts, axis=axis)
        t = b.type_of(joined).shape
        merged = b.reshape(joined, shape=(*t[:axis - 1], rows[i] * stride[i], *t[axis + 1:]))
        return pad_or_crop(b, merged, 2 + i, 0, outs[i] - rows[i] * stride[i])
    return woven(())


def _conv_weight_grad(b, g, x, wt: TensorType, *, stride, padding, dilation, groups):
    return b.conv_weight_grad(x, g, kernel=tuple(int(k) for k in wt.shape[2:]), stride=stride,
                              padding=padding, dilation=dilation, groups=groups)


def _weight_grad_infer(x: TensorType, g: TensorType, *, kernel: tuple[int, ...], stride,
                       padding, dilation, groups) -> TensorType:
    op = "conv_weight_grad"
    same_dtype(op, x, g)
    c_out = concrete_dims(op, g, [1], "gradient channels")[0]
    w = TensorType(x.dtype, (c_out, int(x.shape[1]) // groups, *kernel))
    y = _conv_infer(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups, op=op)
    if g.shape != y.shape:
        raise DlgShapeError(f"{op}: gradient {g} does not match the convolution's output {y}")
    return w


def _weight_grad_ref(x: np.ndarray, g: np.ndarray, *, kernel, stride, padding, dilation,
                     groups, exact: bool = True) -> np.ndarray:
    work = working_dtype(x.dtype, exact)
    win = _windows(x, kernel, stride, padding, dilation, groups, work)
    n, c_out = g.shape[:2]
    gg = g.astype(work, copy=False).reshape(n, groups, c_out // groups, prod(g.shape[2:]))
    dw = np.zeros((groups, win.shape[2] * prod(kernel), c_out // groups), work)
    for images in _image_chunks(win):  # dw^T += columns @ g^T: the faster operand order
        part = gg[images].transpose(1, 0, 3, 2).reshape(groups, -1, c_out // groups)
        dw += _columns(win[images]) @ part
    return dw.transpose(0, 2, 1).reshape(c_out, x.shape[1] // groups, *kernel).astype(x.dtype)


def _weight_grad_vjp(b, n, h):
    """dw is bilinear in x and g: its VJP is conv's input gradient of (g, h) and conv(x, h)."""
    x, g = n.inputs
    attrs = {k: v for k, v in n.attrs.items() if k != "kernel"}
    return _conv_input_grad(b, g, b.type_of(x), h, **attrs), b.conv(x, h, **attrs)


CONV = defop("conv", ("x", "w"), _conv_infer, ref=_conv_ref, vjp=_conv_vjp,
             attrs={"stride": Attr("ints"), "padding": Attr("pads"), "dilation": Attr("ints"),
                    "groups": Attr("int")}, traits={Trait.CONTRACTION, Trait.PADDED},
             doc="PyTorch's convolution (cross-correlation), 1-D to 3-D, without bias.")

CONV_WEIGHT_GRAD = defop(
    "conv_weight_grad", ("x", "g"), _weight_grad_infer, ref=_weight_grad_ref,
    vjp=_weight_grad_vjp,
    attrs={"kernel": Attr("ints"), "stride": Attr("ints"), "padding": Attr("pads"),
           "dilation": Attr("ints"), "groups": Attr("int")},
    traits={Trait.CONTRACTION, Trait.PADDED},
    doc="conv's weight gradient: dw[o, c, k] = sum over n and output positions p of "
        "g[n, o, p] * x[n, c, p*stride + k*dilation - padding] (per group).")


def _resolve_pads(op: str, w: TensorType, stride: tuple[int, ...], padding: tuple[int, ...],
                  dilation: tuple[int, ...], auto_pad: str) -> tuple[tuple[int, int], ...]:
    """Explicit (lo, hi) pads from symmetric ints or PyTorch's 'same'/'valid'."""
    if auto_pad == "none":
        return tuple((p, p) for p in padding)
    if any(padding):
        raise DlgAttributeError(f"{op}: give padding={list(padding)} or auto_pad={auto_pad!r}, "
                                f"not both")
    if auto_pad == "valid":
        return tuple((0, 0) for _ in padding)
    if any(s != 1 for s in stride):
        raise DlgAttributeError(f"{op}: padding 'same' needs stride 1, got stride={list(stride)}")
    kernel = concrete_dims(op, w, range(2, w.rank), "weight dims")
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return tuple((t // 2, t - t // 2) for t in totals)


def _check_bias(name: str, w: TensorType, out: TensorType, bias: tuple[TensorType, ...]
                ) -> None:
    """A bias (if any) is one value per output channel, in the output's dtype."""
    if bias:
        same_dtype(name, out, bias[0])
        if bias[0].shape != (out.shape[1],):
            raise DlgShapeError(f"{name}: bias must be [{out.shape[1]}] (the output channels "
                                f"of weight {w}), got {bias[0]}")


def _add_bias(b, y, bias: tuple, nd: int):
    """y [N, C, *spatial] plus a bias [C] per channel, if there is one."""
    if not bias:
        return y
    c_out = b.type_of(y).shape[1]
    return b.add(y, b.reshape(bias[0], shape=(c_out,) + (1,) * nd))


def _convnd(nd: int, with_bias: bool) -> None:
    name = f"conv{nd}d" if with_bias else f"conv{nd}d_nobias"

    def attrs_of(x: TensorType, w: TensorType, stride: tuple[int, ...],
                 padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
                 auto_pad: str) -> dict:
        if x.rank != nd + 2:
            raise DlgShapeError(f"{name}: input must have rank {nd + 2} "
                                f"([N, C, {spatial_names(nd)}]), got {x}")
        check_lengths(name, nd, stride=stride, padding=padding, dilation=dilation)
        pads = _resolve_pads(name, w, stride, padding, dilation, auto_pad)
        return {"stride": stride, "padding": pads, "dilation": dilation, "groups": groups}

    def infer(x: TensorType, w: TensorType, *bias: TensorType, **attrs) -> TensorType:
        out = _conv_infer(x, w, **attrs_of(x, w, **attrs), op=name)
        _check_bias(name, w, out, bias)
        return out

    def decompose(b, x, w, *bias, **attrs):
        y = b.conv(x, w, **attrs_of(b.type_of(x), b.type_of(w), **attrs))
        return _add_bias(b, y, bias, nd)

    inputs = ("x", "w", "b") if with_bias else ("x", "w")
    defop(name, inputs, infer, decompose=decompose,
          attrs={"stride": Attr("ints", (1,) * nd), "padding": Attr("ints", (0,) * nd),
                 "dilation": Attr("ints", (1,) * nd), "groups": Attr("int", 1),
                 "auto_pad": Attr("str", "none", ("none", "same", "valid"))},
          doc=f"PyTorch's F.conv{nd}d{'' if with_bias else ' without bias'}.")


for _nd in SPATIAL_RANKS:
    _convnd(_nd, with_bias=True)
    _convnd(_nd, with_bias=False)


# ---- transposed convolution -------------------------------------------------------------------
def _transposed_infer(name: str, x: TensorType, w: TensorType, *, stride: tuple[int, ...],
                      padding: tuple[int, ...], output_padding: tuple[int, ...],
                      dilation: tuple[int, ...], groups: int) -> TensorType:
    """PyTorch's rules: weight [C_in, C_out/groups, *kernel]; output_padding below the stride
    or the dilation; out = (L - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding
    + 1."""
    nd = len(stride)
    require_dtype(name, x, FLOATS)
    same_dtype(name, x, w)
    if x.rank != nd + 2 or w.rank != nd + 2:
        raise DlgShapeError(f"{name}: expects input [N, C_in, {spatial_names(nd)}] and "
                            f"weight [C_in, C_out/groups, *kernel], got input {x} and weight {w}")
    check_lengths(name, nd, padding=padding, output_padding=output_padding, dilation=dilation)
    if min(stride) < 1 or min(dilation) < 1 or groups < 1 or min(padding) < 0 \
            or min(output_padding) < 0:
        raise DlgAttributeError(f"{name}: stride, dilation and groups must be positive and "
                                f"padding and output_padding non-negative, got "
                                f"stride={list(stride)}, dilation={list(dilation)}, "
                                f"groups={groups}, padding={list(padding)}, "
                                f"output_padding={list(output_padding)}")
    if any(op >= max(s, d) for op, s, d in zip(output_padding, stride, dilation)):
        raise DlgAttributeError(f"{name}: output_padding {list(output_padding)} must be smaller "
                                f"than either stride {list(stride)} or dilation "
                                f"{list(dilation)}")
    c_in, *spatial = concrete_dims(name, x, range(1, x.rank), "input channels and spatial dims")
    c_w, c_group, *kernel = concrete_dims(name, w, range(w.rank), "weight dims")
    if c_in != c_w or c_in % groups:
        raise DlgShapeError(f"{name}: input {x} has {c_in} channels but weight {w} expects "
                            f"{c_w} (weight [C_in, C_out/groups, *kernel]); C_in must be "
                            f"divisible by groups={groups}")
    out = [(size - 1) * s - 2 * p + d * (k - 1) + op + 1 for size, s, p, d, k, op in
           zip(spatial, stride, padding, dilation, kernel, output_padding)]
    if min(out) < 1:
        raise DlgShapeError(f"{name}: the output would be {out}: padding {list(padding)} is too "
                            f"large for input {x} and weight {w}")
    return TensorType(x.dtype, (x.shape[0], c_group * groups, *out))


def _conv_transposend(nd: int, with_bias: bool) -> None:
    name = f"conv_transpose{nd}d" + ("" if with_bias else "_nobias")

    def infer(x: TensorType, w: TensorType, *bias: TensorType, **attrs) -> TensorType:
        out = _transposed_infer(name, x, w, **attrs)
        _check_bias(name, w, out, bias)
        return out

    def decompose(b, x, w, *bias, stride, padding, output_padding, dilation, groups):
        y = conv_transpose(b, x, w, stride=stride, padding=tuple((p, p) for p in padding),
                           dilation=dilation, groups=groups, output_padding=output_padding)
        return _add_bias(b, y, bias, nd)

    ones, zeros = (1,) * nd, (0,) * nd
    defop(name, ("x", "w", "b") if with_bias else ("x", "w"), infer, decompose=decompose,
          attrs={"stride": Attr("ints", ones), "padding": Attr("ints", zeros),
                 "output_padding": Attr("ints", zeros), "dilation": Attr("ints", ones),
                 "groups": Attr("int", 1)},
          doc=f"PyTorch's F.conv_transpose{nd}d{'' if with_bias else ' without bias'}: conv's "
              f"transpose (its input gradient), weight [C_in, C_out/groups, *kernel].")


for _nd in SPATIAL_RANKS:
    _conv_transposend(_nd, with_bias=True)
    _conv_transposend(_nd, with_bias=False)
