"""`dlg.linalg`: the names of torch.linalg that dlg has (`dlg/functions/linalg.py`,
`dlg/functions/products.py`; the dense solvers and decompositions, eager only, in
`frontend/dense_linalg.py` and `frontend/decompositions.py`; those composed of them in
`frontend/linalg_more.py`)."""

from typing import Any

from dlg.frontend.decompositions import eigh, eigvalsh, matrix_norm, qr, svd, svdvals
from dlg.frontend.dense_linalg import cholesky, det, inv, slogdet, solve, solve_triangular
from dlg.frontend.functional import cross as _cross
from dlg.frontend.functional import diagonal as _diagonal
from dlg.frontend.functional import vector_norm
from dlg.frontend.linalg_more import (cholesky_ex, cond, inv_ex, lstsq, lu_factor, lu_solve,
                                      matrix_exp, matrix_power, matrix_rank, multi_dot, norm,
                                      pinv, solve_ex, vander, vecdot)


def cross(input: Any, other: Any, *, dim: int = -1) -> Any:  # noqa: A002
    """torch.linalg.cross: the cross product along `dim`, the last by default."""
    return _cross(input, other, dim)


def diagonal(A: Any, *, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Any:  # noqa: N803
    """torch.linalg.diagonal: torch.diagonal over the last two dims by default."""
    return _diagonal(A, offset, dim1, dim2)


__all__ = ["cholesky", "cross", "det", "diagonal", "eigh", "eigvalsh", "inv", "matrix_norm",
           "qr", "slogdet", "solve", "solve_triangular", "svd", "svdvals", "vector_norm"]
__all__ += ["cholesky_ex", "cond", "inv_ex", "lstsq", "lu_factor", "lu_solve", "matrix_exp",
            "matrix_power", "matrix_rank", "multi_dot", "norm", "pinv", "solve_ex", "vander",
            "vecdot"]
