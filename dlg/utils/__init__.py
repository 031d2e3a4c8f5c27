"""`dlg.utils`: PyTorch-style utilities (`dlg.utils.data`, `dlg.utils.checkpoint`)."""

from dlg.utils import checkpoint, data

__all__ = ["checkpoint", "data"]
