"""`dlg.optim`: torch.optim's optimizers (the public face of dlg.frontend.optim) and
`dlg.optim.lr_scheduler`."""

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
from dlg.optim import lr_scheduler

__all__ = ["SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "NAdam", "Optimizer",
           "RAdam", "RMSprop", "lr_scheduler"]
