"""`dlg.nn.utils`: torch.nn.utils' gradient clipping (the public face of dlg.frontend.clip)."""

from dlg.frontend.clip import clip_grad_norm_, clip_grad_value_

__all__ = ["clip_grad_norm_", "clip_grad_value_"]
