"""Datasets as torch.utils.data has them: map-style (`__len__`, `__getitem__`) and iterable,
tensors side by side, subsets, concatenations and random splits."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor


class Dataset:
    """A map-style dataset: subclasses define `__getitem__` (and `__len__` for samplers);
    `a + b` concatenates. DataLoader takes any object with these two methods."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples: subclasses define `__iter__`; DataLoader batches what it yields."""

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class TensorDataset(Dataset):
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


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset: Any, indices: Sequence[int]):
        self.dataset, self.indices = dataset, indices

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """The samples of several map-style datasets, one after another."""

    def __init__(self, datasets: Sequence[Any]):
        self.datasets = list(datasets)
        if not self.datasets:
            raise DlgValueError("ConcatDataset: datasets should not be an empty iterable")
        if any(isinstance(d, IterableDataset) for d in self.datasets):
            raise DlgValueError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]))

    def __len__(self) -> int:
        return int(self.cumulative_sizes[-1])

    def __getitem__(self, i: int) -> Any:
        if i < 0:
            if -i > len(self):
                raise DlgValueError("absolute value of index should not exceed dataset length")
            i += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, i)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][i - start]


def random_split(dataset: Any, lengths: Sequence[int | float],
                 generator: np.random.Generator | None = None) -> list[Subset]:
    """Disjoint random subsets of the given lengths, or fractions of the length (torch's
    rounding: floors, then one more for the first few until the lengths add up). The order is
    drawn from `generator`, else from dlg's (seeded by `dlg.manual_seed`)."""
    n = len(dataset)
    sizes = [int(x) for x in lengths]
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1 and any(
            isinstance(x, float) for x in lengths):
        if any(not 0 <= x <= 1 for x in lengths):
            raise DlgValueError(f"random_split: fractions must lie in [0, 1], got {lengths}")
        sizes = [math.floor(n * x) for x in lengths]
        for k in range(n - sum(sizes)):
            sizes[k % len(sizes)] += 1
    if sum(sizes) != n:
        raise DlgValueError(f"random_split: the lengths {list(lengths)} add up to {sum(sizes)}, "
                            f"not to the dataset's length {n}")
    order = (generator or engine.rng()).permutation(n).tolist()
    ends = np.cumsum(sizes).tolist()
    return [Subset(dataset, order[end - size:end]) for size, end in zip(sizes, ends)]
