"""`dlg.cuda`: what torch.cuda tells a program on a machine without CUDA (eager dlg tensors
never live on a GPU; `dlg.compile` targets one), and `dlg.cuda.amp`."""

from dlg.cuda import amp


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0


__all__ = ["amp", "device_count", "is_available"]
