"""`dlg.autograd.forward_ad`: torch.autograd.forward_ad (dlg.frontend.forward_ad)."""

from dlg.frontend.forward_ad import (UnpackedDualTensor, dual_level, enter_dual_level,
                                     exit_dual_level, make_dual, unpack_dual)

__all__ = ["UnpackedDualTensor", "dual_level", "enter_dual_level", "exit_dual_level",
           "make_dual", "unpack_dual"]
