"""`dlg.optim`: torch.optim's optimizers (the public face of dlg.frontend.optim, and of
frontend.lbfgs for LBFGS, run eagerly only), `dlg.optim.lr_scheduler` and
`dlg.optim.swa_utils`."""

from dlg.frontend.optim import (
    ASGD,
    SGD,
    Adadelta,
    Adafactor,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    NAdam,
    Optimizer,
    RAdam,
    RMSprop,
    Rprop,
)
from dlg.frontend.lbfgs import LBFGS
from dlg.optim import lr_scheduler, swa_utils

__all__ = ["ASGD", "LBFGS", "SGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax",
           "NAdam", "Optimizer", "RAdam", "RMSprop", "Rprop", "lr_scheduler", "swa_utils"]
