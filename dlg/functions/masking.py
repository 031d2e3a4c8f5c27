"""masked_fill: `where(mask, value, x)`, with PyTorch's rules for the value: a number or a 0-d
tensor, converted to x's dtype (a float meeting an int tensor truncates), while the mask, a bool
tensor, broadcasts with x. A composite, so its gradient (to x and to a tensor value) is where's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.functions.args import describe, is_static, tensor
from dlg.functions.front import Front
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import CAST, WHERE


def masked_fill(F: Front, x: Any, mask: Any, value: Any) -> Any:
    """x with `value` where `mask` is true."""
    t = F.type_of(tensor(F, x, "masked_fill's argument"))
    m = F.type_of(tensor(F, mask, "masked_fill: mask"))
    if m.dtype != DType.bool:
        raise DlgTypeError(f"masked_fill: mask must be a bool tensor, got {m}")
    if F.is_tensor(value):
        v = F.type_of(value)
        if v.rank:
            raise DlgShapeError(f"masked_fill: value must be a number or a 0-d tensor, got {v}")
        fill = value if v.dtype == t.dtype else F.emit(CAST, value, dtype=t.dtype)
    elif is_static(value):
        fill = F.lift(np.asarray(value).astype(t.dtype.np), t.dtype)
    else:
        raise DlgTypeError(f"masked_fill: value must be a number or a 0-d tensor, got "
                           f"{describe(F, value)}")
    return F.emit(WHERE, mask, fill, x)
