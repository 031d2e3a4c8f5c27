"""`dlg.Size`: torch.Size, the tuple `x.shape` and `x.size()` return. A tuple subclass, so
everything that takes a shape takes it; slicing, `+` and `*` stay Sizes, `numel()` is the
product. While tracing a dim may be a symbol (the batch size N), and `numel()` is then an
expression of it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, SupportsIndex

from dlg.errors import DlgTypeError
from dlg.frontend.engine import caller_span
from dlg.ir.shapes import Sym, numel


class Size(tuple):
    __slots__ = ()

    def __new__(cls, sizes: Iterable[Any] = ()) -> Size:
        """torch's constructor: one iterable of ints (or, traced, dims)."""
        try:
            dims = list(sizes)
        except TypeError:
            raise DlgTypeError(f"dlg.Size() takes an iterable of ints, got "
                               f"{type(sizes).__name__}", caller_span()) from None
        for d in dims:
            if not (isinstance(d, Sym) or (hasattr(d, "__index__") and not isinstance(d, bool))):
                raise DlgTypeError(f"dlg.Size() takes an iterable of ints, got "
                                   f"{type(d).__name__} {d!r}", caller_span())
        return tuple.__new__(cls, [d if isinstance(d, Sym) else d.__index__() for d in dims])

    @classmethod
    def of(cls, dims: tuple[Any, ...]) -> Size:
        """A tensor's shape (already ints and dims), without the constructor's checks."""
        return tuple.__new__(cls, dims)

    def numel(self) -> Any:
        return numel(self)

    def __getitem__(self, index: Any) -> Any:
        item = tuple.__getitem__(self, index)
        return Size.of(item) if isinstance(index, slice) else item

    def __add__(self, other: Any) -> Any:
        if not isinstance(other, tuple):
            return NotImplemented
        return Size.of(tuple.__add__(self, other))

    def __radd__(self, other: Any) -> Any:
        if not isinstance(other, tuple):
            return NotImplemented
        return Size.of(tuple.__add__(other, self))

    def __mul__(self, times: SupportsIndex) -> Size:
        return Size.of(tuple.__mul__(self, times))

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"dlg.Size({list(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Size, (tuple(self),))
