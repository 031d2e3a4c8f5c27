"""`dlg.utils`: PyTorch-style utilities (`dlg.utils.data`, `dlg.utils.checkpoint`,
`dlg.utils.swap_tensors`)."""

from dlg.frontend.swap import swap_tensors
from dlg.utils import checkpoint, data

__all__ = ["checkpoint", "data", "swap_tensors"]
