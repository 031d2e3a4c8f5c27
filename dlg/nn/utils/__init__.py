"""`dlg.nn.utils`: torch.nn.utils' gradient clipping, parameter vectors, `rnn` (pad_sequence,
PackedSequence and its packing functions), weight and spectral normalisation (old-style hooks
here, `parametrizations` and `parametrize` the new style), `prune`, `stateless.functional_call`;
the public face of dlg.frontend.clip, param_vector, rnn_utils, nn.weight_norms, nn.parametrize,
nn.prune and nn.stateless."""

from dlg.frontend.clip import clip_grad_norm_, clip_grad_value_
from dlg.frontend.param_vector import parameters_to_vector, vector_to_parameters
from dlg.frontend.nn.weight_norms import (remove_spectral_norm, remove_weight_norm,
                                           spectral_norm, weight_norm)
from dlg.nn.utils import parametrizations, parametrize, prune, rnn, stateless

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "parametrizations",
           "parametrize", "prune", "remove_spectral_norm", "remove_weight_norm", "rnn",
           "spectral_norm", "stateless", "vector_to_parameters", "weight_norm"]
