"""Samplers as torch.utils.data has them: which indices a DataLoader reads, and in which
batches. Random orders come from the sampler's generator, else from dlg's (`dlg.manual_seed`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.frontend import engine


class Sampler:
    """Yields dataset indices (subclasses define `__iter__` and, for `len()`, `__len__`)."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler):
    def __init__(self, data_source: Any):
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A fresh permutation at each pass, or `num_samples` draws with `replacement`."""

    def __init__(self, data_source: Any, replacement: bool = False,
                 num_samples: int | None = None, generator: np.random.Generator | None = None):
        self.data_source, self.replacement, self.generator = data_source, replacement, generator
        self._num_samples = num_samples
        if num_samples is not None and (isinstance(num_samples, bool) or num_samples <= 0):
            raise DlgValueError(f"num_samples should be a positive integer value, but got "
                                f"num_samples={num_samples}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        """Drawn lazily, as torch's: 32 indices at a time with replacement, else a permutation
        at a time (minGPT's trainer asks for num_samples=1e10 and reads a few batches)."""
        rng, n = self.generator or engine.rng(), len(self.data_source)
        left = self.num_samples if n else 0
        while left > 0:
            chunk = (rng.integers(0, n, min(32, left)) if self.replacement
                     else rng.permutation(n)[:left])
            yield from chunk.tolist()
            left -= len(chunk)

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order."""

    def __init__(self, indices: Sequence[int], generator: np.random.Generator | None = None):
        self.indices, self.generator = indices, generator

    def __iter__(self) -> Iterator[int]:
        order = (self.generator or engine.rng()).permutation(len(self.indices))
        return iter([self.indices[i] for i in order])

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """`num_samples` indices of `range(len(weights))` drawn with probabilities proportional to
    `weights` (torch.multinomial's draw: with `replacement`, or each index at most once)."""

    def __init__(self, weights: Sequence[float], num_samples: int, replacement: bool = True,
                 generator: np.random.Generator | None = None):
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
            raise DlgValueError(f"num_samples should be a positive integer value, but got "
                                f"num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise DlgValueError(f"replacement should be a boolean value, but got "
                                f"replacement={replacement}")
        array = np.asarray(getattr(weights, "numpy", lambda: weights)(), dtype=np.float64)
        if array.ndim != 1:
            raise DlgValueError(f"weights should be a 1d sequence but given weights have shape "
                                f"{tuple(array.shape)}")
        if (array < 0).any() or not np.isfinite(array).all():
            raise DlgValueError("invalid multinomial distribution (encountering probability "
                                "entry < 0 or inf or nan)")
        if array.sum() <= 0:
            raise DlgValueError("invalid multinomial distribution (sum of probabilities <= 0)")
        if not replacement and num_samples > len(array):
            raise DlgValueError(f"cannot sample n_sample={num_samples} > prob_dist.size(-1)="
                                f"{len(array)} samples without replacement")
        self.weights, self.num_samples = array, num_samples
        self.replacement, self.generator = replacement, generator

    def __iter__(self) -> Iterator[int]:
        rng = self.generator or engine.rng()
        weights = self.weights
        if self.replacement:
            drawn = rng.choice(len(weights), self.num_samples, p=weights / weights.sum())
            return iter(drawn.tolist())
        # torch.multinomial without replacement: once every nonzero weight is drawn, the
        # zero-weight indices follow in a random order
        nonzero, zero = np.flatnonzero(weights), np.flatnonzero(weights == 0)
        first = rng.choice(nonzero, min(self.num_samples, len(nonzero)), replace=False,
                           p=weights[nonzero] / weights.sum())
        drawn = np.concatenate([first, rng.permutation(zero)])[:self.num_samples]
        return iter(drawn.tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of `batch_size` indices from `sampler`; `drop_last` drops a short last one."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise DlgValueError(f"batch_size should be a positive integer value, but got "
                                f"batch_size={batch_size}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self) -> Iterator[list[int]]:  # type: ignore[override]
        batch: list[int] = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
