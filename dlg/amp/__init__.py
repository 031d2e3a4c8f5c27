"""`dlg.amp`: torch.amp's autocast, GradScaler and custom_fwd/custom_bwd (dlg.frontend.amp: on
dlg's CPU-only eager front a CUDA autocast or scaler is disabled with a warning, as torch's is
without CUDA)."""

from dlg.frontend.amp import GradScaler, autocast, custom_bwd, custom_fwd, is_autocast_available

__all__ = ["GradScaler", "autocast", "custom_bwd", "custom_fwd", "is_autocast_available"]
