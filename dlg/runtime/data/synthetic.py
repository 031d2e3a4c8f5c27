"""Synthetic data: the linear-regression example's y = 2x + 1 + noise, and a seeded split."""

from __future__ import annotations

import numpy as np

from dlg.errors import DlgValueError


def synthetic_regression(n: int = 100, noise: float = 0.1, seed: int = 0
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(x, y), float32 [n, 1]: x uniform in [0, 1), y = 2x + 1 + noise * N(0, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1))
    y = 2 * x + 1 + noise * rng.standard_normal((n, 1))
    return x.astype(np.float32), y.astype(np.float32)


def train_test_split(*arrays: np.ndarray, test_fraction: float = 0.2, seed: int = 0
                     ) -> tuple[np.ndarray, ...]:
    """A seeded random split of equally long arrays: (a_train, a_test, b_train, b_test, ...)
    (scikit-learn's order); the same rows go to the test part of every array."""
    if not arrays:
        raise DlgValueError("train_test_split needs at least one array")
    if not 0 < test_fraction < 1:
        raise DlgValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise DlgValueError(f"train_test_split: arrays differ in length: {sorted(lengths)}")
    n = lengths.pop()
    order = np.random.default_rng(seed).permutation(n)
    k = int(round(n * test_fraction))
    train, test = np.sort(order[:n - k]), np.sort(order[n - k:])
    return tuple(part for a in arrays for part in (np.asarray(a)[train], np.asarray(a)[test]))
