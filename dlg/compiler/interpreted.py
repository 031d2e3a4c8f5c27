"""What the compiler does not lower yet: complex values (the INTERPRETED ops of
`ir/ops/complexes.py` and `ir/ops/fft.py`, and any node of a complex dtype). Eager Python and the
interpreter run such graphs; `dlg.compile` and the eager tiers' compiles refuse them here, with
the op named, before any pass sees them."""

from __future__ import annotations

from dlg.errors import DlgTypeError
from dlg.ir.graph import Graph, Node
from dlg.ir.ops.opdef import Trait


def interpreted_node(g: Graph) -> Node | None:
    """The first op (bodies of scans included) the compiler cannot lower: an INTERPRETED one
    or one reading or making a complex value; else a complex input or parameter; else None."""
    source = None
    for node in g:
        complex_types = any(t.dtype.is_complex for t in node.types) or any(
            g.type_of(v).dtype.is_complex for v in node.inputs)
        if Trait.SOURCE in node.op.traits:
            source = source or (node if complex_types else None)
        elif Trait.INTERPRETED in node.op.traits or complex_types:
            return node
        for value in node.attrs.values():
            if isinstance(value, Graph) and (inner := interpreted_node(value)) is not None:
                return inner
    return source


def refuse_interpreted(g: Graph, who: str = "dlg.compile",
                       why: str = "the compiler does not lower complex values yet") -> None:
    """A DlgTypeError naming the first op of `g` that works on complex values: `who` refuses
    it and `why`."""
    node = interpreted_node(g)
    if node is None:
        return
    if Trait.SOURCE in node.op.traits:
        what = f"{node.op.name} {node.name} is {node.types[0]}"
    else:
        what = (f"{node.op.name}({', '.join(str(g.type_of(v)) for v in node.inputs)}) -> "
                f"{', '.join(str(t) for t in node.types)} works on complex values")
    raise DlgTypeError(
        f"{who}: {what}; {why}: complex numbers and dlg.fft run eagerly (dlg tensors) or in "
        f"the interpreter", node.span)
