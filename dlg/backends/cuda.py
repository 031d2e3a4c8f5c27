"""`dlg.backends.cuda`: torch.backends.cuda's `matmul` switches (`allow_tf32`, the reduced
precision reductions) with torch's defaults, recorded only (eager dlg has no CUDA; `is_built()`
is False as torch's CPU build). `matmul.allow_tf32` is the float32 matmul precision seen as a
bool, as in torch: True sets 'high', False 'highest'."""

from __future__ import annotations

from typing import Any

from dlg.backends import precision
from dlg.backends.flags import Flag, checked_bool


def is_built() -> bool:
    return False


class _Matmul:
    """torch.backends.cuda.matmul."""

    allow_fp16_reduced_precision_reduction = Flag(True)
    allow_bf16_reduced_precision_reduction = Flag(True)

    @property
    def allow_tf32(self) -> bool:
        return precision.get_float32_matmul_precision() != "highest"

    @allow_tf32.setter
    def allow_tf32(self, value: Any) -> None:
        high = checked_bool("allow_tf32", value)
        precision.set_float32_matmul_precision("high" if high else "highest")


matmul = _Matmul()
