"""Datasets as torch.utils.data has them: map-style (`__len__`, `__getitem__`) and iterable,
tensors side by side, subsets, concatenations (and chains of streams), stacks and random
splits."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from dlg import foreign
from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor, foreign_array


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
        self.arrays = [foreign_array(t) if foreign.is_foreign(t) else np.asarray(t)
                       for t in tensors]  # torch tensors: their memory, as arrays
        if len({len(a) for a in self.arrays}) > 1:
            raise DlgValueError("TensorDataset: tensors differ in length: "
                                + ", ".join(str(len(a)) for a in self.arrays))

    def __len__(self) -> int:
        return len(self.arrays[0]) if self.arrays else 0

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        return tuple(Tensor.of(a[i]) for a in self.arrays)


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


class StackDataset(Dataset):
    """Samples of equally long datasets side by side: a tuple (`StackDataset(a, b)`) or a dict
    (`StackDataset(image=a, text=b)`)."""

    def __init__(self, *args: Any, **kwargs: Any):
        if args and kwargs:
            raise DlgValueError("StackDataset: supported either tuple- (via args) or dict- (via "
                                "kwargs) like input/output, but both types are given")
        if not args and not kwargs:
            raise DlgValueError("StackDataset: at least one dataset should be passed")
        self.datasets: tuple | dict = args or kwargs
        parts = list(args or kwargs.values())
        self._length = len(parts[0])
        if any(len(d) != self._length for d in parts):
            raise DlgValueError("StackDataset: size mismatch between datasets")

    def __getitem__(self, index: int) -> Any:
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __len__(self) -> int:
        return self._length


class ChainDataset(IterableDataset):
    """The streams of several IterableDatasets, one after another."""

    def __init__(self, datasets: Iterable[Any]):
        self.datasets = datasets

    def _each(self) -> Iterator[Any]:
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise DlgValueError("ChainDataset only supports IterableDataset")
            yield d

    def __iter__(self) -> Iterator[Any]:
        for d in self._each():
            yield from d

    def __len__(self) -> int:
        return sum(len(d) for d in self._each())


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
