"""`dlg.nn`: PyTorch-style modules (the public face of dlg.frontend.nn)."""

from dlg.frontend import nn as _nn
from dlg.nn import attention, functional, grad, init, modules, parameter, utils

globals().update({name: getattr(_nn, name) for name in _nn.__all__})
__all__ = [*_nn.__all__, "attention", "functional", "grad", "init", "modules", "parameter",
           "utils"]
