"""A prelude layer on its own, outside any model: how `dlg.nn`'s recurrent modules run the layers
of prelude.dlg, so that each layer is written once and a traced module is the graph the .dlg
layer makes.

`prelude_layer` instantiates a layer: the prelude binds and checks its options (the errors a .dlg
file gets) and draws its parameters. `layer_graph` elaborates one call of its forward on inputs
of given types: a graph whose inputs are the call's tensors in order, whose params are the
layer's (named without a prefix: `weight_ih_l0`), and whose outputs are the results, flattened.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from functools import cache, lru_cache
from typing import Any, Union

import numpy as np

from dlg.errors import DlgNameError, Span
from dlg.grammar.elaborate import Elaborator
from dlg.grammar.models import prelude_scope
from dlg.grammar.values import LayerClass, LayerInstance, Scope, GraphTensor, suggest
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph
from dlg.ir.types import TensorType

Arg = Union[TensorType, None, tuple["Arg", ...]]  # a forward argument: a tensor's type, none, tuple
Outputs = Union[int, tuple["Outputs", ...]]  # the results' nesting, by output index


def prelude_layer(kind: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                  rng: np.random.Generator, span: Span | None
                  ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The layer's options by name (defaults filled in) and its parameters by PyTorch name, in
    PyTorch's order, drawn from `rng`; bad options are the .dlg layer's errors, at `span`."""
    E, inst = _instantiate(kind, args, kwargs, False, rng, span)
    options = {p.name: inst.scope.names[p.name] for p in inst.cls.node.params}
    return options, E.params


@lru_cache(maxsize=256)
def layer_graph(kind: str, options: tuple[tuple[str, Any], ...], inputs: tuple[Arg, ...],
                training: bool, span: Span | None,
                param_dtypes: tuple[tuple[str, DType], ...] = ()) -> tuple[Graph, Outputs]:
    """One call `layer(*inputs)` of the layer made with `options`, as a graph (kept per call
    site, options, input types and mode), and how its flat outputs nest; `param_dtypes` gives
    the float parameters whose dtype is not the layer's own (an LSTM after `.double()`)."""
    E, inst = _instantiate(kind, (), dict(options), training, np.random.default_rng(0), span,
                           dict(param_dtypes))
    with E.at(span):
        count = itertools.count()
        values = [_declare(E, a, count) for a in inputs]
        result = E.call_layer(inst, values, {}, span or inst.cls.node.span)
        flat: list[GraphTensor] = []
        nesting = _flatten(result, flat)
    for i, t in enumerate(flat):
        E.graph.set_output(f"out{i}", E.local(t))
    return E.graph, nesting


def _instantiate(kind: str, args: tuple[Any, ...], kwargs: dict[str, Any], training: bool,
                 rng: np.random.Generator, span: Span | None,
                 param_dtypes: dict[str, DType] | None = None
                 ) -> tuple[Elaborator, LayerInstance]:
    cls = _scope(training).names.get(kind)
    if not isinstance(cls, LayerClass):
        raise DlgNameError(f"prelude.dlg has no layer {kind!r}"
                           f"{suggest(kind, _scope(training).names)}", span)
    E = Elaborator(kind, training, seed=None)
    E.rng = rng
    E.param_dtypes = param_dtypes or {}
    with E.at(span):
        inst = E.instantiate(cls, list(args), kwargs, "", span or cls.node.span)
    return E, inst


@cache
def _scope(training: bool) -> Scope:
    return prelude_scope(training)


def _declare(E: Elaborator, arg: Arg, count: Iterator[int]) -> Any:
    """A forward argument of the graph: inputs in0, in1, ... for its tensors."""
    if isinstance(arg, tuple):
        return tuple(_declare(E, a, count) for a in arg)
    if arg is None:
        return None
    return E.wrap(E.builder.input(f"in{next(count)}", arg))


def _flatten(value: Any, flat: list[GraphTensor]) -> Outputs:
    if isinstance(value, tuple):
        return tuple(_flatten(v, flat) for v in value)
    flat.append(value)
    return len(flat) - 1
