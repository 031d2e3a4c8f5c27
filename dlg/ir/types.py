"""Tensor types: a dtype and a shape whose dims may be symbolic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from dlg.errors import DlgTypeError

from dlg.ir.dtypes import DType
from dlg.ir.shapes import Shape, is_concrete, parse_dim, shape_str


@dataclass(frozen=True)
class TensorType:
    dtype: DType
    shape: Shape

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_concrete(self) -> bool:
        return is_concrete(self.shape)

    def with_shape(self, shape: Shape) -> TensorType:
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(dtype, self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}{shape_str(self.shape)}".replace(", ", ",")

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        """A tensor's `x.type` is this record, so torch's `x.type()` / `x.type(dtype)` land
        here: say what dlg spells them (renaming the record would touch every layer)."""
        raise DlgTypeError(f"x.type(...) is torch's type string or cast; dlg's x.type is the "
                           f"tensor's type ({self}), not callable: read x.dtype "
                           f"({self.dtype.torch_name}) or cast with x.to(dlg.float64), "
                           f"x.float(), x.double(), x.long()")

    @staticmethod
    def parse(text: str) -> TensorType:
        """Parse `f32[N,784]` as printed by `str`."""
        name, _, rest = text.partition("[")
        body = rest.rstrip("]").strip()
        dims = tuple(parse_dim(d) for d in _split_dims(body)) if body else ()
        return TensorType(DType.parse(name.strip()), dims)


def _split_dims(body: str) -> list[str]:
    return [part.strip() for part in body.split(",")]
