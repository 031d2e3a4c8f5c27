"""`dlg.backends.cudnn`: torch.backends.cudnn's switches with torch's defaults (`enabled`,
`benchmark`, `deterministic`, `allow_tf32`), recorded only: eager dlg has no cuDNN, so
`is_available()` is False and `version()` None, as torch's without CUDA."""

from types import ModuleType

from dlg.backends.flags import Flag, module_with_flags


def is_available() -> bool:
    return False


def version() -> None:
    return None


class _Cudnn(ModuleType):
    enabled = Flag(True)
    benchmark = Flag(False)
    deterministic = Flag(False)
    allow_tf32 = Flag(True)


module_with_flags(__name__, _Cudnn)
