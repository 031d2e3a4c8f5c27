"""`dlg.autograd.forward_ad`: torch.autograd.forward_ad (dlg.frontend.forward_ad)."""

from dlg.autograd import grad
from dlg.frontend.forward_ad import (GRAD, UnpackedDualTensor, dual_level, enter_dual_level,
                                     exit_dual_level, make_dual, unpack_dual)

GRAD[:] = [grad]  # tangents are taken with dlg.autograd.grad (the double-vjp identity)

__all__ = ["UnpackedDualTensor", "dual_level", "enter_dual_level", "exit_dual_level",
           "make_dual", "unpack_dual"]
