"""`dlg.linalg`: the names of torch.linalg that dlg has (`dlg/functions/linalg.py`)."""

from dlg.frontend.functional import vector_norm

__all__ = ["vector_norm"]
