"""`dlg.amp`: torch.amp's autocast and GradScaler (dlg.frontend.amp: on dlg's CPU-only eager
front a CUDA autocast or scaler is disabled with a warning, as torch's is without CUDA)."""

from dlg.frontend.amp import GradScaler, autocast, is_autocast_available

__all__ = ["GradScaler", "autocast", "is_autocast_available"]
