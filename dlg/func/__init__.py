"""`dlg.func`: torch.func on dlg's eager tensors. `functional_call` runs a module with other
tensors as its parameters and buffers; `stack_module_state` stacks several models' for
ensembling. The transforms `grad`, `grad_and_value`, `vjp`, `jvp`, `jacrev`, `jacfwd`,
`hessian` differentiate a function of tensors (or containers of them) on the eager tape
(`level.py`: fresh inputs per call, gradients recorded only when an enclosing gradient needs
them), so they nest and compose with backward. dlg has no forward mode (jvp is the double-vjp
trick, jacfwd computes by rows) and no batching rules: `vmap` runs the function once per element
and stacks the results (`vmap.py`), torch's values and errors at the cost of a Python loop.
Eager only: a trace or compile of a transformed function is not supported."""

from dlg.frontend.nn.stateless import functional_call
from dlg.func.jacobians import hessian, jacfwd, jacrev
from dlg.func.stack_state import stack_module_state
from dlg.func.transforms import grad, grad_and_value, jvp, vjp
from dlg.func.vmap import vmap

__all__ = ["functional_call", "grad", "grad_and_value", "hessian", "jacfwd", "jacrev", "jvp",
           "stack_module_state", "vjp", "vmap"]
