"""`dlg.set_float32_matmul_precision` / `get_float32_matmul_precision`: torch's float32 matmul
precision ('highest', 'high', 'medium'), which lets CUDA use TF32 or bfloat16 passes. Eager dlg
multiplies float32 on the CPU at full precision whatever it says; it is kept so a program reads
back what it set, and `dlg.backends.cuda.matmul.allow_tf32` is the same setting seen as torch's
legacy flag (True for 'high' and 'medium')."""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend.engine import caller_span

PRECISIONS = ("highest", "high", "medium")
_state = {"precision": "highest"}


def set_float32_matmul_precision(precision: Any) -> None:
    """torch's values only: a str not among them is a DlgValueError (torch warns and ignores it,
    which would leave a program believing it set something)."""
    if not isinstance(precision, str):
        raise DlgTypeError(f"set_float32_matmul_precision expects a str, but got "
                           f"{type(precision).__name__}", caller_span())
    if precision not in PRECISIONS:
        raise DlgValueError(f"{precision!r} is not one of 'highest', 'high', or 'medium'",
                            caller_span())
    _state["precision"] = precision


def get_float32_matmul_precision() -> str:
    return _state["precision"]
