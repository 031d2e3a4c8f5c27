"""torch.fft on dlg tensors (`dlg.fft`): fft, ifft, rfft, irfft, hfft, ihfft and their 2-d and n-d
forms with torch's `n`/`s`, `dim` and `norm` arguments, fftfreq, rfftfreq, fftshift and ifftshift
(and torch's spectral windows, hann_window..., for audio features).

Each transform is one of three registry primitives (`ir/ops/fft.py`: c2c, r2c, c2r, torch's
own) after its input is made the length asked for along each axis (cropped with a slice or
zero-padded), so gradients are the primitives' VJPs. A real input to a complex transform is
cast to complex first (its gradient keeps the real part); an integer one becomes float32, as
torch's. Complex values run eagerly and in the interpreter; `dlg.compile` refuses them."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.complex_tensors import view_as_real
from dlg.frontend.factory import leaf
from dlg.frontend.tensor import Tensor, apply, call, checked, tensor_argument
from dlg.functions.creation import dtype_arg
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import CAST
from dlg.ir.ops.fft import FFT_C2C, FFT_C2R, FFT_R2C, NORMS
from dlg.ir.ops.shape import PAD, SLICE


def _input(x: Any, what: str) -> Tensor:
    x = tensor_argument(x, f"{what}: input")
    if not (x.dtype.is_inexact or x.dtype.is_int or x.dtype == DType.bool):
        raise DlgTypeError(f"{what}: unsupported dtype {x.dtype!r}", engine.caller_span())
    return x if x.dtype.is_inexact else apply(CAST, x, dtype=DType.f32)


def _real(x: Tensor, what: str) -> Tensor:
    if x.dtype.is_complex:
        raise DlgTypeError(f"{what} expects a real input tensor, but got {x.dtype!r}",
                           engine.caller_span())
    return x if x.dtype in (DType.f32, DType.f64) else apply(CAST, x, dtype=DType.f32)


def _complex(x: Tensor) -> Tensor:
    if x.dtype.is_complex:
        return x
    return apply(CAST, x, dtype=x.dtype.to_complex)


def _norm(norm: str | None, what: str) -> str:
    if norm is None:
        return "backward"
    if norm not in NORMS:
        raise DlgValueError(f"{what}: invalid normalization mode {norm!r} (one of "
                            f"{', '.join(NORMS)} or None)", engine.caller_span())
    return norm


def _dims(x: Tensor, s: Sequence[int] | None, dim: Any, what: str
          ) -> tuple[tuple[int, ...], tuple[int | None, ...]]:
    """The transformed axes (normalised, in the given order) and each one's length (None:
    as it is); torch's defaults: every axis, or the last len(s) when only s is given."""
    if isinstance(dim, int):
        dim = (dim,)
    if s is not None and isinstance(s, int):
        s = (s,)
    if dim is None:
        dim = tuple(range(x.ndim - len(s), x.ndim)) if s is not None else tuple(range(x.ndim))
    axes = []
    for d in dim:
        if not -max(x.ndim, 1) <= d < max(x.ndim, 1):
            raise DlgValueError(f"{what}: dim {d} is out of range for a {x.ndim}-d tensor",
                                engine.caller_span())
        axes.append(d % max(x.ndim, 1))
    if len(set(axes)) != len(axes) or not axes:
        raise DlgValueError(f"{what}: dims must be one or more distinct axes, got {list(dim)}",
                            engine.caller_span())
    if s is not None and len(s) != len(axes):
        raise DlgValueError(f"{what}: when given, dim and shape arguments must have the same "
                            f"length (s={list(s)}, dim={list(dim)})", engine.caller_span())
    sizes = tuple(None if s is None or s[i] == -1 else int(s[i]) for i in range(len(axes)))
    if any(n is not None and n < 1 for n in sizes):
        raise DlgValueError(f"{what}: invalid number of data points ({list(s or ())}) "
                            f"specified", engine.caller_span())
    return tuple(axes), sizes


def _resized(x: Tensor, axis: int, n: int | None) -> Tensor:
    """x cropped or zero-padded to n along axis (torch's n / s)."""
    have = x.shape[axis]
    if n is None or n == have:
        return x
    if n < have:
        return apply(SLICE, x, axes=(axis,), starts=(0,), stops=(n,), steps=(1,))
    return apply(PAD, x, pads=tuple((0, n - have) if i == axis else (0, 0)
                                    for i in range(x.ndim)))


def _c2c(input: Any, s: Any, dim: Any, norm: str | None, inverse: bool, what: str) -> Tensor:
    x = _input(input, what)
    axes, sizes = _dims(x, s, dim, what)
    for axis, n in zip(axes, sizes):
        x = _resized(x, axis, n)
    return apply(FFT_C2C, _complex(x), axes=axes, inverse=inverse, norm=_norm(norm, what))


def _r2c(input: Any, s: Any, dim: Any, norm: str | None, what: str) -> Tensor:
    x = _real(_input(input, what), what)
    axes, sizes = _dims(x, s, dim, what)
    for axis, n in zip(axes, sizes):
        x = _resized(x, axis, n)
    return apply(FFT_R2C, x, axes=axes, norm=_norm(norm, what))


def _c2r(input: Any, s: Any, dim: Any, norm: str | None, what: str) -> Tensor:
    x = _complex(_input(input, what))
    axes, sizes = _dims(x, s, dim, what)
    for axis, n in zip(axes[:-1], sizes[:-1]):
        x = _resized(x, axis, n)
    last = axes[-1]
    n = sizes[-1] if sizes[-1] is not None else 2 * (x.shape[last] - 1)
    if n < 1:
        raise DlgValueError(f"{what}: invalid number of data points ({n}) specified",
                            engine.caller_span())
    x = _resized(x, last, n // 2 + 1)
    return apply(FFT_C2R, x, axes=axes, n=n, norm=_norm(norm, what))


# ---- the transforms, with torch's signatures --------------------------------------------------
def fft(input: Any, n: int | None = None,  # noqa: A002
        dim: int = -1, norm: str | None = None) -> Tensor:
    return _c2c(input, None if n is None else (n,), (dim,), norm, False, "fft")


def ifft(input: Any, n: int | None = None,  # noqa: A002
         dim: int = -1, norm: str | None = None) -> Tensor:
    return _c2c(input, None if n is None else (n,), (dim,), norm, True, "ifft")


def rfft(input: Any, n: int | None = None,  # noqa: A002
         dim: int = -1, norm: str | None = None) -> Tensor:
    return _r2c(input, None if n is None else (n,), (dim,), norm, "rfft")


def irfft(input: Any, n: int | None = None,  # noqa: A002
          dim: int = -1, norm: str | None = None) -> Tensor:
    return _c2r(input, (n if n is not None else -1,), (dim,), norm, "irfft")


def fft2(input: Any, s: Any = None, dim: Any = (-2, -1), norm: str | None = None) -> Tensor:  # noqa: A002
    return _c2c(input, s, dim, norm, False, "fft2")


def ifft2(input: Any, s: Any = None, dim: Any = (-2, -1), norm: str | None = None) -> Tensor:  # noqa: A002
    return _c2c(input, s, dim, norm, True, "ifft2")


def rfft2(input: Any, s: Any = None, dim: Any = (-2, -1), norm: str | None = None) -> Tensor:  # noqa: A002
    return _r2c(input, s, dim, norm, "rfft2")


def irfft2(input: Any, s: Any = None, dim: Any = (-2, -1), norm: str | None = None) -> Tensor:  # noqa: A002
    return _c2r(input, s, dim, norm, "irfft2")


def fftn(input: Any, s: Any = None,  # noqa: A002
         dim: Any = None, norm: str | None = None) -> Tensor:
    return _c2c(input, s, dim, norm, False, "fftn")


def ifftn(input: Any, s: Any = None,  # noqa: A002
          dim: Any = None, norm: str | None = None) -> Tensor:
    return _c2c(input, s, dim, norm, True, "ifftn")


def rfftn(input: Any, s: Any = None,  # noqa: A002
          dim: Any = None, norm: str | None = None) -> Tensor:
    return _r2c(input, s, dim, norm, "rfftn")


def irfftn(input: Any, s: Any = None,  # noqa: A002
           dim: Any = None, norm: str | None = None) -> Tensor:
    return _c2r(input, s, dim, norm, "irfftn")


# ---- Hermitian transforms: a Hermitian signal's spectrum is real (hfft), and back (ihfft) ------
_DUAL = {"backward": "forward", "ortho": "ortho", "forward": "backward"}


def _hermitian(input: Any, s: Any, dim: Any, norm: str | None, what: str) -> Tensor:
    """hfftn(x) = irfftn(conj(x)) under the dual norm (hfft is a forward transform)."""
    x = _complex(_input(input, what))
    return _c2r(x.conj(), s, dim, _DUAL[_norm(norm, what)], what)


def _inverse_hermitian(input: Any, s: Any, dim: Any, norm: str | None, what: str) -> Tensor:
    """ihfftn(x) = conj(rfftn(x)) under the dual norm."""
    return _r2c(input, s, dim, _DUAL[_norm(norm, what)], what).conj()


def hfft(input: Any, n: int | None = None,  # noqa: A002
         dim: int = -1, norm: str | None = None) -> Tensor:
    return _hermitian(input, (n if n is not None else -1,), (dim,), norm, "hfft")


def ihfft(input: Any, n: int | None = None,  # noqa: A002
          dim: int = -1, norm: str | None = None) -> Tensor:
    return _inverse_hermitian(input, None if n is None else (n,), (dim,), norm, "ihfft")


def hfft2(input: Any, s: Any = None,  # noqa: A002
          dim: Any = (-2, -1), norm: str | None = None) -> Tensor:
    return _hermitian(input, s, dim, norm, "hfft2")


def ihfft2(input: Any, s: Any = None,  # noqa: A002
           dim: Any = (-2, -1), norm: str | None = None) -> Tensor:
    return _inverse_hermitian(input, s, dim, norm, "ihfft2")


def hfftn(input: Any, s: Any = None,  # noqa: A002
          dim: Any = None, norm: str | None = None) -> Tensor:
    return _hermitian(input, s, dim, norm, "hfftn")


def ihfftn(input: Any, s: Any = None,  # noqa: A002
           dim: Any = None, norm: str | None = None) -> Tensor:
    return _inverse_hermitian(input, s, dim, norm, "ihfftn")


# ---- sample frequencies and shifts ------------------------------------------------------------
def _frequencies(values: np.ndarray, d: float, dtype: Any, requires_grad: bool,
                 device: Any, what: str) -> Tensor:
    out = DType.f32 if dtype is None else checked(dtype_arg, dtype, f"{what}(): dtype")
    if not out.is_float:
        raise DlgTypeError(f"{what}(): dtype must be a float dtype, got {out!r}",
                           engine.caller_span())
    return leaf(Tensor.of((values / d).astype(out.np)), requires_grad, device)


def fftfreq(n: int, d: float = 1.0, *, dtype: Any = None, device: Any = None,
            requires_grad: bool = False, **_: Any) -> Tensor:
    """The sample frequencies of an n-point fft: [0, 1, ..., -(n // 2), ..., -1] / (d n)."""
    return _frequencies(np.fft.fftfreq(n), d, dtype, requires_grad, device, "fftfreq")


def rfftfreq(n: int, d: float = 1.0, *, dtype: Any = None, device: Any = None,
             requires_grad: bool = False, **_: Any) -> Tensor:
    """The sample frequencies of an n-point rfft: [0, 1, ..., n // 2] / (d n)."""
    return _frequencies(np.fft.rfftfreq(n), d, dtype, requires_grad, device, "rfftfreq")


def _shift(input: Any, dim: Any, sign: int) -> Tensor:
    x = tensor_argument(input, "input")
    dims = tuple(range(x.ndim)) if dim is None else (dim,) if isinstance(dim, int) else tuple(dim)
    if not dims:
        return x
    shifts = tuple(sign * (x.shape[d] // 2) for d in dims)
    return call("roll", x, shifts, dims)





def fftshift(input: Any, dim: Any = None) -> Tensor:  # noqa: A002
    """The zero frequency moved to the middle: a roll by n // 2 along each dim."""
    return _shift(input, dim, 1)


def ifftshift(input: Any, dim: Any = None) -> Tensor:  # noqa: A002
    """fftshift's inverse: a roll by -(n // 2)."""
    return _shift(input, dim, -1)


# ---- torch's spectral windows (audio features framed by hand: x.unfold, a window, rfft) ---------
def _window(name: str, shape: Any) -> Any:
    def window(window_length: int, periodic: bool = True, *args: float, dtype: Any = None,
               device: Any = None, requires_grad: bool = False, **_: Any) -> Tensor:
        if not isinstance(window_length, int) or window_length < 0:
            raise DlgValueError(f"{name}(): window_length must be a non-negative int, got "
                                f"{window_length!r}", engine.caller_span())
        out = DType.f32 if dtype is None else checked(dtype_arg, dtype, f"{name}(): dtype")
        if not out.is_float:
            raise DlgTypeError(f"{name}(): dtype must be a float dtype, got {out!r}",
                               engine.caller_span())
        if window_length <= 1:
            values = np.ones(window_length)
        else:
            n = np.arange(window_length, dtype=np.float64)
            values = shape(n, window_length if periodic else window_length - 1, *args)
        return leaf(Tensor.of(values.astype(out.np)), requires_grad, device)
    window.__name__ = window.__qualname__ = name
    window.__doc__ = f"torch.{name}: periodic by default (the window of length + 1, its last "
    "point dropped)."
    return window


def _cosines(n: np.ndarray, d: int, *coefficients: float) -> np.ndarray:
    """sum_k (-1)^k a_k cos(2 pi k n / d)."""
    return sum((-1) ** k * a * np.cos(2 * np.pi * k * n / d) for k, a in enumerate(coefficients))


def stft(input: Any, n_fft: int, hop_length: int | None = None,  # noqa: A002
         win_length: int | None = None, window: Any = None, center: bool = True,
         pad_mode: str = "reflect", normalized: bool = False, onesided: bool | None = None,
         return_complex: bool | None = None) -> Tensor:
    """torch.stft (Whisper's log-mel front end): frames of n_fft samples every hop_length (the
    signal padded by n_fft // 2 each side with `pad_mode` when `center`), each times the window
    (zero-padded to n_fft, centred) and transformed, as [..., freq, frames]; the one-sided half
    for real input and window unless onesided=False. Built of pad, unfold and rfft/fft, so
    gradients flow."""
    x = _input(input, "stft")
    if window is None:
        warnings.warn("A window was not provided. A rectangular window will be applied,which is "
                      "known to cause spectral leakage. Other windows such as "
                      "torch.hann_window or torch.hamming_window are recommended to reduce "
                      "spectral leakage.To suppress this warning and use a rectangular window, "
                      "explicitly set `window=torch.ones(n_fft, device=<device>)`.",
                      UserWarning, stacklevel=2)
    if return_complex is None and not x.dtype.is_complex:
        raise DlgValueError("stft requires the return_complex parameter be given for real "
                            "inputs (as torch does): return_complex=True",
                            engine.caller_span())
    if x.ndim not in (1, 2):
        raise DlgValueError(f"stft: expected a 1D or 2D tensor, got {x.ndim}D",
                            engine.caller_span())
    hop = n_fft // 4 if hop_length is None else hop_length
    width = n_fft if win_length is None else win_length
    if not 0 < width <= n_fft or hop <= 0:
        raise DlgValueError(f"stft: expected 0 < win_length <= n_fft and hop_length > 0, got "
                            f"n_fft={n_fft}, win_length={width}, hop_length={hop}",
                            engine.caller_span())
    signal = x if x.ndim == 2 else x.unsqueeze(0)
    if center:
        signal = call("pad", signal.unsqueeze(0), (n_fft // 2, n_fft // 2),
                      mode=pad_mode).squeeze(0)
    if signal.shape[-1] < n_fft:
        raise DlgValueError(f"stft: the (padded) signal has {signal.shape[-1]} samples, fewer "
                            f"than n_fft={n_fft}", engine.caller_span())
    frames = signal.unfold(-1, n_fft, hop)  # [batch, frames, n_fft]
    if window is not None:
        window = tensor_argument(window, "stft: window")
        if tuple(window.shape) != (width,):
            raise DlgValueError(f"stft: expected a 1D window tensor of size equal to "
                                f"win_length={width}, but got window with size "
                                f"{list(window.shape)}", engine.caller_span())
        left = (n_fft - width) // 2
        frames = frames * call("pad", window, (left, n_fft - width - left))
    elif width < n_fft:  # a window of ones, zero-padded
        left = (n_fft - width) // 2
        frames = frames[..., left:left + width]
        frames = call("pad", frames, (left, n_fft - width - left))
    real = not frames.dtype.is_complex
    half = real if onesided is None else onesided
    if half and not real:
        raise DlgValueError("stft: cannot have onesided output if window or input is complex",
                            engine.caller_span())
    spectrum = rfft(frames, dim=-1) if half else fft(frames, dim=-1)
    if normalized:
        spectrum = spectrum * n_fft ** -0.5
    out = spectrum.transpose(-1, -2)
    out = out if x.ndim == 2 else out.squeeze(0)
    if return_complex is False:  # torch's older real layout
        return view_as_real(out)
    return out


Tensor.stft = stft  # type: ignore[attr-defined]

WINDOWS = {
    "hann_window": _window("hann_window", lambda n, d: _cosines(n, d, 0.5, 0.5)),
    "hamming_window": _window("hamming_window", lambda n, d, alpha=0.54, beta=0.46:
                              _cosines(n, d, alpha, beta)),
    "blackman_window": _window("blackman_window", lambda n, d: _cosines(n, d, 0.42, 0.5, 0.08)),
    "bartlett_window": _window("bartlett_window", lambda n, d: 1 - np.abs(2 * n / d - 1)),
}


__all__ = ["fft", "fft2", "fftfreq", "fftn", "fftshift", "hfft", "hfft2", "hfftn", "ifft",
           "ifft2", "ifftn", "ifftshift", "ihfft", "ihfft2", "ihfftn", "irfft", "irfft2", "irfftn",
           "rfft", "rfft2", "rfftfreq", "rfftn"]
