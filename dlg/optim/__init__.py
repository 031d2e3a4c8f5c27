"""`dlg.optim`: torch.optim's optimizers (the public face of dlg.frontend.optim, and of
optim_eager and lbfgs for those run eagerly only) and `dlg.optim.lr_scheduler`."""

from dlg.frontend.optim import (
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    NAdam,
    Optimizer,
    RAdam,
    RMSprop,
)
from dlg.frontend.lbfgs import LBFGS
from dlg.frontend.optim_eager import ASGD, Adafactor, Rprop
from dlg.optim import lr_scheduler

__all__ = ["ASGD", "LBFGS", "SGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax",
           "NAdam", "Optimizer", "RAdam", "RMSprop", "Rprop", "lr_scheduler"]
