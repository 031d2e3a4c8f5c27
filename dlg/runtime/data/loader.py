"""`DataLoader`: batches over NumPy arrays, reshuffled every epoch from its own seeded RNG."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from dlg.errors import DlgValueError


class DataLoader:
    """Iterate over tuples of batches of equally long arrays.

    With `shuffle`, each pass (each `iter()`) draws a new order from the loader's own
    `numpy.random.default_rng(seed)`, so two loaders with the same seed give the same batches.
    `drop_last` leaves out a last batch smaller than `batch_size`.
    """

    def __init__(self, *arrays: np.ndarray, batch_size: int = 32, shuffle: bool = False,
                 seed: int | None = None, drop_last: bool = False):
        if not arrays:
            raise DlgValueError("DataLoader needs at least one array")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise DlgValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.arrays = [np.asarray(a) for a in arrays]
        lengths = [len(a) if a.ndim else None for a in self.arrays]
        if None in lengths or len(set(lengths)) != 1:
            raise DlgValueError("DataLoader arrays differ in length: "
                                + ", ".join(str(n) if n is not None else "a scalar"
                                            for n in lengths))
        self.length = int(lengths[0])  # type: ignore[arg-type]
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        if self.drop_last:
            return self.length // self.batch_size
        return -(-self.length // self.batch_size)

    def order(self) -> np.ndarray | None:
        """The next pass's row order: a fresh permutation when shuffling (drawn as `iter()`
        draws it), else None (rows in order). Native training loops gather by it."""
        return self.rng.permutation(self.length) if self.shuffle else None

    def __iter__(self) -> Iterator[tuple[np.ndarray, ...]]:
        return self.batches(self.order())

    def batches(self, order: np.ndarray | None, start: int = 0
                ) -> Iterator[tuple[np.ndarray, ...]]:
        """The batches of one pass in `order` (from `order()`), from batch `start` on (a pass
        resumed from a checkpoint)."""
        for i in range(start, len(self)):
            lo, hi = i * self.batch_size, min((i + 1) * self.batch_size, self.length)
            rows = slice(lo, hi) if order is None else order[lo:hi]
            # fancy indexing copies but promises no memory order: make it C-contiguous
            yield tuple(np.ascontiguousarray(a[rows]) for a in self.arrays)
