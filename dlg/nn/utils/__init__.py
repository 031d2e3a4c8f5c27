"""`dlg.nn.utils`: torch.nn.utils' gradient clipping, parameter vectors and `rnn` (pad_sequence,
PackedSequence and its packing functions; the public face of dlg.frontend.clip, param_vector and
rnn_utils)."""

from dlg.frontend.clip import clip_grad_norm_, clip_grad_value_
from dlg.frontend.param_vector import parameters_to_vector, vector_to_parameters
from dlg.nn.utils import rnn

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "rnn",
           "vector_to_parameters"]
