"""`dlg.nn.utils.rnn`: torch.nn.utils.rnn's `pad_sequence` (dlg has no PackedSequence: recurrent
layers take padded batches)."""

from dlg.frontend.rnn_utils import pad_sequence

__all__ = ["pad_sequence"]
