"""`dlg.optim.swa_utils`: torch.optim.swa_utils' AveragedModel, SWALR, update_bn and the
average functions (the public face of dlg.frontend.swa)."""

from dlg.frontend.swa import SWALR, AveragedModel, get_ema_avg_fn, get_swa_avg_fn, update_bn

__all__ = ["SWALR", "AveragedModel", "get_ema_avg_fn", "get_swa_avg_fn", "update_bn"]
