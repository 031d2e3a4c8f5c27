"""torch's lazy modules beyond LazyLinear (nn/layers.py): LazyConv1d/2d/3d,
LazyConvTranspose1d/2d/3d, LazyBatchNorm1d/2d/3d and LazyInstanceNorm1d/2d/3d, of which d2l.ai
builds its CNNs. Each takes its module's arguments but the input channels; its first call reads
them from the input (axis 1, axis 0 of an unbatched one), draws the parameters and makes the
module that plain module (`type(m)` is then nn.Conv2d, ...), as torch does. Until then its
parameters and running statistics are uninitialized placeholders (nn/uninitialized.py), which
the first call fills in place, so an optimizer given them before it trains the drawn values."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from dlg.frontend import engine
from dlg.frontend.nn.conv import (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d,
                                  ConvTranspose3d, _Convolution)
from dlg.frontend.nn.module import Module
from dlg.frontend.nn.norms import (BatchNorm1d, BatchNorm2d, BatchNorm3d, InstanceNorm1d,
                                   InstanceNorm2d, InstanceNorm3d)
from dlg.frontend.nn.uninitialized import (UninitializedBuffer, UninitializedParameter, held,
                                           load_hook, materialize)
from dlg.frontend.tensor import Tensor

# what a module keeps of its lazy self: its hooks and its train/eval mode
_KEPT = ("_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks",
         "training")


class _Lazy(Module):
    becomes: type[Module]
    unbatched_rank = -1  # an input of this rank has no batch axis (channels at axis 0)

    lazy_defaults: dict[str, Any] = {}  # the options whose default differs from becomes' own

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()
        given = inspect.signature(self.becomes).bind(0, *args, **kwargs)  # its checks later
        kwargs = {**{k: v for k, v in self.lazy_defaults.items() if k not in given.arguments},
                  **kwargs}
        self._lazy_args = (args, kwargs)
        bound = inspect.signature(self.becomes).bind(0, *args, **kwargs)
        bound.apply_defaults()
        o = bound.arguments
        if issubclass(self.becomes, _Convolution):
            params, buffers = ("weight", "bias") if o["bias"] else ("weight",), ()
        else:  # the norms: torch's parameters with affine, buffers with running statistics
            params = (("weight", "bias") if o.get("bias", True) else ("weight",)) \
                if o["affine"] else ()
            buffers = ("running_mean", "running_var") if o["track_running_stats"] else ()
        for name in params:
            setattr(self, name, UninitializedParameter(dtype=o["dtype"]))
        for name in buffers:
            self.register_buffer(name, UninitializedBuffer(dtype=o["dtype"]))
        if buffers:
            self.register_buffer("num_batches_tracked", Tensor.of(np.int64(0)))
        self.register_load_state_dict_pre_hook(load_hook)

    def forward(self, x: Tensor, *rest: Any) -> Any:
        args, kwargs = self._lazy_args
        made = self.becomes(x.shape[0] if x.ndim == self.unbatched_rank else x.shape[1], *args,
                            **kwargs)
        kept = {k: self.__dict__[k] for k in _KEPT}
        before = held(self)
        self.__dict__.clear()
        self.__dict__.update({**made.__dict__, **kept})
        materialize(self, before)
        self.__class__ = self.becomes  # type: ignore[assignment]
        return self.forward(x, *rest)

    def extra_repr(self) -> str:
        """torch's: its module's, for 0 input channels (made here for 1, its draw undone)."""
        args, kwargs = self._lazy_args
        rng = engine.rng()
        state = rng.bit_generator.state
        try:
            made = self.becomes(1, *args, **kwargs)
        finally:
            rng.bit_generator.state = state
        return "0" + made.extra_repr()[1:]


def _lazy(name: str, becomes: type[Module], unbatched_rank: int,
          lazy_defaults: dict[str, Any] | None = None) -> type[_Lazy]:
    doc = f"torch's {name}: a {becomes.__name__} whose input channels its first input gives."
    return type(name, (_Lazy,), {"becomes": becomes, "unbatched_rank": unbatched_rank,
                                 "lazy_defaults": lazy_defaults or {}, "__doc__": doc,
                                 "__module__": __name__})


LazyConv1d = _lazy("LazyConv1d", Conv1d, 2)
LazyConv2d = _lazy("LazyConv2d", Conv2d, 3)
LazyConv3d = _lazy("LazyConv3d", Conv3d, 4)
LazyConvTranspose1d = _lazy("LazyConvTranspose1d", ConvTranspose1d, 2)
LazyConvTranspose2d = _lazy("LazyConvTranspose2d", ConvTranspose2d, 3)
LazyConvTranspose3d = _lazy("LazyConvTranspose3d", ConvTranspose3d, 4)
LazyBatchNorm1d = _lazy("LazyBatchNorm1d", BatchNorm1d, -1)  # batch norm needs the batch axis
LazyBatchNorm2d = _lazy("LazyBatchNorm2d", BatchNorm2d, -1)
LazyBatchNorm3d = _lazy("LazyBatchNorm3d", BatchNorm3d, -1)
# torch's lazy instance norms are affine and track running statistics by default, unlike
# InstanceNorm1d/2d/3d themselves
_INSTANCE = {"affine": True, "track_running_stats": True}
LazyInstanceNorm1d = _lazy("LazyInstanceNorm1d", InstanceNorm1d, 2, _INSTANCE)
LazyInstanceNorm2d = _lazy("LazyInstanceNorm2d", InstanceNorm2d, 3, _INSTANCE)
LazyInstanceNorm3d = _lazy("LazyInstanceNorm3d", InstanceNorm3d, 4, _INSTANCE)
