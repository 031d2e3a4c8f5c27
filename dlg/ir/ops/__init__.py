"""The op library: one `OpDef` per op, grouped by family (STYLE §1).

Importing this package registers every op in `REGISTRY`.
"""

from dlg.ir.ops import (  # noqa: F401  (importing a family registers its ops)
    arith,
    complexes,
    control,
    conv,
    custom,
    elementwise,
    fft,
    gather,
    im2col,
    linalg,
    losses,
    nn,
    pool,
    reduce,
    shape,
    sort,
    source,
)
from dlg.ir.ops.opdef import REGISTRY, Attr, OpDef, Trait, defop, zero_vjp

__all__ = ["REGISTRY", "Attr", "OpDef", "Trait", "defop", "zero_vjp"]
