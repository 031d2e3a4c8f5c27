"""Naming the op behind a compiled anomaly (dlg/ir/anomaly.py, compiler/codegen/anomaly.py).

A graph compiled with `CompileOptions(anomaly=True)` stops at the first kernel whose finite inputs
gave a NaN or an Inf and leaves its index in `dlg_anomaly`. A kernel computes a fusion group, so
the op is found by running the call again on the interpreter in anomaly mode (same inputs and
parameters; the entry returned before the state updates), which names the op exactly; where it
finds nothing (random draws differ, a loop's step is gone) the group is named: its ops, at the
line of the likeliest (the last that is singular at small numbers: log, div, sqrt).
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from dlg.compiler.codegen.anomaly import ANOMALY
from dlg.compiler.kernel_ir import Kernel
from dlg.compiler.passes.fuse import fuse
from dlg.errors import DlgError, DlgNumericError
from dlg.ir.anomaly import detect_anomaly, forward_ops, non_finite, numeric_error
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.opdef import OpDef, Trait
from dlg.runtime.interp import Interpreter

_TEMP = re.compile(r"t(\d+)_(\d+)")  # lower.py's names: t<node>_<output>[.<label>]
_SCAN = re.compile(r"s(\d+)\.")  # a scan node's buffers


class KernelCheck:
    """Reads and clears a compiled graph's anomaly cell after a call, and raises."""

    def __init__(self, graph: Graph, kernels: list[Kernel], address: int):
        self.graph = graph
        self.kernels = kernels
        self.cell = ctypes.c_int64.from_address(address)

    def __call__(self, inputs: Mapping[str, Any] | None = None,
                 params: Mapping[str, Any] | None = None) -> None:
        """Raise if the last call stopped at a kernel; `inputs` and `params` (by name) let the
        interpreter name the op."""
        k = self.cell.value
        if not k:
            return
        self.cell.value = 0
        kernel = self.kernels[k - 1]
        if inputs is not None:
            try:
                with detect_anomaly():
                    Interpreter().run(self.graph, inputs, params or {})
            except DlgNumericError as e:
                raise e.with_note(f"compiled as kernel {kernel.name}") from None
            except DlgError:
                pass  # the interpreter fails otherwise: name the kernel's ops
        raise kernel_error(self.graph, kernel)


def kernel_check(jit: Any, graph: Graph, kernels: list[Kernel]) -> KernelCheck | None:
    """The check of a module built with anomaly checks, else None."""
    address = jit.engine.get_global_value_address(ANOMALY)
    return KernelCheck(graph, kernels, address) if address else None


def kernel_error(graph: Graph, kernel: Kernel) -> DlgNumericError:
    """The error naming a kernel's ops, at the line of the likeliest culprit."""
    nodes = kernel_nodes(graph, kernel)
    located = [n for n in nodes if n.span is not None] or nodes
    suspects = [n for n in located if singular(n.op)]  # the last: deepest in a gradient
    first = suspects[-1] if suspects else located[0] if located else None
    if first is None:
        return numeric_error("a NaN or an Inf", f"kernel {kernel.name}", "?", None)
    ops = list(dict.fromkeys(n.op.name for n in nodes))
    what = f"compiled kernel {kernel.name} ({', '.join(ops)})"
    if first.backward:
        what += f" in the gradient of {forward_ops(graph, first)}"
    last = nodes[-1]  # what the kernel writes
    out = ", ".join(f"%{last.name}: {t}" if last.name else str(t) for t in last.types)
    error = numeric_error("a NaN or an Inf", what, out, first.span)
    if len(ops) > 1:
        error.with_note(f"the line is {first.op.name}'s, a guess among the kernel's ops; one "
                        f"step called outside a loop, or on the interpreter, names the op")
    return error


PROBES = np.array([0.0, -1.0, 0.5, 1.0, 2.0], np.float32)
_singular: dict[OpDef, bool] = {}


def singular(op: OpDef) -> bool:
    """Whether an elementwise op gives a NaN or an Inf on small finite numbers (log at 0, div
    by 0, sqrt of -1), asked of its reference: the group's likeliest culprit."""
    known = _singular.get(op)
    if known is None:
        known = False
        if Trait.ELEMENTWISE in op.traits and op.ref is not None and len(op.inputs) in (1, 2):
            args = [PROBES] if len(op.inputs) == 1 else [PROBES[:, None], PROBES[None, :]]
            try:
                with np.errstate(all="ignore"):
                    known = non_finite([op.ref(*args)]) is not None
            except Exception:  # an op that needs attributes: no guess
                known = False
        _singular[op] = known
    return known


def kernel_nodes(graph: Graph, kernel: Kernel) -> list[Node]:
    """The graph nodes a kernel computes, in graph order: the producers of the values it writes
    and the nodes fused into them (inputs not kept in memory)."""
    kept = fuse(graph).materialized
    outputs, updates = dict(graph.outputs), dict(graph.updates)
    stack = [v for v in (_value_of(buf, outputs, updates) for buf in kernel.writes)
             if v is not None and v.node in graph.nodes]
    found: dict[int, Node] = {}
    while stack:
        node = graph.node(stack.pop())
        if node.id in found or Trait.SOURCE in node.op.traits:
            continue
        found[node.id] = node
        stack.extend(u for u in node.inputs if u not in kept)
    return [found[i] for i in sorted(found)]


def _value_of(buf: str, outputs: dict[str, Value], updates: dict[str, Value]) -> Value | None:
    if buf.startswith("out."):
        return outputs.get(buf[4:])
    if buf.startswith("p."):
        return updates.get(buf[2:])
    m = _TEMP.match(buf) or _SCAN.match(buf)
    return Value(int(m[1]), int(m[2]) if m.re is _TEMP else 0) if m else None
