"""How compiled results are judged: within rtol 1e-4 and atol 1e-5 x max(1, max|expected|) of
the float32 oracle, or, where not, no farther from the float64 interpreter than 4x the oracle's
own distance from it. The second test keeps ill-conditioned values from being reported: a
gradient that cancels to zero through a norm over a near-constant axis has rounding amplified by
1/sqrt(eps) (~1e-4 in float32), as much in the oracle as in compiled code; a wrong index or a
dropped or doubled term is far from both."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from dlg.ir import Graph
from dlg.runtime.interp import Interpreter
from tests.compiler.gradcheck import to_f64
from tools.fuzz.campaign import Finding

RTOL, ATOL = 1e-4, 1e-5


def close(name: str, got: np.ndarray, want: np.ndarray, exact: Callable[[], np.ndarray]) -> None:
    """Raise a Finding unless `got` agrees with `want` (see the module docstring); `exact()`
    is the float64 result, computed only when needed."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise Finding(f"{name}: shape {got.shape} != {want.shape}")
    scale = max(1.0, float(np.abs(want).max(initial=0)))
    if np.allclose(got, want, rtol=RTOL, atol=ATOL * scale, equal_nan=True):
        return
    truth = exact()
    err = float(np.nanmax(np.abs(got - truth)))
    if err <= 4 * float(np.nanmax(np.abs(want - truth))) + ATOL * scale:
        return
    raise Finding(f"{name} differs (max abs error {err:.3g} from float64, scale {scale:.3g})")


def float64_run(g: Graph, inputs: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray]
                ) -> dict[str, np.ndarray]:
    """The interpreter on `g` with every float32 made float64."""
    def wide(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v.astype(np.float64) if v.dtype == np.float32 else v
                for k, v in arrays.items()}
    return Interpreter().run(to_f64(g), wide(inputs), wide(params))[0]
