"""Pictures of a model's graph through Graphviz (`dlgc viz`, `model.viz()`).

`picture(model)` returns a `graphviz.Digraph` (Jupyter shows it inline): layers as boxes with
their type and parameter count (`expand=True`: clusters around their ops), tensor types with
symbolic dims on the edges, inputs and outputs drawn apart. `compiled=True` draws the graph as
the compiler leaves it, each fused kernel outlined. `save(picture, "graph.svg")` lays it out
with Graphviz's `dot` program (DOT source for .dot/.gv needs only the Python package).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlg.errors import DlgTypeError, DlgValueError
from dlg.ir.graph import Graph, Value
from dlg.runtime.training import build_train_step
from dlg.viz.draw import Groups, draw
from dlg.viz.kernels import compiled_view
from dlg.viz.layers import layers_of, param_size
from dlg.viz.render import save

if TYPE_CHECKING:
    from dlg.runtime.executable import Executable
    from dlg.runtime.model import Model

__all__ = ["picture", "save"]


def picture(model: Model | Executable | Graph, expand: bool = False, compiled: bool = False,
            train: bool = False) -> Any:
    """The model's graph as a `graphviz.Digraph` (see the module's docstring). `train` draws
    the training graph (loss and metrics as outputs; compiled: the whole optimisation step)."""
    model = getattr(model, "model", model)  # an Executable: the model it runs
    if not isinstance(model, Graph) and not hasattr(model, "layer_calls"):
        raise DlgTypeError(f"picture() draws a dlg.Model, a dlg.Executable or an IR Graph, not "
                           f"{type(model).__name__}")
    g = _graph(model, train, compiled)
    if compiled:
        return _kernels(g)
    calls = [] if isinstance(model, Graph) else model.layer_calls
    layers, owner = layers_of(g, calls)
    labels, sep = {}, " " if expand else "\n"
    for layer in layers:
        kind = f": {layer.kind}" if layer.kind else ""
        count = f"{layer.params:,} params" if layer.call == 1 else f"call {layer.call}"
        labels[layer.key] = f"{layer.name}{kind}{sep}({count})"
    total = sum(param_size(n) for n in g.params)
    title = f"{g.name}: {total:,} parameters"
    return draw(g, Groups(owner, labels, collapsed=not expand), title)


def _graph(model: Model | Graph, train: bool, compiled: bool) -> Graph:
    if isinstance(model, Graph):
        if train:
            raise DlgValueError("train=True draws a model's training graph: pass the model")
        return model
    if not train:
        return model.graph
    if model.train_graph is None or model.train_spec is None:
        raise DlgValueError(f"model {model.name} has no train section to draw")
    if compiled:
        return build_train_step(model.train_graph, model.train_spec)[0]
    return model.train_graph


def _kernels(g: Graph) -> Any:
    view = compiled_view(g)
    of = {n: k.name for k in view.kernels for n in k.nodes}
    notes = {n: f"(also in {c - 1} other kernel{'s' * (c > 2)})" for n, c in view.shared.items()}

    def style(v: Value) -> str:  # values kept in memory: solid; computed inline: dashed
        return "" if v in view.fusion.materialized else "dashed"

    title = (f"{view.graph.name} as compiled: {len(view.kernels)} kernels (dashed edges: "
             f"values computed inside a kernel, never stored)")
    return draw(view.graph, Groups(of, {k.name: k.name for k in view.kernels}, False, notes,
                                   style), title)
