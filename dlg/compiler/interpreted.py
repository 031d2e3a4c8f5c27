"""What the compiler does not lower yet: complex values (the INTERPRETED ops of
`ir/ops/complexes.py` and `ir/ops/fft.py`, and any node of a complex dtype). Eager Python and the
interpreter run such graphs; `dlg.compile` and the eager tiers' compiles refuse them here, with
the op named, before any pass sees them."""

from __future__ import annotations

from dlg.errors import DlgTypeError
from dlg.ir.graph import Graph, Node
from dlg.ir.ops.opdef import Trait


def interpreted_node(g: Graph) -> Node | None:
    """The first node (bodies of scans included) the compiler cannot lower, or None."""
    for node in g:
        if Trait.INTERPRETED in node.op.traits or any(t.dtype.is_complex for t in node.types):
            return node
        for value in node.attrs.values():
            if isinstance(value, Graph) and (inner := interpreted_node(value)) is not None:
                return inner
    return None


def refuse_interpreted(g: Graph) -> None:
    """A DlgTypeError naming the first node of `g` that holds a complex value."""
    node = interpreted_node(g)
    if node is None:
        return
    types = ", ".join(str(t) for t in node.types)
    raise DlgTypeError(
        f"dlg.compile: {node.op.name} ({types}) works on complex values, which the compiler "
        f"does not lower yet; complex numbers and torch.fft run eagerly (dlg tensors) or "
        f"interpreted (dlg.runtime Interpreter), not compiled", node.span)
