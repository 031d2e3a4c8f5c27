"""`dlg.nn`: PyTorch-style modules over dlg tensors, by family (module machinery and
containers, layers, activations, normalisation, pooling, recurrent layers, losses).

Parameter names, shapes and initialisers are those of prelude.dlg (which follow torch.nn), drawn
with the same initialiser functions (`dlg.ir.init`), so a module's state_dict loads into the
.dlg model and into PyTorch as it is.
"""

from dlg.frontend.nn.activations import GELU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from dlg.frontend.nn.layers import Conv1d, Conv2d, Dropout, Embedding, Flatten, Linear
from dlg.frontend.nn.losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
)
from dlg.frontend.nn.module import Module, ModuleList, Parameter, Sequential
from dlg.frontend.nn.norms import BatchNorm1d, BatchNorm2d, LayerNorm
from dlg.frontend.nn.pooling import AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from dlg.frontend.nn.recurrent import GRU, LSTM, RNN

__all__ = ["GELU", "GRU", "LSTM", "RNN", "AvgPool1d", "AvgPool2d", "BCELoss",
           "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d", "Conv1d", "Conv2d",
           "CrossEntropyLoss", "Dropout", "Embedding", "Flatten", "L1Loss", "LayerNorm", "Linear",
           "LogSoftmax", "MSELoss", "MaxPool1d", "MaxPool2d", "Module", "ModuleList", "NLLLoss",
           "Parameter", "ReLU", "Sequential", "Sigmoid", "Softmax", "Tanh"]
