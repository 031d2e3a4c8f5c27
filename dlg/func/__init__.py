"""`dlg.func`: torch.func's `functional_call` (a module run with other tensors as its
parameters and buffers). torch.func's transforms (vmap, grad, jacrev, ...) are not here: write
the batch dim out, or use dlg.autograd.grad and dlg.autograd.functional."""

from dlg.frontend.nn.stateless import functional_call

__all__ = ["functional_call"]
