"""torch's `default_collate`: a list of samples becomes one batch, tensors, arrays and numbers
stacked into dlg tensors along a new first dim, dicts and sequences collated field by field.
Another library's arrays (a torchvision dataset's torch tensors: `dlg.foreign`) stack as arrays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dlg import foreign
from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend.tensor import Tensor, foreign_array


def default_collate(batch: Sequence[Any]) -> Any:
    """As torch's: Python floats become float64, ints int64; strings stay a list; a tuple of
    fields becomes a list of batched fields (a namedtuple stays one)."""
    elem = batch[0]
    if isinstance(elem, (Tensor, np.ndarray, np.generic)):
        return Tensor.of(np.stack([np.asarray(b) for b in batch]))
    if foreign.is_foreign(elem):  # a torchvision transform's torch tensors
        return Tensor.of(np.stack([foreign_array(b) if foreign.is_foreign(b) else np.asarray(b)
                                   for b in batch]))
    if isinstance(elem, bool):
        return Tensor.of(np.array(batch, dtype=bool))
    if isinstance(elem, int):
        return Tensor.of(np.array(batch, dtype=np.int64))
    if isinstance(elem, float):
        return Tensor.of(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, Mapping):
        return type(elem)({k: default_collate([b[k] for b in batch]) for k in elem})
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
        return type(elem)(*(default_collate(list(f)) for f in zip(*batch)))
    if isinstance(elem, Sequence):
        if len({len(b) for b in batch}) != 1:
            raise DlgValueError("default_collate: each element in list of batch should be of "
                                "equal size")
        return [default_collate(list(f)) for f in zip(*batch)]
    raise DlgTypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, "
                       f"dicts or lists; found {foreign.type_name(elem)}")


def default_convert(sample: Any) -> Any:
    """torch's collation without batching (`batch_size=None`): NumPy arrays and scalars become
    dlg tensors, inside dicts and sequences too (a tuple becomes a list, as in torch)."""
    if isinstance(sample, (np.ndarray, np.generic)) or foreign.is_foreign(sample):
        return Tensor.of(sample)
    if isinstance(sample, Mapping):
        return type(sample)({k: default_convert(v) for k, v in sample.items()})
    if isinstance(sample, tuple) and hasattr(sample, "_fields"):
        return type(sample)(*(default_convert(v) for v in sample))
    if isinstance(sample, Sequence) and not isinstance(sample, (str, bytes)):
        return [default_convert(v) for v in sample]
    return sample
