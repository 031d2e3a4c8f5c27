"""`dlg.optim`: SGD, Adam, AdamW, RMSprop (the public face of dlg.frontend.optim)."""

from dlg.frontend.optim import SGD, Adam, AdamW, Optimizer, RMSprop

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "RMSprop"]
