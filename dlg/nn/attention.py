"""`dlg.nn.attention`: torch.nn.attention's choice of scaled_dot_product_attention kernels,
for programs that pin one (`with sdpa_kernel(SDPBackend.FLASH_ATTENTION):`). dlg has one
implementation of F.scaled_dot_product_attention, the math one, whose numbers torch's fused
kernels agree with to rounding, so the choice is checked and changes nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from enum import IntEnum

from dlg.errors import DlgTypeError
from dlg.frontend import engine


class SDPBackend(IntEnum):
    """torch.nn.attention.SDPBackend, its values torch's."""

    ERROR = -1
    MATH = 0
    FLASH_ATTENTION = 1
    EFFICIENT_ATTENTION = 2
    CUDNN_ATTENTION = 3
    OVERRIDEABLE = 4

    def __str__(self) -> str:
        return f"SDPBackend.{self.name}"


@contextlib.contextmanager
def sdpa_kernel(backends: SDPBackend | Iterable[SDPBackend], set_priority: bool = False
                ) -> Iterator[None]:
    """torch's context manager: within it, scaled_dot_product_attention may use only
    `backends`; on dlg every backend computes as the math one does."""
    chosen = ([backends] if isinstance(backends, SDPBackend) else list(backends)
              if isinstance(backends, (list, tuple, set)) else [])
    if not chosen or not all(isinstance(b, SDPBackend) for b in chosen):
        raise DlgTypeError(f"sdpa_kernel: backends must be an SDPBackend or a list of them, "
                           f"got {backends!r}", engine.caller_span())
    yield


__all__ = ["SDPBackend", "sdpa_kernel"]
