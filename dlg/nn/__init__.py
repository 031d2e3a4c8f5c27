"""`dlg.nn`: PyTorch-style modules (the public face of dlg.frontend.nn)."""

from dlg.frontend.nn import (
    GELU,
    AvgPool2d,
    BCELoss,
    BCEWithLogitsLoss,
    Conv1d,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Flatten,
    L1Loss,
    Linear,
    LogSoftmax,
    MaxPool2d,
    Module,
    ModuleList,
    MSELoss,
    NLLLoss,
    Parameter,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from dlg.nn import functional

__all__ = ["GELU", "AvgPool2d", "BCELoss", "BCEWithLogitsLoss", "Conv1d", "Conv2d",
           "CrossEntropyLoss", "Dropout", "Flatten", "L1Loss", "Linear", "LogSoftmax",
           "MSELoss", "MaxPool2d", "Module", "ModuleList", "NLLLoss", "Parameter", "ReLU",
           "Sequential", "Sigmoid", "Softmax", "Tanh", "functional"]
