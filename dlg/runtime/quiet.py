"""NumPy's floating-point warnings off around a call (log(0) is -inf and 0/0 nan, silently, as in
torch and compiled code), at a tenth of `np.errstate`'s cost:

    token = ignore_warnings()
    try:
        out = np.log(x)
    finally:
        restore_warnings(token)

`with np.errstate(all="ignore")` costs ~0.85 us, most of it building the error state again in
`__enter__`: more than a small eager op's NumPy call. NumPy 2 keeps that state in a context
variable, so the state is built once here and each call only sets and resets the variable
(~0.1 us, C calls), exactly what `errstate.__enter__`/`__exit__` do (their state also carries
the caller's `np.setbufsize`, a speed setting, where this one has NumPy's default). NumPy 1.x
keeps it per thread, set through `np.seterr`, which returns the state to restore.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

ignore_warnings: Callable[[], Any]
restore_warnings: Callable[[Any], Any]
try:
    from numpy._core._ufunc_config import _extobj_contextvar
    from numpy._core.umath import _make_extobj
except ImportError:  # NumPy 1.x
    ignore_warnings = functools.partial(np.seterr, all="ignore")

    def restore_warnings(token: Any) -> Any:
        return np.seterr(**token)
else:
    ignore_warnings = functools.partial(_extobj_contextvar.set, _make_extobj(all="ignore"))
    restore_warnings = _extobj_contextvar.reset
