"""`x.grad_fn`: the node of the graph backward walks, as torch shows it to users (the Neural
Networks tutorial's `loss.grad_fn.next_functions[0][0]`). It is the op's name, a str (so
`x.grad_fn == "mul"` holds), with torch's `name()` and `next_functions`: per input, the node
that made it, an `AccumulateGrad` for a leaf that requires grad, or None for a constant."""

from __future__ import annotations

from typing import Any


class GradFn(str):
    """The node that made a tensor: its op's name, and the nodes of its inputs."""

    def __new__(cls, record: Any) -> GradFn:
        node = super().__new__(cls, record.op.name)
        node._record = record
        return node

    def name(self) -> str:
        return str(self)

    @property
    def next_functions(self) -> tuple[tuple[Any, int], ...]:
        record = self._record
        return tuple((GradFn(source), source.index) if source is not None else
                     (AccumulateGrad(t), 0) if t.requires_grad else (None, 0)
                     for t, source in zip(record.inputs, record.sources))

    @property
    def metadata(self) -> dict[str, Any]:
        return self.__dict__.setdefault("_metadata", {})


class AccumulateGrad:
    """The node for a leaf that requires grad: where its gradient is accumulated."""

    next_functions: tuple[tuple[Any, int], ...] = ()

    def __init__(self, variable: Any):
        self.variable = variable

    def name(self) -> str:
        return "torch::autograd::AccumulateGrad"

    def __repr__(self) -> str:
        return "<AccumulateGrad>"
