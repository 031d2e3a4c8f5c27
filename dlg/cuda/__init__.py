"""`dlg.cuda`: what torch.cuda tells a program on a machine without CUDA (eager dlg tensors
never live on a GPU; `dlg.compile` targets one), and `dlg.cuda.amp`."""

from dlg.cuda import amp


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0


# set_seed helpers call these on every machine: without CUDA torch ignores them silently
def manual_seed(seed: int) -> None:
    """Nothing to seed: no CUDA generator (torch ignores the call without CUDA too)."""


def manual_seed_all(seed: int) -> None:
    """Nothing to seed: no CUDA generator (torch ignores the call without CUDA too)."""


def seed() -> None:
    """Nothing to seed (torch ignores the call without CUDA too)."""


def seed_all() -> None:
    """Nothing to seed (torch ignores the call without CUDA too)."""


def empty_cache() -> None:
    """No CUDA caching allocator to empty (torch's call does nothing without CUDA either)."""


__all__ = ["amp", "device_count", "empty_cache", "is_available", "manual_seed",
           "manual_seed_all", "seed", "seed_all"]
