"""Tensor types: a dtype and a shape whose dims may be symbolic."""

from __future__ import annotations

from dataclasses import dataclass

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

    @staticmethod
    def parse(text: str) -> TensorType:
        """Parse `f32[N,784]` as printed by `str`."""
        name, _, rest = text.partition("[")
        body = rest.rstrip("]").strip()
        dims = tuple(parse_dim(d) for d in _split_dims(body)) if body else ()
        return TensorType(DType.parse(name.strip()), dims)


def _split_dims(body: str) -> list[str]:
    return [part.strip() for part in body.split(",")]
