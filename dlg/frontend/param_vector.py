"""torch.nn.utils' `parameters_to_vector` and `vector_to_parameters`: all parameters as one
flat vector (for second-order methods, evolution strategies, weight averaging) and back."""

from __future__ import annotations

from collections.abc import Iterable

from dlg.errors import DlgTypeError, DlgValueError
from dlg.foreign import type_name
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor, call


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """The parameters flattened and concatenated in order (recorded: gradients flow back)."""
    return call("cat", [p.reshape(-1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of `vec` into the parameters' values, in order."""
    if not isinstance(vec, Tensor):
        raise DlgTypeError(f"expected a dlg tensor, but got: {type_name(vec)}",
                           engine.caller_span())
    values = vec.detach().numpy().reshape(-1)
    start = 0
    for p in parameters:
        n = p.numel()
        if start + n > len(values):
            raise DlgValueError(f"vector_to_parameters: the vector has {len(values)} values, "
                                f"fewer than the parameters need", engine.caller_span())
        p.data = Tensor.of(values[start:start + n].reshape(p.shape))
        start += n
