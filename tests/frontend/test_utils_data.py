"""dlg.utils.data against torch.utils.data: custom map-style and iterable datasets, subsets,
concatenations, random splits, samplers, default_collate and the DataLoader's options."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

import dlg
from dlg.errors import DlgValueError
from dlg.utils import data as D

torch = pytest.importorskip("torch")
T = torch.utils.data


def _plain(batch):
    """A batch of dlg or torch tensors as nested Python lists, to compare."""
    if isinstance(batch, dlg.Tensor):
        return [batch.dtype.torch_name, batch.tolist()]
    if isinstance(batch, torch.Tensor):
        return [str(batch.dtype).removeprefix("torch."), batch.tolist()]
    if isinstance(batch, dict):
        return {k: _plain(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return [type(batch).__name__ if hasattr(batch, "_fields") else "seq",
                [_plain(b) for b in batch]]
    return batch


def _squares(base):
    class Squares(base):  # a user's map-style dataset
        def __len__(self):
            return 7

        def __getitem__(self, i):
            return np.full(2, i * i, np.float32), i, float(i) / 2

    return Squares()


Point = namedtuple("Point", "x y")


@pytest.mark.parametrize("sample", [
    lambda i: (np.full(2, i, np.float32), i), lambda i: {"x": np.arange(3) + i, "label": i},
    lambda i: [float(i), True, "s"], lambda i: Point(np.float64(i), i),
    lambda i: np.int32(i)], ids=["tuple", "dict", "list", "namedtuple", "numpy-scalar"])
def test_default_collate_matches_torch(sample):
    batch = [sample(i) for i in range(3)]
    ours = D.default_collate([sample(i) for i in range(3)])
    assert _plain(ours) == _plain(T.default_collate(batch))


@pytest.mark.parametrize("options", [
    {"batch_size": 3}, {"batch_size": 3, "drop_last": True}, {"batch_size": None},
    {"batch_size": 2, "num_workers": 2, "pin_memory": True},
    {"batch_size": 2, "collate_fn": lambda b: [s[1] for s in b]}])
def test_loader_over_a_custom_dataset_matches_torch(options):
    ours = list(D.DataLoader(_squares(D.Dataset), **options))
    theirs = list(T.DataLoader(_squares(T.Dataset),
                               **{**options, "num_workers": 0, "pin_memory": False}))
    assert _plain(ours) == _plain(theirs)
    assert len(D.DataLoader(_squares(D.Dataset), **options)) == len(theirs)


def test_a_plain_object_with_len_and_getitem_is_a_dataset():
    class Plain:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return dlg.tensor([float(i)]), i

    x, y = next(iter(D.DataLoader(Plain(), batch_size=4)))
    assert x.shape == (4, 1) and y.tolist() == [0, 1, 2, 3] and y.dtype == dlg.int64


def test_samplers_and_batch_sampler_as_torch():
    ds = _squares(D.Dataset)
    indices = [6, 0, 3]
    ours = list(D.DataLoader(ds, sampler=indices, batch_size=2))
    assert _plain(ours) == _plain(list(T.DataLoader(_squares(T.Dataset), sampler=indices,
                                                    batch_size=2)))
    batches = [[1, 2], [5], [0, 4, 6]]
    ours = list(D.DataLoader(ds, batch_sampler=batches))
    assert _plain(ours) == _plain(list(T.DataLoader(_squares(T.Dataset), batch_sampler=batches)))
    assert list(D.BatchSampler(D.SequentialSampler(range(7)), 3, drop_last=False)) == list(
        T.BatchSampler(T.SequentialSampler(range(7)), 3, drop_last=False))
    assert len(D.BatchSampler(range(7), 3, True)) == len(T.BatchSampler(range(7), 3, True))


def test_random_samplers_permute_and_follow_their_generator():
    for sampler in (lambda g: D.RandomSampler(range(10), generator=g),
                    lambda g: D.SubsetRandomSampler([3, 5, 7, 9], generator=g)):
        a = list(sampler(np.random.default_rng(4)))
        assert a == list(sampler(np.random.default_rng(4)))
        assert sorted(a) == sorted(sampler(None))
    drawn = list(D.RandomSampler(range(4), replacement=True, num_samples=9))
    assert len(drawn) == 9 and set(drawn) <= set(range(4))
    more = list(D.RandomSampler(range(4), num_samples=6))  # a second permutation begun
    assert len(more) == 6 and set(more[:4]) == set(range(4))


@pytest.mark.parametrize("replacement", [True, False])
def test_a_random_sampler_draws_lazily_as_torch(replacement):
    """minGPT's trainer: RandomSampler(replacement=True, num_samples=int(1e10)) under a
    DataLoader of which it reads a few batches (drawn at once, 1e10 indices were 75 GiB)."""
    for lib in (D, T):
        data = list(range(5))
        sampler = lib.RandomSampler(data, replacement=replacement, num_samples=int(1e10))
        assert len(sampler) == int(1e10)
        batches = iter(lib.DataLoader(data, sampler=sampler, batch_size=4))
        first = [next(batches), next(batches)]
        assert all(len(b) == 4 and set(np.asarray(b).tolist()) <= set(data) for b in first)


def test_weighted_random_sampler_draws_by_weight_as_torch():
    weights = [0.1, 0.0, 0.6, 0.3]
    ours = D.WeightedRandomSampler(weights, 4000, generator=np.random.default_rng(1))
    assert len(ours) == len(T.WeightedRandomSampler(weights, 4000)) == 4000
    drawn = list(ours)
    assert drawn == list(D.WeightedRandomSampler(weights, 4000,
                                                 generator=np.random.default_rng(1)))
    np.testing.assert_allclose(np.bincount(drawn, minlength=4) / 4000, weights, atol=0.03)
    # without replacement each index once, the zero weights after every nonzero one (torch's)
    for lib in (D, T):
        once = list(lib.WeightedRandomSampler(dlg.tensor([1.0, 0.0, 2.0, 0.0]) if lib is D
                                              else torch.tensor([1.0, 0.0, 2.0, 0.0]), 4,
                                              replacement=False))
        assert sorted(once) == [0, 1, 2, 3] and set(once[:2]) == {0, 2}
    loader = D.DataLoader(D.TensorDataset(np.arange(6.0)), batch_size=2,
                          sampler=D.WeightedRandomSampler([0, 1, 1, 0, 0, 1], 5))
    assert [len(b[0]) for b in loader] == [2, 2, 1]


def test_stack_chain_datasets_and_worker_info_as_torch():
    results = []
    for lib in (D, T):
        a = lib.TensorDataset(np.arange(4.0)) if lib is D else lib.TensorDataset(
            torch.arange(4.0))

        class Stream(lib.IterableDataset):
            def __init__(self, items, lib=lib):
                self.items, self.lib = items, lib

            def __iter__(self):
                info = self.lib.get_worker_info()  # None in the main process: all of it
                return iter(self.items if info is None else self.items[info.id::2])

            def __len__(self):
                return len(self.items)

        chain = lib.ChainDataset([Stream([1, 2]), Stream([3])])
        stacked = lib.StackDataset(a, [10, 11, 12, 13])
        named = lib.StackDataset(x=a, y=[10, 11, 12, 13])
        results.append((_plain(list(lib.DataLoader(chain, batch_size=2))), len(chain),
                         _plain(stacked[2]), len(stacked), _plain(named[1]),
                         _plain(list(lib.DataLoader(named, batch_size=3)))))
    assert results[0] == results[1]
    for make in (lambda: D.StackDataset([1], [1, 2]), lambda: D.StackDataset([1], x=[1]),
                 lambda: D.StackDataset()):
        with pytest.raises(DlgValueError, match="StackDataset"):
            make()
    with pytest.raises(DlgValueError, match="only supports IterableDataset"):
        list(D.ChainDataset([[1, 2]]))


def test_worker_options_are_taken_and_checked_as_torch():
    ds = D.TensorDataset(np.arange(6.0))
    loader = D.DataLoader(ds, batch_size=4, num_workers=2, pin_memory=True,
                          persistent_workers=True, prefetch_factor=2,
                          multiprocessing_context="spawn", pin_memory_device="", in_order=True,
                          worker_init_fn=lambda i: None, timeout=0)
    assert [len(b[0]) for b in loader] == [4, 2]
    for options in ({"prefetch_factor": 2}, {"persistent_workers": True},
                    {"multiprocessing_context": "fork"}):
        with pytest.raises(ValueError):
            T.DataLoader(range(3), **options)
        with pytest.raises(DlgValueError, match="num_workers"):
            D.DataLoader(ds, **options)


def test_shuffling_follows_dlg_manual_seed():
    for ds in (D.TensorDataset(np.arange(10.0)), _squares(D.Dataset)):
        runs = []
        for _ in range(2):
            dlg.manual_seed(1)
            runs.append(_plain(list(D.DataLoader(ds, batch_size=4, shuffle=True))))
        assert runs[0] == runs[1]
    rows = [b[0].tolist() for b in D.DataLoader(D.TensorDataset(np.arange(10.0)), batch_size=10,
                                                shuffle=True)]
    assert sorted(rows[0]) == list(range(10))


@pytest.mark.parametrize("source", [lambda: {"seed": 3},
                                    lambda: {"generator": np.random.default_rng(3)}],
                         ids=["seed", "generator"])
def test_a_loaders_own_seed_or_generator_outranks_dlg_manual_seed(source):
    ds = D.TensorDataset(np.arange(10.0))
    runs = []
    for global_seed in (1, 2):
        dlg.manual_seed(global_seed)
        runs.append(_plain(list(D.DataLoader(ds, batch_size=4, shuffle=True, **source()))))
    assert runs[0] == runs[1]


def test_subset_concat_and_random_split_as_torch():
    ours, theirs = D.TensorDataset(np.arange(10.0)), T.TensorDataset(torch.arange(10.0))
    assert _plain(D.Subset(ours, [4, 1])[1]) == _plain(T.Subset(theirs, [4, 1])[1])
    both = D.ConcatDataset([ours, D.Subset(ours, [9, 8])])
    tboth = T.ConcatDataset([theirs, T.Subset(theirs, [9, 8])])
    assert len(both) == len(tboth) and all(
        _plain(both[i]) == _plain(tboth[i]) for i in (0, 9, 10, 11, -1, -12))
    assert len(ours + ours) == 20
    for lengths in ([3, 7], [0.3, 0.7], [0.33, 0.33, 0.34], [0.5, 0.25, 0.25]):
        parts = D.random_split(ours, lengths, generator=np.random.default_rng(0))
        tparts = T.random_split(theirs, lengths)
        assert [len(p) for p in parts] == [len(p) for p in tparts]
        seen = [int(p[i][0].item()) for p in parts for i in range(len(p))]
        assert sorted(seen) == list(range(10))
    a = D.random_split(ours, [5, 5], generator=np.random.default_rng(2))[0].indices
    assert a == D.random_split(ours, [5, 5], generator=np.random.default_rng(2))[0].indices


def test_an_iterable_dataset_is_batched_as_it_streams():
    def stream(base):
        class Count(base):
            def __iter__(self):
                return iter(range(5))
        return Count()

    for options in ({"batch_size": 2}, {"batch_size": 2, "drop_last": True}):
        assert _plain(list(D.DataLoader(stream(D.IterableDataset), **options))) == _plain(
            list(T.DataLoader(stream(T.IterableDataset), **options)))
    with pytest.raises(DlgValueError, match="expected unspecified shuffle"):
        D.DataLoader(stream(D.IterableDataset), shuffle=True)


@pytest.mark.parametrize("make, message", [
    (lambda ds: D.DataLoader(ds, batch_sampler=[[0]], batch_size=2), "mutually exclusive"),
    (lambda ds: D.DataLoader(ds, sampler=[0], shuffle=True), "mutually exclusive with shuffle"),
    (lambda ds: D.DataLoader(ds, num_workers=-1), "non-negative"),
    (lambda ds: D.random_split(ds, [3, 3]), "add up to 6, not to the dataset's length 7"),
    (lambda ds: D.BatchSampler(range(3), 0, False), "positive integer"),
    (lambda ds: D.WeightedRandomSampler([1.0, 2.0], 0), "num_samples should be a positive"),
    (lambda ds: D.WeightedRandomSampler([[1.0, 2.0]], 2), "1d sequence"),
    (lambda ds: D.WeightedRandomSampler([1.0, -2.0], 2), "entry < 0"),
    (lambda ds: D.WeightedRandomSampler([0.0, 0.0], 2), "sum of probabilities"),
    (lambda ds: D.WeightedRandomSampler([1.0, 2.0], 3, replacement=False),
     "without replacement"),
    (lambda ds: D.ConcatDataset([]), "empty")])
def test_wrong_options_are_dlg_errors(make, message):
    with pytest.raises(DlgValueError, match=message):
        make(_squares(D.Dataset))
