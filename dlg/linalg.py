"""`dlg.linalg`: the names of torch.linalg that dlg has (`dlg/functions/linalg.py`,
`dlg/functions/products.py`)."""

from typing import Any

from dlg.frontend.functional import cross as _cross
from dlg.frontend.functional import vector_norm


def cross(input: Any, other: Any, *, dim: int = -1) -> Any:  # noqa: A002
    """torch.linalg.cross: the cross product along `dim`, the last by default."""
    return _cross(input, other, dim)


__all__ = ["cross", "vector_norm"]
