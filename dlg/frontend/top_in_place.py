"""torch's top-level in-place functions (`torch.sin_(b)`, the Introduction to PyTorch tensors
tutorial's; `torch.zero_`, `torch.clamp_`, ...): each is the tensor method of its name, so
`dlg.sin_(x)` is `x.sin_()` (recorded, traced and version-counted as that method is)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dlg.errors import DlgTypeError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor

NAMES = ("abs_", "acos_", "acosh_", "addmv_", "arccos_", "arccosh_", "arcsin_", "arcsinh_",
         "arctan_", "arctanh_", "asin_", "asinh_", "atan_", "atanh_", "ceil_", "clamp_",
         "clamp_max_", "clamp_min_", "clip_", "cos_", "cosh_", "deg2rad_", "detach_", "erf_",
         "erfc_", "exp2_", "exp_", "expm1_", "fill_", "fix_", "floor_", "frac_", "gcd_", "i0_",
         "index_put_", "lcm_", "ldexp_", "log10_", "log1p_", "log2_", "log_", "logit_",
         "nan_to_num_", "neg_", "negative_", "rad2deg_", "reciprocal_", "round_", "rsqrt_",
         "sigmoid_", "sin_", "sinc_", "sinh_", "sqrt_", "square_", "tan_", "tanh_", "trunc_",
         "xlogy_", "zero_")


def _function(name: str) -> Callable[..., Any]:
    def write(input: Tensor, *args: Any, **kwargs: Any) -> Any:  # noqa: A002 (torch's name)
        if not isinstance(input, Tensor):
            raise DlgTypeError(f"{name}() writes into a tensor, got {type(input).__name__}",
                               engine.caller_span())
        return getattr(input, name)(*args, **kwargs)
    write.__name__ = write.__qualname__ = name
    write.__module__ = "dlg"
    write.__doc__ = f"`input.{name}(...)`, torch's top-level spelling."
    return write


FUNCTIONS = {name: _function(name) for name in NAMES if hasattr(Tensor, name)}
