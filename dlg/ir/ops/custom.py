"""Ops whose gradient is not their value's: the user's (torch.autograd.Function,
`dlg.autograd.Function`) or none at all (`stop_gradient`, torch's detach).

`custom_vjp` is a traced Function: ONE node whose value is its `forward` body graph and whose
VJP is its `backward` body graph (JAX's custom_vjp). The forward body returns the Function's
outputs, then the `n_saved` tensors its backward reads (what `ctx.save_for_backward` kept); the
backward body takes those saved values, then one cotangent per output, and returns one cotangent
per input. It is a composite that autodiff keeps whole (`Trait.OWN_GRADIENT`), so the gradient
is the user's and never the forward's own, and that decomposes into its forward body after
autodiff, so a traced Function compiles like any graph.

`py_function` is a Function on the eager tape: its `fn` attribute is a Python object that gives
the types (`fn.infer(types)`), the value (`fn.compute(arrays)`) and the VJP (`fn.vjp(b, node,
g)`), so an eager backward calls the user's Python `backward` with concrete tensors, as torch
does. It runs Python, so it lives only in eager gradient graphs (`Trait.PYTHON`): it is never
compiled, printed as .dlg or saved. It is a primitive for that reason: its semantics are the
user's code, which no IR can state.

`stop_gradient` is the identity with a zero gradient: a traced `x.detach()` (and what a traced
program computes under `no_grad`), JAX's lax.stop_gradient. It is a composite that autodiff
keeps whole (its VJP gives no cotangent) and that decomposes into its input after autodiff, so
the compiled code does not see it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgTypeError
from dlg.ir.builder import Builder
from dlg.ir.decompose import copy_into
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.opdef import Attr, Trait, defop, zero_vjp
from dlg.ir.types import TensorType


def _custom_vjp_infer(*types: TensorType, forward: Graph, backward: Graph, n_saved: int
                      ) -> tuple[TensorType, ...]:
    name = forward.name
    takes = [node.types[0] for node in forward.inputs]
    if takes != list(types):
        raise DlgTypeError(f"custom_vjp {name}: the forward takes "
                           f"{', '.join(map(str, takes)) or 'nothing'}, given "
                           f"{', '.join(map(str, types)) or 'nothing'}")
    outs = [forward.type_of(v) for _, v in forward.outputs]
    n_out = len(outs) - n_saved
    if n_saved < 0 or n_out < 1:
        raise DlgTypeError(f"custom_vjp {name}: {len(outs)} forward outputs cannot hold "
                           f"{n_saved} saved values and at least one result")
    wanted = outs[n_out:] + outs[:n_out]  # the saved values, then a cotangent per result
    backward_takes = [node.types[0] for node in backward.inputs]
    if backward_takes != wanted:
        raise DlgTypeError(f"custom_vjp {name}: the backward takes "
                           f"{', '.join(map(str, backward_takes))}, not the saved values and "
                           f"the results' cotangents ({', '.join(map(str, wanted))})")
    gives = [backward.type_of(v) for _, v in backward.outputs]
    if gives != list(types):
        raise DlgTypeError(f"custom_vjp {name}: the backward returns "
                           f"{', '.join(map(str, gives)) or 'nothing'}, not one cotangent of "
                           f"each input's type ({', '.join(map(str, types))})")
    return tuple(outs)


def _custom_vjp_decompose(b: Builder, *inputs: Value, forward: Graph, backward: Graph,
                          n_saved: int) -> tuple[Value, ...]:
    return tuple(copy_into(b, forward, list(inputs)))


def _custom_vjp_vjp(b: Builder, n: Node, g: tuple[Value, ...]) -> tuple[Value | None, ...]:
    """The backward body, on the saved values (the node's last outputs) and the results'
    cotangents."""
    n_out = len(n.outs) - n.attrs["n_saved"]
    grads = copy_into(b, n.attrs["backward"], list(n.outs[n_out:]) + list(g[:n_out]))
    return tuple(d if b.type_of(v).dtype.is_float else None for d, v in zip(grads, n.inputs))


CUSTOM_VJP = defop(
    "custom_vjp", ("*inputs",), _custom_vjp_infer,
    attrs={"forward": Attr("graph"), "backward": Attr("graph"), "n_saved": Attr("int", 0)},
    decompose=_custom_vjp_decompose, vjp=_custom_vjp_vjp,
    traits={Trait.MULTI_OUTPUT, Trait.OWN_GRADIENT},
    doc="A traced autograd.Function: its forward body as value, its backward body as VJP.")


def _py_function_ref(*arrays: np.ndarray, fn: Any) -> tuple[np.ndarray, ...]:
    return tuple(fn.compute(arrays))


PY_FUNCTION = defop(
    "py_function", ("*inputs",), lambda *types, fn: tuple(fn.infer(types)),
    attrs={"fn": Attr("object")}, ref=_py_function_ref,
    vjp=lambda b, n, g: n.attrs["fn"].vjp(b, n, g),
    traits={Trait.MULTI_OUTPUT, Trait.PYTHON},
    doc="An eager autograd.Function (or its backward): Python computes value and VJP.")


STOP_GRADIENT = defop(
    "stop_gradient", ("x",), lambda x: x, decompose=lambda b, x: x, vjp=zero_vjp,
    traits={Trait.UNARY, Trait.OWN_GRADIENT},
    doc="x, with no gradient flowing back to x (torch's detach, JAX's stop_gradient).")
