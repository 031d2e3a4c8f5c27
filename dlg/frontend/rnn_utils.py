"""torch.nn.utils.rnn: `pad_sequence`, and `PackedSequence` with its packing functions.

A PackedSequence is torch's record (data, batch_sizes, sorted_indices, unsorted_indices) over
one of two forms, each made from the other when asked: the packed rows (`data`, [sum(lengths),
*], torch's time-major layout, longest sequences first), or the padded batch (time-major [T, B,
*], the batch's own order) with its lengths. Packing a padded batch keeps the padded form, and
`nn.RNN/GRU/LSTM` run it as it is, with a mask (step t is within sequence b's length) that
their prelude.dlg layers read: past its length a sequence keeps its state and outputs zeros, so
nothing is sorted and every op is an ordinary recorded op (eager gradients, tracing and
compiling work alike). `data` is one `take` of the padded rows (a `take` back for a batch built
from data). While tracing, lengths that are an input of the trace are data: the mask is computed
by ops, and what needs their values (`data`, `batch_sizes`, the indices, pad_packed_sequence
without `total_length`) is a DlgValueError saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor, call


def pad_sequence(sequences: Sequence[Tensor], batch_first: bool = False,
                 padding_value: float = 0.0, padding_side: str = "right") -> Tensor:
    """[T, B, *] (or [B, T, *] with `batch_first`), T the longest length; the shorter
    sequences take `padding_value` after their end ("right") or before their start ("left")."""
    if padding_side not in ("left", "right"):
        raise DlgValueError(f"pad_sequence: padding_side must be 'left' or 'right', got "
                            f"{padding_side!r}", engine.caller_span())
    if not sequences:
        raise DlgValueError("pad_sequence: received an empty list of sequences",
                            engine.caller_span())
    longest = max(len(s) for s in sequences)
    padded = []
    for s in sequences:
        extra = longest - len(s)
        widths = (extra, 0) if padding_side == "left" else (0, extra)
        padded.append(call("pad", s, (0, 0) * (s.ndim - 1) + widths, value=padding_value))
    return call("stack", padded, dim=0 if batch_first else 1)


class PackedSequence:
    """torch.nn.utils.rnn.PackedSequence: `PackedSequence(data, batch_sizes, sorted_indices=None,
    unsorted_indices=None)` as torch's (a 4-tuple of its fields); the RNN layers take and return
    it, and `pad_packed_sequence` turns it back into a padded batch."""

    def __init__(self, data: Tensor, batch_sizes: Any = None, sorted_indices: Any = None,
                 unsorted_indices: Any = None):
        if batch_sizes is None:
            raise DlgValueError("PackedSequence: batch_sizes is required (make packed batches "
                                "with pack_padded_sequence or pack_sequence)",
                                engine.caller_span())
        sizes = _ints(batch_sizes, "batch_sizes")
        order = None if sorted_indices is None else _ints(sorted_indices, "sorted_indices")
        if order is None and unsorted_indices is not None:
            order = np.argsort(_ints(unsorted_indices, "unsorted_indices"))
        self._data: Tensor | None = data
        self._padded: Tensor | None = None
        self._sizes: np.ndarray | None = sizes
        self._order = order  # sorted_indices: the batch positions, longest first
        lengths = (sizes[None, :] > np.arange(sizes[0])[:, None]).sum(axis=1)
        if order is not None:
            lengths[order] = lengths.copy()
        self._lengths = Tensor.of(lengths.astype(np.int64))

    @classmethod
    def _of_padded(cls, padded: Tensor, lengths: Tensor, sizes: np.ndarray | None,
                   order: np.ndarray | None) -> PackedSequence:
        """The padded form: time-major [T, B, *], lengths [B] (int64; traced or not), and the
        batch sizes and order where the lengths are known."""
        out = cls.__new__(cls)
        out._data, out._padded, out._lengths, out._sizes, out._order = (
            None, padded, lengths, sizes, order)
        return out

    # ---- torch's fields ------------------------------------------------------------------------
    @property
    def data(self) -> Tensor:
        if self._data is None:
            sizes, order = self._known("data"), self._sorted_order()
            padded = self._padded
            assert padded is not None
            steps, batch = padded.shape[0], padded.shape[1]
            rows = np.concatenate([t * batch + order[:n] for t, n in enumerate(sizes)])
            flat = padded.reshape(steps * batch, *padded.shape[2:])
            self._data = call("take", flat, rows.astype(np.int64), 0)
        return self._data

    @property
    def batch_sizes(self) -> Tensor:
        return Tensor.of(self._known("batch_sizes"))

    @property
    def sorted_indices(self) -> Tensor | None:
        self._known("sorted_indices")
        return None if self._order is None else Tensor.of(self._order)

    @property
    def unsorted_indices(self) -> Tensor | None:
        self._known("unsorted_indices")
        return None if self._order is None else Tensor.of(np.argsort(self._order))

    def __iter__(self) -> Iterator[Any]:
        return iter((self.data, self.batch_sizes, self.sorted_indices, self.unsorted_indices))

    def __getitem__(self, i: int) -> Any:
        return tuple(self)[i]

    def __len__(self) -> int:
        return 4

    def __repr__(self) -> str:
        if self._sizes is None:
            return f"PackedSequence(<traced lengths>, padded={self._padded!r})"
        return (f"PackedSequence(data={self.data!r}, batch_sizes={self.batch_sizes!r}, "
                f"sorted_indices={self.sorted_indices!r}, "
                f"unsorted_indices={self.unsorted_indices!r})")

    # ---- conversions: the data's, as torch's ---------------------------------------------------
    def to(self, *args: Any, **kwargs: Any) -> PackedSequence:
        return self._map(lambda t: t.to(*args, **kwargs))

    def cpu(self) -> PackedSequence:
        return self

    def cuda(self, *args: Any, **kwargs: Any) -> PackedSequence:
        return self._map(lambda t: t.cuda(*args, **kwargs))

    def float(self) -> PackedSequence:  # noqa: A003 (torch's names)
        return self._map(lambda t: t.float())

    def double(self) -> PackedSequence:
        return self._map(lambda t: t.double())

    def half(self) -> PackedSequence:
        return self._map(lambda t: t.half())

    def long(self) -> PackedSequence:
        return self._map(lambda t: t.long())

    def int(self) -> PackedSequence:  # noqa: A003
        return self._map(lambda t: t.int())

    @property
    def is_cuda(self) -> bool:
        return False

    def is_pinned(self) -> bool:
        return False

    def _map(self, fn: Callable[[Tensor], Tensor]) -> PackedSequence:
        out = PackedSequence.__new__(PackedSequence)
        out.__dict__.update(self.__dict__)
        if out._padded is not None:
            out._padded = fn(out._padded)
        if out._data is not None:
            out._data = fn(out._data)
        return out

    # ---- what the recurrent layers and pad_packed_sequence read --------------------------------
    def _padded_form(self) -> tuple[Tensor, Tensor, Tensor]:
        """(padded [T, B, *] time-major, mask [T, B, 1, ...] true within each length, lengths)."""
        if self._padded is None:
            assert self._data is not None and self._sizes is not None
            self._padded = _unpack(self._data, self._sizes, self._sorted_order())
        padded = self._padded
        steps = padded.shape[0]
        ones = (1,) * (padded.ndim - 2)
        time = call("arange", steps).reshape(steps, 1, *ones)
        mask = call("lt", time, self._lengths.reshape(1, -1, *ones))
        return padded, mask, self._lengths

    def _with_padded(self, padded: Tensor) -> PackedSequence:
        """A packed batch of the same lengths and order over new padded steps."""
        return PackedSequence._of_padded(padded, self._lengths, self._sizes, self._order)

    def _known(self, what: str) -> np.ndarray:
        if self._sizes is None:
            raise DlgValueError(
                f"PackedSequence.{what}: the lengths are data of the traced model, so the packed "
                "layout (its size is their sum) is not known while tracing; recurrent layers "
                "run the packed batch, and pad_packed_sequence(..., total_length=T) reads it "
                "back", engine.caller_span())
        return self._sizes

    def _sorted_order(self) -> np.ndarray:
        return np.arange(self._lengths.shape[0]) if self._order is None else self._order


def pack_padded_sequence(input: Tensor, lengths: Any, batch_first: bool = False,  # noqa: A002
                         enforce_sorted: bool = True) -> PackedSequence:
    """A packed batch of `input` ([T, B, *], [B, T, *] with batch_first), sequence b being its
    first lengths[b] steps; with `enforce_sorted` the lengths must be in decreasing order (then
    sorted_indices is None)."""
    x = input if isinstance(input, Tensor) else Tensor.of(input)
    if x.ndim < 2:
        raise DlgValueError(f"pack_padded_sequence: input must be [T, B, *] ([B, T, *] with "
                            f"batch_first), got {x.ndim}-d", engine.caller_span())
    padded = x.transpose(0, 1) if batch_first else x
    if isinstance(lengths, Tensor) and (lengths.graph_value is not None
                                        or x.graph_value is not None):
        lengths = lengths if lengths.dtype.np == np.int64 else lengths.long()
        return PackedSequence._of_padded(padded, lengths, None, None)
    known = _lengths(lengths, padded.shape[0], padded.shape[1], enforce_sorted)
    order = None if enforce_sorted else np.argsort(-known, kind="stable")
    longest = int(known.max())
    sizes = (known[None, :] > np.arange(longest)[:, None]).sum(axis=1).astype(np.int64)
    if longest < padded.shape[0]:
        padded = padded.narrow(0, 0, longest)
    return PackedSequence._of_padded(padded, Tensor.of(known), sizes, order)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False,
                        padding_value: float = 0.0, total_length: int | None = None
                        ) -> tuple[Tensor, Tensor]:
    """(padded [T, B, *] ([B, T, *] with batch_first), lengths int64 [B]), the batch in its
    original order, `padding_value` past each length; T is the longest length, or
    `total_length`."""
    if not isinstance(sequence, PackedSequence):
        raise DlgValueError(f"pad_packed_sequence takes a PackedSequence, got "
                            f"{type(sequence).__name__}", engine.caller_span())
    padded, mask, lengths = sequence._padded_form()
    steps = padded.shape[0]
    if sequence._sizes is not None and total_length is not None and total_length < steps:
        raise DlgValueError(f"Expected total_length to be at least the length of the longest "
                            f"sequence in input, but got total_length={total_length} and max "
                            f"sequence length being {steps}", engine.caller_span())
    if sequence._sizes is None and total_length is None:
        raise DlgValueError("pad_packed_sequence: the lengths are data of the traced model, so "
                            "the longest length (the padded size) is not known while tracing; "
                            "pass total_length=", engine.caller_span())
    out = call("where", mask, padded, padding_value)
    if total_length is not None and total_length != steps:
        if isinstance(steps, int) and total_length < steps:  # traced lengths: user's promise
            out = out.narrow(0, 0, total_length)
        else:
            extra = (0, total_length - steps)
            out = call("pad", out, (0, 0) * (out.ndim - 1) + extra, value=padding_value)
    return (out.transpose(0, 1) if batch_first else out), lengths


def pack_sequence(sequences: Sequence[Tensor], enforce_sorted: bool = True) -> PackedSequence:
    """A packed batch of the sequences ([L_i, *] each)."""
    if not sequences:
        raise DlgValueError("received an empty list of sequences", engine.caller_span())
    lengths = [len(s) for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> list[Tensor]:
    """The sequences of a packed batch, each [L_i, *], in the batch's order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return [padded[i, :n] for i, n in enumerate(lengths.tolist())]


def unpad_sequence(padded_sequences: Tensor, lengths: Any, batch_first: bool = False
                   ) -> list[Tensor]:
    """The sequences of a padded batch, sequence b its first lengths[b] steps."""
    x = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    known = _lengths(lengths, x.shape[1], x.shape[0], False)
    return [x[i, :n] for i, n in enumerate(known.tolist())]


def _unpack(data: Tensor, sizes: np.ndarray, order: np.ndarray) -> Tensor:
    """The padded form [T, B, *] of packed rows: row (t, b) is data's, or a zero row (the last
    of data padded by one) past b's length."""
    rank = order.argsort()  # where each sequence of the batch sits, longest first
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rows = np.where(rank[None, :] < sizes[:, None], starts[:, None] + rank[None, :],
                    int(sizes.sum()))
    extended = call("pad", data, (0, 0) * (data.ndim - 1) + (0, 1))
    picked = call("take", extended, rows.reshape(-1).astype(np.int64), 0)
    return picked.reshape(len(sizes), len(order), *data.shape[1:])


def _lengths(lengths: Any, steps: Any, batch: Any, enforce_sorted: bool) -> np.ndarray:
    """The lengths as int64 values, with torch's checks."""
    array = np.asarray(lengths)
    if array.ndim != 1:
        raise DlgValueError(f"'lengths' argument should be a 1D CPU int64 tensor, but got "
                            f"{array.ndim}D", engine.caller_span())
    if array.dtype.kind not in "iuf" and array.size:
        raise DlgValueError(f"'lengths' must be integers, got {array.dtype}",
                            engine.caller_span())
    known = array.astype(np.int64)
    if isinstance(batch, int) and len(known) != batch:
        raise DlgValueError(f"Expected `len(lengths)` to be equal to batch_size, but got "
                            f"{len(known)} (batch_size={batch})", engine.caller_span())
    if known.size == 0 or known.min() <= 0:
        raise DlgValueError("Length of all samples has to be greater than 0, but found an "
                            "element in 'lengths' that is <= 0", engine.caller_span())
    if isinstance(steps, int) and known.max() > steps:
        raise DlgValueError(f"a length of {int(known.max())} is longer than the padded "
                            f"sequences ({steps} steps)", engine.caller_span())
    if enforce_sorted and np.any(known[1:] > known[:-1]):
        raise DlgValueError(
            "`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
            "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence "
            "to sidestep this requirement if you do not need ONNX exportability.",
            engine.caller_span())
    return known


def _ints(value: Any, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise DlgValueError(f"PackedSequence: {name} must be a 1-d integer tensor",
                            engine.caller_span())
    return array.astype(np.int64)
