"""The NumPy reference interpreter: runs any IR graph through each op's `ref`. It is the oracle.

Shaped like torch.fx's Interpreter: walk nodes in order, dispatch to `OpDef.ref`, and re-raise
failures with the node's op and source span. Composite nodes run their decomposition (built once
per node and cached), so the interpreter needs a reference only for primitives.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dlg import foreign
from dlg.errors import DlgError, DlgValueError
from dlg.ir.anomaly import check_node, is_anomaly_enabled
from dlg.ir.decompose import decompose, expand_node
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.opdef import OpDef, Trait
from dlg.ir.ops.shape import TRANSPOSE
from dlg.ir.ops.source import INPUT, PARAM
from dlg.ir.shapes import Sym, bind_dims, evaluate_dim, shape_str
from dlg.ir.types import TensorType
from dlg.runtime.quiet import ignore_warnings, restore_warnings


class Interpreter:
    """Runs graphs; holds the RNG that random ops (dropout masks) draw from. `exact=False` is
    eager Python's speed: references that take `exact` (the float64 products of matmul and conv)
    compute in the inputs' dtype instead, as PyTorch does; the oracle keeps the default."""

    def __init__(self, seed: int | None = None, exact: bool = True):
        self.rng = np.random.default_rng(seed)
        self.exact = exact
        self.env: dict[str, int] = {}
        self._expanded: dict[int, Graph] = {}

    def run(self, graph: Graph, inputs: Mapping[str, Any], params: Mapping[str, np.ndarray]
            ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Run `graph` on named inputs; returns (outputs by name, new values of updated state)."""
        args = []
        check_input_names([n.name for n in graph.inputs], inputs)
        self.env = {}
        for node in graph.inputs:
            args.append(check_input(node.name or "?", node.types[0], inputs[node.name], self.env))
        values = self._execute(graph, args, params)
        outputs = {name: values[v] for name, v in graph.outputs}
        updates = {name: values[v] for name, v in graph.updates}
        return outputs, updates

    def run_positional(self, graph: Graph, args: Sequence[np.ndarray],
                       params: Mapping[str, np.ndarray] | None = None) -> list[np.ndarray]:
        """Run a subgraph (a scan body) on positional inputs, in the current dim bindings."""
        values = self._execute(graph, list(args), params or {})
        return [values[v] for _, v in graph.outputs]

    def _execute(self, graph: Graph, args: list[np.ndarray], params: Mapping[str, np.ndarray]
                 ) -> dict[Value, np.ndarray]:
        values: dict[Value, np.ndarray] = {}
        ctx = _Ctx(self, params)
        inputs = iter(args)
        checked = is_anomaly_enabled()
        with np.errstate(all="ignore"):
            for node in graph:
                if node.op is INPUT:
                    values[node.out] = next(inputs)
                    continue
                if node.op is PARAM:
                    values[node.out] = _param_value(node, params)
                    continue
                arrays = [values[v] for v in node.inputs]
                outs = self._eval(graph, node, arrays, ctx)
                if checked:
                    check_node(graph, node, arrays, outs)
                for v, out in zip(node.outs, outs):
                    values[v] = out
        return values

    def _eval(self, graph: Graph, node: Node, arrays: list[np.ndarray], ctx: _Ctx
              ) -> tuple[np.ndarray, ...]:
        op = node.op
        if op.is_composite:
            sub = self._expanded.get(id(node))
            if sub is None:
                in_types = [graph.type_of(v) for v in node.inputs]
                sub = self._expanded[id(node)] = expand_node(node, in_types)
            return tuple(self.run_positional(sub, arrays, ctx.params))
        attrs = {k: _resolve(v, self.env) for k, v in node.attrs.items()}
        if not self.exact and takes_exact(op):
            attrs["exact"] = False
        if op.needs_ctx:
            attrs["ctx"] = ctx
        try:
            out = op.ref(*arrays, **attrs)
        except DlgError as e:
            raise e.with_span(node.span) from None
        except Exception as e:  # a failing reference is reported at the user's line
            raise DlgValueError(f"{op.name} failed: {e}", node.span) from e
        return out if isinstance(out, tuple) else (out,)


class Program:
    """A graph flattened for eager Python, which runs the same graph (a composite op's
    decomposition, a kept gradient graph) at every step: composites expanded once, each
    primitive a step (reference, input slots, attributes, output slots), values in a list.
    The interpreter's semantics at its speed limit: no per-node dicts, attribute resolution or
    expansion lookups. A transpose that is not an output is a NumPy view (its reference copies,
    so that a result owns contiguous memory; inside, refs read any strides: a gradient graph's
    transposed weights were 12 copies of up to 800 KB per step of a 784-256-10 MLP, 3 ms).
    `Program.of` refuses (None) graphs it cannot flatten: params, symbolic attributes, refs
    that need a ctx (random, scans)."""

    def __init__(self, steps: list[tuple[Any, ...]], slots: int, arity: int,
                 outputs: list[int], ops: frozenset[OpDef]):
        self.steps = steps
        self.ops = ops  # the primitives it runs (what a compile of the graph would lower)
        self.blank = [None] * (slots - arity)  # the slots the steps fill
        self.outputs = outputs

    @classmethod
    def of(cls, graph: Graph, exact: bool = True) -> Program | None:
        """`graph` (positional inputs, outputs in order) as a program, or None."""
        flat = decompose(graph)
        slots: dict[Value, int] = {node.out: i for i, node in enumerate(flat.inputs)}
        results = {v for _, v in flat.outputs}
        # Steps no output needs are left out (a VJP makes the gradients of all its inputs: a
        # CNN's first convolution's input gradient, for an image that wants none, was 7 of
        # its interpreted step's 53 ms); ops that run Python are kept, as eager code would
        # run them.
        live = flat.ancestors([*results, *(v for node in flat
                                           if Trait.PYTHON in node.op.traits for v in node.outs)])
        steps = []
        for node in flat:
            op = node.op
            if op is INPUT:
                continue
            if op is PARAM or op.needs_ctx or op.ref is None or any(
                    isinstance(v, Sym) or isinstance(v, tuple) and any(
                        isinstance(d, Sym) for d in v) for v in node.attrs.values()):
                return None
            if node.id not in live:
                continue
            attrs = dict(node.attrs)
            if not exact and takes_exact(op):
                attrs["exact"] = False
            ins = tuple(slots[v] for v in node.inputs)
            for v in node.outs:
                slots[v] = len(slots)
            ref = _transposed_view if op is TRANSPOSE and node.out not in results else op.ref
            steps.append((ref, op.name, ins, attrs, tuple(slots[v] for v in node.outs),
                          node.span))
        return cls(steps, len(slots), len(flat.inputs), [slots[v] for _, v in flat.outputs],
                   frozenset(node.op for node in flat if node.id in live))

    def run(self, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        values: list[Any] = [*args, *self.blank]
        token = ignore_warnings()  # np.errstate's effect at a tenth of its cost (eager runs this)
        try:
            for ref, name, ins, attrs, outs, span in self.steps:
                try:
                    out = ref(*[values[i] for i in ins], **attrs)
                except DlgError as e:
                    raise e.with_span(span) from None
                except Exception as e:  # worded as the interpreter words a failing reference
                    raise DlgValueError(f"{name} failed: {e}", span) from e
                if isinstance(out, tuple):
                    for slot, v in zip(outs, out):
                        values[slot] = v
                else:
                    values[outs[0]] = out
        finally:
            restore_warnings(token)
        return [values[i] for i in self.outputs]


def _transposed_view(x: np.ndarray, perm: tuple[int, ...]) -> np.ndarray:
    return np.transpose(x, perm)


class _Ctx:
    """What `needs_ctx` refs get: the RNG, the dim bindings and a way to run a body graph."""

    def __init__(self, interp: Interpreter, params: Mapping[str, np.ndarray]):
        self.interp = interp
        self.params = params

    @property
    def rng(self) -> np.random.Generator:
        return self.interp.rng

    @property
    def env(self) -> dict[str, int]:
        return self.interp.env

    def run(self, graph: Graph, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.interp.run_positional(graph, args, self.params)


def takes_exact(op: OpDef) -> bool:
    """Whether op's reference offers `exact=False` (a product in the inputs' dtype)."""
    known = _TAKES_EXACT.get(op)
    if known is None:
        known = _TAKES_EXACT[op] = "exact" in inspect.signature(op.ref).parameters
    return known


_TAKES_EXACT: dict[OpDef, bool] = {}


def _param_value(node: Node, params: Mapping[str, np.ndarray]) -> np.ndarray:
    if node.name not in params:
        raise DlgValueError(f"no value for parameter {node.name!r}", node.span)
    return params[node.name]


def _resolve(value: Any, env: Mapping[str, int]) -> Any:
    if isinstance(value, Sym):
        return evaluate_dim(value, env)
    if isinstance(value, tuple) and any(isinstance(v, Sym) for v in value):
        return tuple(evaluate_dim(v, env) for v in value)
    return value


def check_input_names(names: Sequence[str | None], inputs: Mapping[str, Any]) -> None:
    """Every declared input given, nothing else."""
    missing = [n for n in names if n not in inputs]
    extra = sorted(set(inputs) - set(names))
    takes = f"the model takes {', '.join(map(str, names))}"
    if missing and extra:  # a misspelt name
        raise DlgValueError(f"unknown input {extra[0]!r} and missing input {missing[0]!r} "
                            f"({takes})")
    if missing:
        raise DlgValueError(f"missing input {missing[0]!r} ({takes})")
    if extra:
        raise DlgValueError(f"unknown input {extra[0]!r} ({takes})")


def check_input(name: str, expected: TensorType, value: Any, env: dict[str, int]) -> np.ndarray:
    """Check one input's dtype and shape and bind its symbolic dims.

    Arrays must already have the declared dtype (no silent casts); Python numbers and nested
    lists are converted to it.
    """
    if foreign.is_foreign(value):  # a torch tensor: its own dtype, checked as an array's
        value = foreign.numpy_of(value)
    elif not isinstance(value, (np.ndarray, np.generic)):
        try:
            value = np.asarray(value, dtype=expected.dtype.np)
        except (TypeError, ValueError) as e:
            raise DlgValueError(f"input {name!r}: cannot convert to {expected.dtype}: {e}"
                                ) from None
    array = np.asarray(value)
    try:
        dtype = DType.of(array)
    except KeyError:
        raise DlgValueError(f"input {name!r}: dtype {array.dtype} is not supported "
                            f"(expected {expected.dtype})") from None
    if dtype != expected.dtype:
        raise DlgValueError(f"input {name!r}: expected dtype {expected.dtype}, got {dtype} "
                            f"(shape {list(array.shape)})")
    problem = bind_dims(expected.shape, array.shape, env)
    if problem:
        raise DlgValueError(f"input {name!r}: expected shape {shape_str(expected.shape)}, got "
                            f"{list(array.shape)}: {problem}")
    return array


__all__ = ["Interpreter", "Program", "check_input", "check_input_names", "takes_exact"]
