"""How tensors print, as torch prints them (torch/_tensor_str.py's rules): `tensor_string` lays
out the values (a precision of 4, integral floats as `1.`, scientific notation when the finite
nonzero magnitudes span more than 1000 or pass 1e8 or fall under 1e-4, rows aligned under the
first bracket, summarised past 1000 elements with 3 at each edge), and torch.set_printoptions
changes those numbers (precision, threshold, edgeitems, linewidth, sci_mode, or one of torch's
profiles); complex values with one layout for the real parts and one for the imaginary."""

from __future__ import annotations

import math
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


def _option(name: str) -> Any:
    value = OPTIONS.get(name)
    return _PROFILES["default"][name] if value is None else value


class _Formatter:
    """torch's _Formatter: one width and notation for all the values printed."""

    def __init__(self, values: np.ndarray):
        self.floating = values.dtype.kind == "f"
        self.int_mode, self.sci_mode, self.width = True, False, 1
        self.precision = _option("precision")
        flat = values.reshape(-1)
        if not self.floating:
            self.width = max([1, *(len(str(v)) for v in flat.tolist())])
        else:
            finite = flat[np.isfinite(flat) & (flat != 0)].astype(np.float64)
            if not finite.size:  # no number to size (torch's early return)
                return
            magnitudes = np.abs(finite)
            low, high = magnitudes.min(), magnitudes.max()
            self.int_mode = bool(np.all(finite == np.ceil(finite)))
            forced = OPTIONS.get("sci_mode")
            self.sci_mode = (high / low > 1000.0 or high > 1.0e8 or low < 1.0e-4
                             if forced is None else forced)
            for v in finite.tolist():
                text = (f"{v:.{self.precision}e}" if self.sci_mode else f"{v:.0f}."
                        if self.int_mode else f"{v:.{self.precision}f}")
                self.width = max(self.width, len(text))

    def format(self, value: Any) -> str:
        if not self.floating:
            text = str(value)
        elif self.sci_mode:
            text = f"{value:{self.width}.{self.precision}e}"
        elif self.int_mode:
            text = f"{value:.0f}" + ("" if math.isinf(value) or math.isnan(value) else ".")
        else:
            text = f"{value:.{self.precision}f}"
        return (self.width - len(text)) * " " + text


class _Complex:
    """torch's pair of formatters for complex values: the real parts', the imaginary parts'."""

    def __init__(self, values: np.ndarray):
        self.real, self.imag = _Formatter(values.real), _Formatter(values.imag)
        self.width = self.real.width + self.imag.width + 1  # and a j

    def format(self, value: complex) -> str:
        imag = (self.imag.format(value.imag) + "j").lstrip()
        return self.real.format(value.real) + ("" if imag[0] in "+-" else "+") + imag


def tensor_string(values: np.ndarray, indent: int) -> str:
    """The values as torch's repr shows them, rows indented by `indent` (the prefix's length)."""
    if values.size == 0:
        return "[]"
    if values.dtype == np.float16:
        values = values.astype(np.float32)
    summarize = values.size > _option("threshold")
    shown = _summarized(values) if summarize else values
    formatter = _Complex(shown) if values.dtype.kind == "c" else _Formatter(shown)
    return _nested(values, indent, summarize, formatter)


def _summarized(values: np.ndarray) -> np.ndarray:
    """The values a summarised print shows (edgeitems at each end of each axis)."""
    edge = _option("edgeitems")
    for axis in range(values.ndim):
        if values.shape[axis] > 2 * edge:
            values = np.concatenate([values.take(range(edge), axis),
                                     values.take(range(values.shape[axis] - edge,
                                                       values.shape[axis]), axis)], axis)
    return values


def _nested(values: np.ndarray, indent: int, summarize: bool, formatter: _Formatter | _Complex
            ) -> str:
    edge = _option("edgeitems")
    if values.ndim == 0:
        return formatter.format(values.item())
    if values.ndim == 1:
        per_line = max(1, (_option("linewidth") - indent) // (formatter.width + 2))
        items = values.tolist()
        if summarize and len(items) > 2 * edge:
            data = ([formatter.format(v) for v in items[:edge]] + [" ..."]
                    + [formatter.format(v) for v in items[-edge:]])
        else:
            data = [formatter.format(v) for v in items]
        lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    rows = range(len(values))
    if summarize and len(values) > 2 * edge:
        rows = [*range(edge), -1, *range(len(values) - edge, len(values))]
    slices = ["..." if i == -1 else _nested(values[i], indent + 1, summarize, formatter)
              for i in rows]
    return "[" + ("," + "\n" * (values.ndim - 1) + " " * (indent + 1)).join(slices) + "]"


def with_suffixes(text: str, suffixes: list[str], indent: int) -> str:
    """torch's _add_suffixes: `, suffix` on the last line while it fits the line width, else
    on a line of its own."""
    parts, last = [text], len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last + len(suffix) + 2 > _option("linewidth"):
            parts.append(",\n" + " " * indent + suffix)
            last = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last += len(suffix) + 2
    return "".join(parts) + ")"
