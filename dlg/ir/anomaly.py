"""Anomaly mode (torch.autograd.set_detect_anomaly): the first op that turns finite inputs into a
NaN or an Inf is named, with its .dlg or Python line, as a `DlgNumericError`.

The switch lives here, below every engine: the interpreter and eager mode check each op's outputs
while it is on, and a graph compiled while it is on (`CompileOptions.anomaly`) checks each kernel's
outputs natively. Off, nothing is checked and nothing is compiled in. A value made non-finite by
non-finite inputs is not blamed: the op that made the first one is.
"""

from __future__ import annotations

import linecache
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from dlg.errors import DlgNumericError, Span
from dlg.ir.graph import Graph, Node
from dlg.ir.ops.opdef import Trait

_enabled = [False]  # process-wide, as PyTorch's anomaly mode
NOTE = "anomaly mode names the first op whose finite inputs gave a NaN or an Inf"


def is_anomaly_enabled() -> bool:
    """Whether ops are checked for new NaNs and Infs (`set_anomaly`)."""
    return _enabled[0]


class set_anomaly:  # noqa: N801  (torch.autograd.set_detect_anomaly's shape)
    """Anomaly mode on or off for the whole process, at once; as a `with` block, only within
    it."""

    def __init__(self, mode: bool):
        self.prev = _enabled[0]
        _enabled[0] = bool(mode)

    def __enter__(self) -> None:
        pass  # switched already, by __init__

    def __exit__(self, *exc: object) -> None:
        _enabled[0] = self.prev


def detect_anomaly() -> set_anomaly:
    """`with dlg.detect_anomaly():` anomaly mode within the block (torch.autograd's spelling)."""
    return set_anomaly(True)


def non_finite(arrays: Iterable[Any]) -> str | None:
    """'nan' or 'inf' for the first float array holding one, else None."""
    for a in arrays:
        a = np.asarray(a)
        if a.dtype.kind not in "fc" or np.isfinite(a).all():
            continue
        return "nan" if np.isnan(a).any() else "inf"
    return None


def check_node(graph: Graph, node: Node, inputs: Sequence[Any], outputs: Sequence[Any]) -> None:
    """Raise if `node` made a NaN or Inf from finite inputs (an op without inputs, such as
    `full`, is taken at its word)."""
    if not inputs or Trait.SOURCE in node.op.traits:
        return
    bad = non_finite(outputs)
    if bad is None or non_finite(inputs) is not None:
        return
    what = node.op.name
    if node.backward:
        what += f" in the gradient of {forward_ops(graph, node)}"
    out = ", ".join(f"%{node.name}: {t}" if node.name else str(t) for t in node.types)
    raise numeric_error(bad, what, out, node.span)


def check_op(name: str, inputs: Sequence[Any], outputs: Sequence[Any], types: Sequence[Any],
             span: Span | None) -> None:
    """The same check for one eager op at the user's line."""
    bad = non_finite(outputs) if inputs else None
    if bad is not None and non_finite(inputs) is None:
        raise numeric_error(bad, name, ", ".join(map(str, types)), span)


def forward_ops(graph: Graph, node: Node) -> str:
    """The forward ops a gradient node differentiates: autodiff gives a VJP's nodes the forward
    node's span, so they are the forward nodes with that span."""
    ops = dict.fromkeys(n.op.name for n in graph if not n.backward and n.span is not None
                        and n.span == node.span and Trait.SOURCE not in n.op.traits)
    return ", ".join(ops) or "an op"


def numeric_error(bad: str, what: str, output: str, span: Span | None) -> DlgNumericError:
    return DlgNumericError(f"{what} produced {bad} from finite inputs (output {output})",
                           with_source(span), (NOTE,))


def with_source(span: Span | None) -> Span | None:
    """`span` with its file's text (Python spans are made without it), so the error shows the
    line."""
    if span is None or span.source is not None:
        return span
    lines = linecache.getlines(span.file)
    if not lines:
        return span
    col = span.col
    if span.end_col == col == 1 and span.line <= len(lines):  # a whole Python line: its code
        text = lines[span.line - 1]
        col = len(text) - len(text.lstrip()) + 1
    return replace(span, col=col, end_col=None, source="".join(lines))


__all__ = ["check_node", "check_op", "detect_anomaly", "is_anomaly_enabled", "non_finite",
           "set_anomaly"]
