"""`dlg.nn`: PyTorch-style modules over dlg tensors, by family (module machinery and
containers, layers, convolutions, activations, normalisation, pooling, attention, recurrent
layers, Transformer layers, losses, weightless spatial modules: shuffles, padding,
resampling).

Parameter names, shapes and initialisers are those of torch.nn (and prelude.dlg, which follows
it), drawn with the same initialiser functions (`dlg.ir.init`), so a module's state_dict loads
into the .dlg model and into PyTorch as it is.
"""

from dlg.frontend.nn.activations import (  # noqa: F401
    CELU,
    ELU,
    GELU,
    GLU,
    SELU,
    Hardshrink,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    Mish,
    PReLU,
    RReLU,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softmax2d,
    Softmin,
    Softplus,
    Softshrink,
    Softsign,
    Tanh,
    Tanhshrink,
    Threshold,
)
from dlg.frontend.nn.attention import MultiheadAttention  # noqa: F401
from dlg.frontend.nn.conv import (  # noqa: F401
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
)
from dlg.frontend.nn.adaptive import AdaptiveLogSoftmaxWithLoss  # noqa: F401
from dlg.frontend.nn.layers import (  # noqa: F401
    AlphaDropout,
    Bilinear,
    Dropout,
    Dropout1d,
    Dropout2d,
    Dropout3d,
    Embedding,
    EmbeddingBag,
    FeatureAlphaDropout,
    Flatten,
    Identity,
    LazyLinear,
    Linear,
    Unflatten,
)
from dlg.frontend.nn.losses import (  # noqa: F401
    BCELoss,
    BCEWithLogitsLoss,
    CosineEmbeddingLoss,
    CTCLoss,
    CosineSimilarity,
    CrossEntropyLoss,
    GaussianNLLLoss,
    HingeEmbeddingLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MarginRankingLoss,
    MSELoss,
    MultiLabelMarginLoss,
    MultiLabelSoftMarginLoss,
    MultiMarginLoss,
    NLLLoss,
    PairwiseDistance,
    PoissonNLLLoss,
    SmoothL1Loss,
    SoftMarginLoss,
    TripletMarginLoss,
    TripletMarginWithDistanceLoss,
)
from dlg.frontend.nn.module import (Buffer, Module, ModuleDict, ModuleList,  # noqa: F401
                                    Parameter, Sequential)
from dlg.frontend.nn.parallel import DataParallel  # noqa: F401
from dlg.frontend.nn.norms import (  # noqa: F401
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    GroupNorm,
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
    LayerNorm,
    LocalResponseNorm,
    RMSNorm,
)
from dlg.frontend.nn.parameters import ParameterDict, ParameterList  # noqa: F401
from dlg.frontend.nn.uninitialized import UninitializedBuffer, UninitializedParameter  # noqa: F401
from dlg.frontend.nn.pooling import (  # noqa: F401
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AdaptiveMaxPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    LPPool1d,
    LPPool2d,
    LPPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
    MaxUnpool1d,
    MaxUnpool2d,
    MaxUnpool3d,
)
from dlg.frontend.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell  # noqa: F401
from dlg.frontend.nn.spatial import (  # noqa: F401
    ChannelShuffle,
    CircularPad1d,
    CircularPad2d,
    CircularPad3d,
    ConstantPad1d,
    ConstantPad2d,
    ConstantPad3d,
    Fold,
    PixelShuffle,
    PixelUnshuffle,
    ReflectionPad1d,
    ReflectionPad2d,
    ReflectionPad3d,
    ReplicationPad1d,
    ReplicationPad2d,
    ReplicationPad3d,
    Unfold,
    Upsample,
    UpsamplingBilinear2d,
    UpsamplingNearest2d,
    ZeroPad1d,
    ZeroPad2d,
    ZeroPad3d,
)

from dlg.frontend.nn.transformer import (  # noqa: F401
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from dlg.frontend.nn import factory_kwargs  # noqa: F401,E402  (device=, dtype= where torch's take them)
from dlg.frontend.nn import reset  # noqa: F401,E402  (reset_parameters on the modules that draw)
from dlg.frontend.nn.lazy import (  # noqa: F401,E402  (after factory_kwargs: they make its modules)
    LazyBatchNorm1d,
    LazyBatchNorm2d,
    LazyBatchNorm3d,
    LazyConv1d,
    LazyConv2d,
    LazyConv3d,
    LazyConvTranspose1d,
    LazyConvTranspose2d,
    LazyConvTranspose3d,
    LazyInstanceNorm1d,
    LazyInstanceNorm2d,
    LazyInstanceNorm3d,
)

# the modules (every public capitalised name above)
__all__ = [name for name in dir() if name[0].isupper()]
