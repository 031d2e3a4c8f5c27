"""`dlg.nn.utils.stateless`: the older spelling of dlg.func.functional_call."""

from dlg.frontend.nn.stateless import functional_call

__all__ = ["functional_call"]
