"""`dlg.special`: the names of torch.special whose math dlg computes. Most are dlg's own
functions under torch.special's other name (expit is sigmoid, gammaln lgamma, psi digamma,
multigammaln mvlgamma); xlog1py, entr and the normal distribution's ndtr, ndtri and log_ndtr
are composed here of dlg's functions, so they trace and differentiate as their parts do.
Bessel, zeta, erfcx, gammainc and the orthogonal polynomials are not in dlg: asking for one is
a DlgAttributeError naming it."""

from __future__ import annotations

import math
from typing import Any

from dlg.errors import DlgAttributeError
from dlg.frontend import functional as _f
from dlg.frontend.engine import caller_span as _caller_span

digamma = psi = _f.digamma
erf, erfc, erfinv = _f.erf, _f.erfc, _f.erfinv
exp2, expm1, log1p = _f.exp2, _f.expm1, _f.log1p
expit = _f.sigmoid
gammaln = _f.lgamma
i0 = _f.i0
logit = _f.logit
logsumexp = _f.logsumexp
multigammaln = _f.mvlgamma
polygamma = _f.polygamma
sinc = _f.sinc
xlogy = _f.xlogy


def softmax(input: Any, dim: int, *, dtype: Any = None) -> Any:  # noqa: A002
    """torch.special.softmax: dim is required (no implicit-dim guess)."""
    return _f.softmax(input, dim, dtype=dtype)


def log_softmax(input: Any, dim: int, *, dtype: Any = None) -> Any:  # noqa: A002
    """torch.special.log_softmax: dim is required."""
    return _f.log_softmax(input, dim, dtype=dtype)


def round(input: Any, *, decimals: int = 0) -> Any:  # noqa: A001, A002
    """torch.special.round: decimals by keyword."""
    return _f.round(input, decimals=decimals)


def xlog1py(input: Any, other: Any) -> Any:  # noqa: A002
    """input * log1p(other), 0 where input is 0 unless other is NaN (torch's xlogy rule)."""
    x, y = _f.broadcast_tensors(*_floats(input, other))
    product = _f.where(x == 0, _f.zeros_like(x), x * _f.log1p(y))
    return _f.where(_f.isnan(y), y, product)


def entr(input: Any) -> Any:  # noqa: A002
    """-x log x elementwise: 0 at 0, -inf below 0 (NaN stays NaN), as torch's."""
    (x,) = _floats(input)
    negative = _f.where(x < 0, _f.full_like(x, -math.inf), _f.zeros_like(x))
    return _f.where(x > 0, -x * _f.log(x), _f.where(_f.isnan(x), x, negative))


def ndtr(input: Any) -> Any:  # noqa: A002
    """The standard normal CDF, erfc(-x/sqrt(2)) / 2 (keeps the lower tail's precision)."""
    (x,) = _floats(input)
    return 0.5 * _f.erfc(x * -math.sqrt(0.5))


def ndtri(input: Any) -> Any:  # noqa: A002
    """The standard normal quantile, sqrt(2) erfinv(2p - 1): NaN outside [0, 1]."""
    (p,) = _floats(input)
    return math.sqrt(2.0) * _f.erfinv(2.0 * p - 1.0)


def log_ndtr(input: Any) -> Any:  # noqa: A002
    """log of the normal CDF: log1p(-ndtr(-x)) above 0 and log(ndtr(x)) down to -5; below,
    where ndtr underflows float32, the asymptotic series -x^2/2 - log(-x sqrt(2 pi)) +
    log(1 - 1/x^2 + 3/x^4 - 15/x^6) (its error is below float32's there)."""
    (x,) = _floats(input)
    upper = _f.log1p(-ndtr(-_f.clamp(x, min=0.0)))
    middle = _f.log(ndtr(_f.clamp(x, min=-5.0, max=0.0)))
    t = _f.clamp(x, max=-5.0)
    r = 1.0 / (t * t)
    series = 1.0 - r + 3.0 * r * r - 15.0 * r * r * r
    tail = -0.5 * t * t - _f.log(-t * math.sqrt(2.0 * math.pi)) + _f.log(series)
    return _f.where(x > 0, upper, _f.where(x < -5.0, tail, middle))


def _floats(*values: Any) -> list[Any]:
    """Tensors of torch's float promotion (ints and bools become float32)."""
    tensors = [v if isinstance(v, _f.Tensor) else _f.tensor(v) for v in values]
    return [t if t.dtype.is_float else t.float() for t in tensors]


_NOT_IN_DLG = {"airy_ai", "bessel_j0", "bessel_j1", "bessel_y0", "bessel_y1", "erfcx",
               "gammainc", "gammaincc", "i0e", "i1", "i1e", "modified_bessel_i0",
               "modified_bessel_i1", "modified_bessel_k0", "modified_bessel_k1",
               "scaled_modified_bessel_k0", "scaled_modified_bessel_k1", "spherical_bessel_j0",
               "zeta"}


def __getattr__(name: str) -> Any:
    """torch.special's functions dlg lacks: a DlgAttributeError (also an AttributeError for
    hasattr) naming the function, not a bare missing-attribute error."""
    if name in _NOT_IN_DLG or "_polynomial_" in name:
        raise _Missing(f"dlg.special.{name}: torch.special.{name} is not implemented in dlg "
                       f"(dlg.special has {', '.join(__all__)})", _caller_span())
    raise AttributeError(f"module 'dlg.special' has no attribute {name!r}")


class _Missing(DlgAttributeError, AttributeError):
    """A torch.special function dlg does not have (hasattr(dlg.special, name) stays False)."""


__all__ = ["digamma", "entr", "erf", "erfc", "erfinv", "exp2", "expit", "expm1", "gammaln", "i0",
           "log1p", "log_ndtr", "log_softmax", "logit", "logsumexp", "multigammaln", "ndtr",
           "ndtri", "polygamma", "psi", "round", "sinc", "softmax", "xlog1py", "xlogy"]
