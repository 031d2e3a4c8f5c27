"""`dlg.backends.mkldnn`: torch's oneDNN switch (`enabled`, default True), recorded only: eager
dlg's CPU kernels are NumPy's."""

from types import ModuleType

from dlg.backends.flags import Flag, module_with_flags


def is_available() -> bool:
    return False


class _Mkldnn(ModuleType):
    enabled = Flag(True)


module_with_flags(__name__, _Mkldnn)
