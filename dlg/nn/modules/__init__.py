"""`dlg.nn.modules`: torch.nn.modules' file-by-file paths to the same classes as `dlg.nn`
(`torch.nn.modules.batchnorm._BatchNorm` in an isinstance check, `torch.nn.modules.rnn.LSTM`
in a `torch.serialization.safe_globals` list). Each path is a module object made here and
registered in sys.modules, so `import dlg.nn.modules.conv` and `from dlg.nn.modules.loss
import _Loss` work as torch's."""

from __future__ import annotations

import sys
import types

from dlg.frontend import nn as _nn
from dlg.frontend.nn import conv as _conv
from dlg.frontend.nn import layers as _layers
from dlg.frontend.nn import losses as _losses
from dlg.frontend.nn import norms as _norms

# torch.nn.modules' files and the public classes of each that dlg.nn has
_FILES = {
    "activation": ("Threshold ReLU RReLU Hardtanh ReLU6 Sigmoid Hardsigmoid Tanh SiLU Mish "
                   "Hardswish ELU CELU SELU GLU GELU Hardshrink LeakyReLU LogSigmoid Softplus "
                   "Softshrink MultiheadAttention PReLU Softsign Tanhshrink Softmin Softmax "
                   "Softmax2d LogSoftmax").split(),
    "adaptive": "AdaptiveLogSoftmaxWithLoss".split(),
    "batchnorm": ("BatchNorm1d LazyBatchNorm1d BatchNorm2d LazyBatchNorm2d BatchNorm3d "
                  "LazyBatchNorm3d").split(),
    "channelshuffle": "ChannelShuffle".split(),
    "container": "Sequential ModuleList ModuleDict ParameterList ParameterDict".split(),
    "conv": ("Conv1d Conv2d Conv3d ConvTranspose1d ConvTranspose2d ConvTranspose3d LazyConv1d "
             "LazyConv2d LazyConv3d LazyConvTranspose1d LazyConvTranspose2d "
             "LazyConvTranspose3d").split(),
    "distance": "PairwiseDistance CosineSimilarity".split(),
    "dropout": "Dropout Dropout1d Dropout2d Dropout3d AlphaDropout FeatureAlphaDropout".split(),
    "flatten": "Flatten Unflatten".split(),
    "fold": "Fold Unfold".split(),
    "instancenorm": ("InstanceNorm1d InstanceNorm2d InstanceNorm3d LazyInstanceNorm1d "
                     "LazyInstanceNorm2d LazyInstanceNorm3d").split(),
    "linear": "Bilinear Identity LazyLinear Linear".split(),
    "loss": ("L1Loss NLLLoss PoissonNLLLoss GaussianNLLLoss KLDivLoss MSELoss BCELoss "
             "BCEWithLogitsLoss HingeEmbeddingLoss MultiLabelMarginLoss SmoothL1Loss HuberLoss "
             "SoftMarginLoss CrossEntropyLoss MultiLabelSoftMarginLoss CosineEmbeddingLoss "
             "MarginRankingLoss MultiMarginLoss TripletMarginLoss TripletMarginWithDistanceLoss "
             "CTCLoss").split(),
    "module": "Module".split(),
    "normalization": "LocalResponseNorm LayerNorm GroupNorm RMSNorm".split(),
    "padding": ("CircularPad1d CircularPad2d CircularPad3d ConstantPad1d ConstantPad2d "
                "ConstantPad3d ReflectionPad1d ReflectionPad2d ReflectionPad3d ReplicationPad1d "
                "ReplicationPad2d ReplicationPad3d ZeroPad1d ZeroPad2d ZeroPad3d").split(),
    "pixelshuffle": "PixelShuffle PixelUnshuffle".split(),
    "pooling": ("MaxPool1d MaxPool2d MaxPool3d MaxUnpool1d MaxUnpool2d MaxUnpool3d AvgPool1d "
                "AvgPool2d AvgPool3d LPPool1d LPPool2d LPPool3d AdaptiveMaxPool1d "
                "AdaptiveMaxPool2d AdaptiveMaxPool3d AdaptiveAvgPool1d AdaptiveAvgPool2d "
                "AdaptiveAvgPool3d").split(),
    "rnn": "RNN LSTM GRU RNNCell LSTMCell GRUCell".split(),
    "sparse": "Embedding EmbeddingBag".split(),
    "transformer": ("Transformer TransformerEncoder TransformerDecoder TransformerEncoderLayer "
                    "TransformerDecoderLayer").split(),
    "upsampling": "Upsample UpsamplingNearest2d UpsamplingBilinear2d".split(),
}
# torch's bases that dlg's classes share (isinstance(m, nn.modules.batchnorm._BatchNorm))
_BASES = {"batchnorm": {"_BatchNorm": _norms._BatchNorm},
          "instancenorm": {"_InstanceNorm": _norms._InstanceNorm},
          "conv": {"_ConvNd": _conv._ConvNd, "_ConvTransposeNd": _conv._ConvTransposeNd},
          "loss": {"_Loss": _losses._Loss},
          "linear": {"NonDynamicallyQuantizableLinear":  # MHA's out_proj
                     _layers.NonDynamicallyQuantizableLinear}}


def _file(name: str) -> types.ModuleType:
    module = types.ModuleType(f"{__name__}.{name}", f"torch.nn.modules.{name}'s classes")
    module.__dict__.update({n: getattr(_nn, n) for n in _FILES[name]})
    module.__dict__.update(_BASES.get(name, {}))
    module.__all__ = list(_FILES[name])  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    return module


globals().update({name: _file(name) for name in _FILES})
globals().update({n: getattr(_nn, n) for names in _FILES.values() for n in names})
__all__ = sorted({n for names in _FILES.values() for n in names})
