"""`dlg.autograd.function`: torch.autograd.function's names (`from torch.autograd.function import
once_differentiable` becomes dlg's)."""

from dlg.frontend.function import Function, FunctionCtx, once_differentiable

__all__ = ["Function", "FunctionCtx", "once_differentiable"]
