"""`dlg.utils.data`: `TensorDataset` and a `DataLoader` over it that yields dlg tensors, as
torch.utils.data does (batches come from `dlg.data.DataLoader`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.frontend.tensor import Tensor
from dlg.runtime.data import DataLoader as ArrayLoader


class TensorDataset:
    """Samples are the i-th rows of equally long tensors (or arrays)."""

    def __init__(self, *tensors: Any):
        self.arrays = [np.asarray(t) for t in tensors]
        if len({len(a) for a in self.arrays}) > 1:
            raise DlgValueError("TensorDataset: tensors differ in length: "
                                + ", ".join(str(len(a)) for a in self.arrays))

    def __len__(self) -> int:
        return len(self.arrays[0]) if self.arrays else 0

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        return tuple(Tensor(a[i]) for a in self.arrays)


class DataLoader:
    def __init__(self, dataset: TensorDataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = None):
        self.dataset = dataset  # torch's loaders expose it: len(loader.dataset) is the sample count
        self.loader = ArrayLoader(*dataset.arrays, batch_size=batch_size, shuffle=shuffle,
                                  seed=seed, drop_last=drop_last)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        for batch in self.loader:
            yield tuple(Tensor(b) for b in batch)
