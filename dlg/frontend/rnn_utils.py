"""torch.nn.utils.rnn's `pad_sequence`: sequences of different lengths padded into one batch
(recorded: gradients flow back to each sequence)."""

from __future__ import annotations

from collections.abc import Sequence

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
