"""`dlg.nn.utils`: torch.nn.utils' gradient clipping, parameter vectors, `rnn` (pad_sequence,
PackedSequence and its packing functions), weight and spectral normalisation (old-style hooks
here, `parametrizations` and `parametrize` the new style), `prune`, `stateless.functional_call`,
conv/linear + batch norm fusion; the public face of dlg.frontend.clip, param_vector, rnn_utils,
nn.weight_norms, nn.parametrize, nn.prune, nn.fusion and nn.stateless."""

from dlg.frontend.clip import (clip_grad_norm, clip_grad_norm_, clip_grad_value_,
                               clip_grads_with_norm_, get_total_norm)
from dlg.frontend.nn.fusion import (fuse_conv_bn_eval, fuse_conv_bn_weights, fuse_linear_bn_eval,
                                    fuse_linear_bn_weights)
from dlg.frontend.param_vector import parameters_to_vector, vector_to_parameters
from dlg.frontend.nn.weight_norms import (remove_spectral_norm, remove_weight_norm,
                                           spectral_norm, weight_norm)
from dlg.nn.utils import parametrizations, parametrize, prune, rnn, stateless

__all__ = ["clip_grad_norm", "clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_",
           "fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval",
           "fuse_linear_bn_weights", "get_total_norm", "parameters_to_vector",
           "parametrizations", "parametrize", "prune", "remove_spectral_norm",
           "remove_weight_norm", "rnn", "spectral_norm", "stateless", "vector_to_parameters",
           "weight_norm"]
