"""`dlg.utils`: PyTorch-style utilities (`dlg.utils.data`)."""

from dlg.utils import data

__all__ = ["data"]
