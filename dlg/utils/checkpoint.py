"""`dlg.utils.checkpoint`: torch.utils.checkpoint's `checkpoint` and `checkpoint_sequential`
(the public face of dlg.frontend.checkpoint)."""

from dlg.frontend.checkpoint import checkpoint, checkpoint_sequential

__all__ = ["checkpoint", "checkpoint_sequential"]
