"""The op library: one `OpDef` per op, grouped by family (STYLE §1).

Importing this package registers every op in `REGISTRY`.
"""

from dlg.ir.ops import control, elementwise, linalg, losses, nn, reduce, shape, source  # noqa: F401  (registers ops)
from dlg.ir.ops.opdef import REGISTRY, Attr, OpDef, defop, zero_vjp

__all__ = ["REGISTRY", "Attr", "OpDef", "defop", "zero_vjp"]
