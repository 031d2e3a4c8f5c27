"""torch's lazy modules beyond LazyLinear (nn/layers.py): LazyConv1d/2d/3d,
LazyConvTranspose1d/2d/3d, LazyBatchNorm1d/2d/3d and LazyInstanceNorm1d/2d/3d, of which d2l.ai
builds its CNNs. Each takes its module's arguments but the input channels; its first call reads
them from the input (axis 1, axis 0 of an unbatched one), draws the parameters and makes the
module that plain module (`type(m)` is then nn.Conv2d, ...), as torch does. Until then it has
no parameters, so give an optimizer its parameters after a first call (d2l's dummy forward)."""

from __future__ import annotations

from typing import Any

from dlg.frontend.nn.conv import (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d,
                                  ConvTranspose3d)
from dlg.frontend.nn.module import Module
from dlg.frontend.nn.norms import (BatchNorm1d, BatchNorm2d, BatchNorm3d, InstanceNorm1d,
                                   InstanceNorm2d, InstanceNorm3d)
from dlg.frontend.tensor import Tensor

# what a module keeps of its lazy self: its hooks and its train/eval mode
_KEPT = ("_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks",
         "training")


class _Lazy(Module):
    becomes: type[Module]
    unbatched_rank = -1  # an input of this rank has no batch axis (channels at axis 0)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()
        self._lazy_args = (args, kwargs)

    def forward(self, x: Tensor, *rest: Any) -> Any:
        args, kwargs = self._lazy_args
        made = self.becomes(x.shape[0] if x.ndim == self.unbatched_rank else x.shape[1], *args,
                            **kwargs)
        kept = {k: self.__dict__[k] for k in _KEPT}
        self.__dict__.clear()
        self.__dict__.update({**made.__dict__, **kept})
        self.__class__ = self.becomes  # type: ignore[assignment]
        return self.forward(x, *rest)

    def extra_repr(self) -> str:
        args, kwargs = self._lazy_args
        return ", ".join(["0", *map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])


def _lazy(name: str, becomes: type[Module], unbatched_rank: int) -> type[_Lazy]:
    doc = f"torch's {name}: a {becomes.__name__} whose input channels its first input gives."
    return type(name, (_Lazy,), {"becomes": becomes, "unbatched_rank": unbatched_rank,
                                 "__doc__": doc, "__module__": __name__})


LazyConv1d = _lazy("LazyConv1d", Conv1d, 2)
LazyConv2d = _lazy("LazyConv2d", Conv2d, 3)
LazyConv3d = _lazy("LazyConv3d", Conv3d, 4)
LazyConvTranspose1d = _lazy("LazyConvTranspose1d", ConvTranspose1d, 2)
LazyConvTranspose2d = _lazy("LazyConvTranspose2d", ConvTranspose2d, 3)
LazyConvTranspose3d = _lazy("LazyConvTranspose3d", ConvTranspose3d, 4)
LazyBatchNorm1d = _lazy("LazyBatchNorm1d", BatchNorm1d, -1)  # batch norm needs the batch axis
LazyBatchNorm2d = _lazy("LazyBatchNorm2d", BatchNorm2d, -1)
LazyBatchNorm3d = _lazy("LazyBatchNorm3d", BatchNorm3d, -1)
LazyInstanceNorm1d = _lazy("LazyInstanceNorm1d", InstanceNorm1d, 2)
LazyInstanceNorm2d = _lazy("LazyInstanceNorm2d", InstanceNorm2d, 3)
LazyInstanceNorm3d = _lazy("LazyInstanceNorm3d", InstanceNorm3d, 4)
