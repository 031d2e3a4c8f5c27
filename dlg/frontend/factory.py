"""The options PyTorch's factory functions and conversions take beside the values: `device=`,
`layout=`, `pin_memory=`, `requires_grad=` and `memory_format=`. Eager dlg tensors are dense
arrays in CPU memory without strides, so each option is either the one thing dlg has (the cpu,
dlg.strided, unpinned) or a layout hint that leaves every value as it is (a memory format); any
other value is a DlgValueError saying so. `factory` gives a dlg.functions creation function these
keywords (dlg.arange, dlg.eye, dlg.zeros_like, ...), `leaf` applies them to a made tensor.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.device import check_device
from dlg.frontend.tensor import Tensor, as_number, eager


class MemoryFormat(enum.Enum):
    """torch.memory_format's values. dlg keeps no strides, so every format holds the same
    values; channels_last asks for the rank torch asks for (`_RANK`)."""

    preserve_format = "preserve_format"
    contiguous_format = "contiguous_format"
    channels_last = "channels_last"
    channels_last_3d = "channels_last_3d"

    def __repr__(self) -> str:
        return f"dlg.{self.name}"


_RANK = {MemoryFormat.channels_last: 4, MemoryFormat.channels_last_3d: 5}


class Layout(enum.Enum):
    """torch.layout's one dense value (sparse layouts have no dlg counterpart)."""

    strided = "strided"

    def __repr__(self) -> str:
        return f"dlg.{self.name}"


def on_cpu(device: Any) -> None:
    """Check a device argument (None, 'cpu', 'cpu:0', dlg.device('cpu'); 'meta' taken as the
    cpu, `frontend/device.py`): eager tensors live in CPU memory."""
    check_device(device)


def check_memory_format(value: Any, x: Tensor | None = None) -> None:
    """A memory format dlg can honour: any of them, channels_last on a tensor of its rank."""
    if value is None:
        return
    if not isinstance(value, MemoryFormat):
        raise DlgTypeError(f"memory_format must be dlg.preserve_format, dlg.contiguous_format or "
                           f"dlg.channels_last, got {value!r}", engine.caller_span())
    rank = _RANK.get(value)
    if rank is not None and x is not None and x.ndim != rank:
        raise DlgValueError(f"memory_format {value!r} needs a {rank}-d tensor, got {x.tensor_type}",
                            engine.caller_span())


def check_options(device: Any = None, layout: Any = None, pin_memory: bool = False) -> None:
    """Where a new tensor lives: the cpu, dense, unpinned."""
    on_cpu(device)
    if layout is not None and layout is not Layout.strided:
        raise DlgValueError(f"layout {layout!r}: dlg tensors are dense (dlg.strided)",
                            engine.caller_span())
    if pin_memory:
        raise DlgValueError("pin_memory=True pins memory for copies to a GPU; eager dlg runs on "
                            "the cpu", engine.caller_span())


def leaf(t: Tensor, requires_grad: bool = False, device: Any = None, layout: Any = None,
         pin_memory: bool = False) -> Tensor:
    """A new tensor as PyTorch's factories leave it: on the cpu, requiring grad if asked."""
    check_options(device, layout, pin_memory)
    return t.requires_grad_() if requires_grad else t


# their shape comes first, and torch names it `size` (torch.empty(size=(n, m)), gat's)
SIZE_FIRST = ("zeros", "ones", "empty", "rand", "randn", "full")

# they take `generator=`
RANDOM = ("rand", "randn", "randint", "rand_like", "randn_like", "randint_like")


def factory(name: str, like: bool = False) -> Callable[..., Tensor]:
    """dlg.functions' creation function `name` with the factory keywords (and memory_format
    for a `*_like` function); the options are checked before anything is made."""
    run = eager(name)
    random = name in RANDOM

    def make(*args: Any, device: Any = None, layout: Any = None, pin_memory: bool = False,
             requires_grad: bool = False, **kwargs: Any) -> Tensor:
        check_options(device, layout, pin_memory)
        if like:
            check_memory_format(kwargs.pop("memory_format", None))
        else:  # sizes and bounds held in one-element int tensors: dlg.arange(lengths.max())
            if "size" in kwargs and name in SIZE_FIRST:  # torch.empty(size=(3, 4))
                args = (kwargs.pop("size"), *args)
            args = tuple(type(a)(map(as_number, a)) if isinstance(a, (tuple, list))
                         else as_number(a) for a in args)
        if random and "generator" in kwargs:  # drawn from it (a dlg.Generator), as torch
            with engine.drawing_from(kwargs.pop("generator")):
                return leaf(run(*args, **kwargs), requires_grad)
        return leaf(run(*args, **kwargs), requires_grad)
    make.__name__ = make.__qualname__ = name
    make.__doc__ = run.__doc__
    return make
