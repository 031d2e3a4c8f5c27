"""`dlg.nn.parameter`: torch.nn.parameter's names (d2l checks a lazy layer's weight against
`nn.parameter.UninitializedParameter`)."""

from dlg.frontend.nn.module import Buffer, Parameter
from dlg.frontend.nn.uninitialized import UninitializedBuffer, UninitializedParameter, is_lazy

__all__ = ["Buffer", "Parameter", "UninitializedBuffer", "UninitializedParameter", "is_lazy"]
