"""`im2col`: the windows a convolution reads, copied into one matrix, so that the convolution
and its gradients become matrix products (the compiler's `im2col` pass writes them so).

im2col(x)[c*K + k, n, *p] = x[n, c, *(p*stride + k*dilation)], K the kernel's size and k one of
its positions (row-major): one row per (channel, kernel position), one column per (sample,
output position), groups' rows contiguous. The input is already padded (the pass runs after
`explicit_padding`). A primitive because it is a copy the compiler keeps in memory (a matmul
operand read many times), not an expression inlined into the matmul's loads.

Gradient: im2col is the grouped convolution of x with one-hot weights (one group per channel,
one output channel per kernel position), so its VJP is that convolution's input gradient.
"""

from __future__ import annotations

from math import prod

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dlg.ir.ops.common import FLOATS, check_lengths, require_dtype
from dlg.ir.ops.conv import _conv_infer, _conv_input_grad
from dlg.ir.ops.opdef import Attr, Trait, defop
from dlg.ir.types import TensorType


def _im2col_infer(x: TensorType, *, kernel: tuple[int, ...], stride: tuple[int, ...],
                  dilation: tuple[int, ...]) -> TensorType:
    require_dtype("im2col", x, FLOATS)
    check_lengths("im2col", x.rank - 2, kernel=kernel)
    y = _conv_infer(x, _selector_type(x, kernel), stride=stride, dilation=dilation,
                    padding=((0, 0),) * len(kernel), groups=1, op="im2col")
    return TensorType(x.dtype, (y.shape[1], x.shape[0], *y.shape[2:]))


def _selector_type(x: TensorType, kernel: tuple[int, ...]) -> TensorType:
    """A weight of one output channel per (channel, kernel position): what infer checks."""
    c = x.shape[1] if x.rank > 1 else 0  # a symbolic C is infer's error, not int()'s
    return TensorType(x.dtype, (c * prod(kernel), c, *kernel))


def _im2col_ref(x: np.ndarray, *, kernel: tuple[int, ...], stride: tuple[int, ...],
                dilation: tuple[int, ...]) -> np.ndarray:
    nd = len(kernel)
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    win = sliding_window_view(x, extent, axis=tuple(range(2, 2 + nd)))
    win = win[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)
              + tuple(slice(None, None, d) for d in dilation)]  # [N, C, *out, *kernel]
    cols = win.transpose(1, *range(2 + nd, 2 + 2 * nd), 0, *range(2, 2 + nd))
    rows = x.shape[1] * prod(kernel)
    return np.ascontiguousarray(cols).reshape(rows, *cols.shape[1 + nd:])


def _im2col_vjp(b, n, h):
    """The input gradient of conv(x, one-hot selector weights, groups=C)."""
    (x,) = n.inputs
    tx = b.type_of(x)
    kernel = n.attrs["kernel"]
    c, size = int(tx.shape[1]), prod(kernel)
    selector = np.tile(np.eye(size).reshape(size, 1, *kernel), (c, 1) + (1,) * len(kernel))
    g = b.transpose(h, perm=(1, 0, *range(2, 2 + len(kernel))))
    return (_conv_input_grad(b, g, tx, b.constant(selector, tx.dtype), stride=n.attrs["stride"],
                             padding=((0, 0),) * len(kernel), dilation=n.attrs["dilation"],
                             groups=c),)


IM2COL = defop("im2col", ("x",), _im2col_infer, ref=_im2col_ref, vjp=_im2col_vjp,
               attrs={"kernel": Attr("ints"), "stride": Attr("ints"), "dilation": Attr("ints")},
               traits={Trait.MOVEMENT, Trait.OWN_KERNEL},
               doc="A convolution's windows as a matrix [C_in*kernel, N, *out] (unpadded).")
