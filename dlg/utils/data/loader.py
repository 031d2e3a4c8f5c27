"""torch.utils.data's DataLoader over dlg datasets: batches of dlg tensors."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor
from dlg.runtime.data import DataLoader as ArrayLoader
from dlg.utils.data.collate import default_collate, default_convert
from dlg.utils.data.dataset import IterableDataset, TensorDataset
from dlg.utils.data.sampler import BatchSampler, RandomSampler, SequentialSampler


class DataLoader:
    """Batches from any map-style dataset (`__len__` and `__getitem__`) or IterableDataset, in
    torch's way: a `sampler` (or `shuffle`) picks the indices, a `batch_sampler` (or
    `batch_size` and `drop_last`) groups them, `collate_fn` (default_collate; default_convert on
    each sample with `batch_size=None`) makes each batch.
    Workers are not spawned: `num_workers` > 0 loads in the main process, and `pin_memory`
    changes nothing (eager tensors live on the cpu), nor do `timeout`, `worker_init_fn`,
    `multiprocessing_context`, `prefetch_factor`, `persistent_workers`, `pin_memory_device` and
    `in_order` (taken for torch's signature and checks; `get_worker_info()` is None). A
    TensorDataset with the default sampling and collation is batched by slicing its arrays at
    once (yielding tuples); `seed` seeds `shuffle` (else it is drawn from `generator` or dlg's
    generator, `dlg.manual_seed`)."""

    def __init__(self, dataset: Any, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Iterable[int] | None = None,
                 batch_sampler: Iterable[list[int]] | None = None, num_workers: int = 0,
                 collate_fn: Callable[[list[Any]], Any] | None = None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn: Callable[[int], None] | None = None,
                 multiprocessing_context: Any = None,
                 generator: np.random.Generator | None = None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False,
                 pin_memory_device: str = "", in_order: bool = True, seed: int | None = None):
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise DlgValueError(f"num_workers option should be non-negative, got {num_workers}")
        if num_workers == 0 and prefetch_factor is not None:  # torch's checks of worker options
            raise DlgValueError("prefetch_factor option could only be specified in "
                                "multiprocessing. let num_workers > 0 to enable "
                                "multiprocessing, otherwise set prefetch_factor to None.")
        if num_workers == 0 and persistent_workers:
            raise DlgValueError("persistent_workers option needs num_workers > 0")
        if num_workers == 0 and multiprocessing_context is not None:
            raise DlgValueError(f"multiprocessing_context can only be used with multi-process "
                                f"loading (num_workers > 0), but got num_workers={num_workers}")
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.collate_fn = collate_fn or (default_collate if batch_size is not None
                                         else default_convert)
        self._fast: ArrayLoader | None = None
        if isinstance(dataset, IterableDataset):
            if shuffle or sampler is not None or batch_sampler is not None:
                raise DlgValueError("DataLoader with IterableDataset: expected unspecified "
                                    "shuffle, sampler and batch_sampler options")
            self.sampler = self.batch_sampler = None
            return
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None
                                          or drop_last):
            raise DlgValueError("batch_sampler option is mutually exclusive with batch_size, "
                                "shuffle, sampler, and drop_last")
        if shuffle and sampler is not None:
            raise DlgValueError("sampler option is mutually exclusive with shuffle")
        if (isinstance(dataset, TensorDataset) and sampler is None and batch_sampler is None
                and collate_fn is None and batch_size is not None):
            if shuffle and seed is None:
                seed = int((generator or engine.rng()).integers(2**63))
            self._fast = ArrayLoader(*dataset.arrays, batch_size=batch_size,
                                     shuffle=bool(shuffle), seed=seed, drop_last=drop_last)
        self.sampler = sampler if sampler is not None else (
            RandomSampler(dataset, generator=generator) if shuffle
            else SequentialSampler(dataset))
        if batch_sampler is None and batch_size is not None:
            batch_sampler = BatchSampler(self.sampler, batch_size, drop_last)
        self.batch_sampler = batch_sampler

    def __len__(self) -> int:
        if self._fast is not None:
            return len(self._fast)
        if self.batch_sampler is not None:
            return len(self.batch_sampler)  # type: ignore[arg-type]
        n = len(self.dataset if self.sampler is None else self.sampler)  # type: ignore[arg-type]
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        if self._fast is not None:
            return (tuple(Tensor.of(b) for b in batch) for batch in self._fast)
        if self.sampler is None:
            return self._stream()
        if self.batch_sampler is None:  # batch_size=None: samples one by one
            return (self.collate_fn(self.dataset[i]) for i in self.sampler)
        return (self.collate_fn([self.dataset[i] for i in batch])
                for batch in self.batch_sampler)

    def _stream(self) -> Iterator[Any]:
        """An IterableDataset's samples, batched as they come."""
        if self.batch_size is None:
            yield from map(self.collate_fn, self.dataset)
            return
        batch: list[Any] = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)


def get_worker_info() -> None:
    """torch's worker description inside a loading worker: None, as in torch's main process,
    since dlg's DataLoader loads every batch in the main process (an IterableDataset that
    shards its stream by worker reads all of it)."""
    return None
