"""`dlg.nn.utils.parametrizations`: torch's weight_norm and spectral_norm as parametrizations
(dlg.frontend.nn.weight_norms)."""

from dlg.frontend.nn.weight_norms import parametrized_spectral_norm as spectral_norm
from dlg.frontend.nn.weight_norms import parametrized_weight_norm as weight_norm

__all__ = ["spectral_norm", "weight_norm"]
