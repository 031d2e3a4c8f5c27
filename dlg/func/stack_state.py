"""torch.func.stack_module_state: the parameters and buffers of several models of one class
stacked along a new first dimension, by name, for ensembling with `vmap` over
`functional_call` (one model's code, M models' weights)."""

from __future__ import annotations

from collections.abc import Sequence

from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.nn.module import Module
from dlg.frontend.tensor import Tensor, call

__all__ = ["stack_module_state"]


def stack_module_state(models: Sequence[Module]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(params, buffers): name -> the models' tensors stacked. Stacked parameters are new leaves
    (an optimizer can take them), requiring grad where the models' do; the models must share
    their class and train/eval mode."""
    models = list(models)
    if not models:
        raise DlgValueError("stack_module_state: Expected at least one model, got 0.",
                            engine.caller_span())
    if len({m.training for m in models}) > 1:
        raise DlgValueError("stack_module_state: Expected all models to have the same "
                            "training/eval mode.", engine.caller_span())
    if any(type(m) is not type(models[0]) for m in models):
        raise DlgTypeError("stack_module_state: Expected all models to be of the same class.",
                           engine.caller_span())
    params = [dict(m.named_parameters()) for m in models]
    buffers = [dict(m.named_buffers()) for m in models]
    return ({k: _stacked_leaf([p[k] for p in params], k) for k in params[0]},
            {k: _stacked_leaf([b[k] for b in buffers], k) for k in buffers[0]})


def _stacked_leaf(tensors: list[Tensor], name: str) -> Tensor:
    wants = {t.requires_grad for t in tensors}
    if len(wants) > 1:
        raise DlgValueError(f"Expected {name} from each model to have the same .requires_grad",
                            engine.caller_span())
    with engine.no_grad():
        out = call("stack", tensors, 0)
    return out.requires_grad_() if wants == {True} else out
