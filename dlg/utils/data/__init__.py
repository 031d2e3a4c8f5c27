"""`dlg.utils.data`: torch.utils.data for dlg: datasets (map-style and iterable, tensors side by
side, subsets, concatenations, random splits), samplers, `default_collate` and a `DataLoader`
that yields batches of dlg tensors."""

from dlg.utils.data.collate import default_collate, default_convert
from dlg.utils.data.dataset import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    StackDataset,
    Subset,
    TensorDataset,
    random_split,
)
from dlg.utils.data.loader import DataLoader, get_worker_info
from dlg.utils.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

__all__ = ["BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset",
           "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler", "StackDataset",
           "Subset", "SubsetRandomSampler", "TensorDataset", "WeightedRandomSampler",
           "default_collate", "default_convert", "get_worker_info", "random_split"]
