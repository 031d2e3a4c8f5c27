"""torch.set_printoptions: how tensors print their values (precision, threshold, edgeitems,
linewidth, sci_mode, or one of torch's profiles). Until options are set, a tensor prints as
NumPy prints its array, summarised past 50 elements."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.frontend import engine

_PROFILES = {  # torch's
    "default": {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80},
    "short": {"precision": 2, "threshold": 1000, "edgeitems": 2, "linewidth": 80},
    "full": {"precision": 4, "threshold": sys.maxsize, "edgeitems": 3, "linewidth": 80},
}
OPTIONS: dict[str, Any] = {}  # what set_printoptions was given


def set_printoptions(precision: int | None = None, threshold: float | None = None,
                     edgeitems: int | None = None, linewidth: int | None = None,
                     profile: str | None = None, sci_mode: bool | None = None) -> None:
    """torch.set_printoptions: a profile ('default', 'short', 'full') first, then the options
    given; sci_mode True or False forces scientific or positional notation, None chooses."""
    if profile is not None:
        if profile not in _PROFILES:
            raise DlgValueError(f"set_printoptions: profile must be one of "
                                f"{', '.join(_PROFILES)}, got {profile!r}", engine.caller_span())
        OPTIONS.update(_PROFILES[profile])
    given = {"precision": precision, "threshold": threshold, "edgeitems": edgeitems,
             "linewidth": linewidth}
    OPTIONS.update({k: v for k, v in given.items() if v is not None})
    OPTIONS["sci_mode"] = sci_mode


def array_string(values: np.ndarray) -> str:
    """The values as repr(tensor) shows them, under the options set."""
    if not OPTIONS:
        return np.array2string(values, separator=", ", threshold=50)
    precision = OPTIONS.get("precision", 8)
    formatter = None
    if OPTIONS.get("sci_mode") is True:
        formatter = {"float_kind": lambda v: np.format_float_scientific(
            v, precision=precision, unique=False)}
    return np.array2string(
        values, separator=", ", precision=precision, threshold=int(min(
            OPTIONS.get("threshold", 50), sys.maxsize)), edgeitems=OPTIONS.get("edgeitems", 3),
        max_line_width=OPTIONS.get("linewidth", 75), suppress_small=OPTIONS.get("sci_mode") is
        False, floatmode="maxprec_equal", formatter=formatter)
