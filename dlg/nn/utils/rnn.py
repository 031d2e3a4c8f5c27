"""`dlg.nn.utils.rnn`: torch.nn.utils.rnn's `pad_sequence`, `PackedSequence` and its packing
functions (the recurrent layers take and return packed batches)."""

from dlg.frontend.rnn_utils import (PackedSequence, pack_padded_sequence, pack_sequence,
                                    pad_packed_sequence, pad_sequence, unpack_sequence,
                                    unpad_sequence)

__all__ = ["PackedSequence", "pack_padded_sequence", "pack_sequence", "pad_packed_sequence",
           "pad_sequence", "unpack_sequence", "unpad_sequence"]
